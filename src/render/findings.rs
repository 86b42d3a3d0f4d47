//! Sentences for findings, by group (workflow, guards, settlements, the
//! store's own guards, learning from outcomes); `super::finding` names every
//! variant and hands each group's to its function here.

use super::{class, margin_text, money, percent};
use crate::time::format_rfc3339;
use crate::vocab::Finding;

/// Findings of learning from outcomes: `None` for any other finding.
pub(super) fn learning_finding(f: &Finding) -> Option<String> {
    Some(match f {
        Finding::Calibrated {
            revenue_minor,
            calibrated_minor,
            bias_bp,
            scale_bp,
            measured,
        } => format!(
            "the agent's {measured} measured forecasts realized {} of what they projected, so its projected revenue impact {} counts as {} (scaled by {})",
            percent(*bias_bp),
            money(*revenue_minor),
            money(*calibrated_minor),
            percent(*scale_bp)
        ),
        Finding::NotCalibrated {
            measured,
            min_outcomes,
        } => format!(
            "the agent's impact is taken as projected: {measured} of its decisions are measured, calibration needs {min_outcomes} with a projection"
        ),
        Finding::PrecedentRetired {
            resolution,
            original_bp,
            settled_bp,
            measured,
            worse_bp,
        } => format!(
            "the precedent of resolution {resolution} no longer settles cases: the {measured} cases it settled realized {} of their projection against {} for its original, more than {} worse",
            percent(*settled_bp),
            percent(*original_bp),
            percent(*worse_bp)
        ),
        _ => return None,
    })
}

/// Findings of the workflow step: `None` for any other finding.
pub(super) fn workflow_finding(f: &Finding) -> Option<String> {
    Some(match f {
        Finding::NoSuchRun { run } => format!("there is no workflow run `{run}`"),
        Finding::NoSuchStep { workflow, step } => {
            format!("workflow `{workflow}` has no step `{step}`")
        }
        Finding::NotStepOwner { step, owner } => {
            format!("step `{step}` belongs to `{owner}`")
        }
        Finding::RunEnded { run, outcome } => format!("run `{run}` has ended ({outcome})"),
        Finding::StepReady { step } => {
            format!("step `{}` of run `{}` is ready", step.step, step.run)
        }
        Finding::RunCompensating { run, failed_step } => format!(
            "run `{run}` is compensating for the failure of `{failed_step}`; this step will not run"
        ),
        Finding::WaitsForStep { step, missing } => format!(
            "step `{}` waits for step `{missing}` of run `{}`",
            step.step, step.run
        ),
        Finding::CompensationOnly { step } => {
            format!("`{step}` is a compensation step; it runs only after a failure")
        }
        Finding::StepAlreadySettled { step, status } => {
            format!(
                "step `{}` of run `{}` is already {status}",
                step.step, step.run
            )
        }
        _ => return None,
    })
}

/// Findings of the guards (known entities, messages, lifecycle, fraud,
/// promotion windows): `None` for any other finding.
pub(super) fn guard_finding(f: &Finding) -> Option<String> {
    Some(match f {
        Finding::AlreadyNotified {
            customer,
            order,
            topic,
            at_ms,
        } => format!(
            "customer {customer} was already told about the {topic} of order {order} at {}",
            format_rfc3339(*at_ms)
        ),
        Finding::NotNotified => "no such message within the window".into(),
        Finding::Unknown { entity } => format!(
            "{entity} is not known to the ledger, so the guards cannot check the action"
        ),
        Finding::OrderOfAnotherCustomer { order, customer } => {
            format!("order {order} belongs to customer {customer}")
        }
        Finding::Known => "every entity the action needs is known".into(),
        Finding::NoReorder { sku, lifecycle } => {
            format!("{sku} is {}: no reorders", lifecycle.name())
        }
        Finding::LifecycleAllows => "the sku's lifecycle allows a reorder".into(),
        Finding::FraudFlagged { order } => format!("order {order} is flagged for fraud"),
        Finding::NotFlagged => "the order is not flagged".into(),
        Finding::PromotionWindow {
            sku,
            promotions,
            until_ms,
        } => format!(
            "{promotions} promotion(s) on {sku} are active or start soon; the plan made first holds until {}",
            format_rfc3339(*until_ms)
        ),
        Finding::NoPromotionWindow => "no promotion is active or starting soon".into(),
        _ => return None,
    })
}

/// Findings that cite a person's settlement or an expiry: `None` otherwise.
pub(super) fn settlement_finding(f: &Finding) -> Option<String> {
    Some(match f {
        Finding::PrecedentApplies {
            resolution,
            signature,
            precedent_impact_minor,
            impact_minor,
            approved,
            modified,
        } => {
            let how = match (approved, modified) {
                (true, true) => "approved it with the threshold's modified values",
                (true, false) => "approved it",
                (false, _) => "rejected it",
            };
            format!(
                "a person settled the same case at seq {resolution} and {how}: the same rule, a {} on {}, moving {}, with an impact of {} against {} then (within a factor of two)",
                signature.kind.name(),
                class(&signature.class),
                signature.direction.name(),
                money(*impact_minor),
                money(*precedent_impact_minor)
            )
        }
        Finding::SettledByHuman {
            resolution,
            option,
            chosen,
        } => format!(
            "settled by the human resolution at seq {resolution} (option {option}): {}",
            if *chosen { "approved" } else { "not chosen" }
        ),
        Finding::EscalationExpired { escalation, approve } => format!(
            "no person settled the escalation (decision {escalation}) in time; the rule set's safe default is to {}",
            if *approve { "approve" } else { "reject" }
        ),
        Finding::PendingExpired {
            expires_at_ms,
            max_wait_h,
        } => format!(
            "the intention passed its expiry {}{} while it waited",
            format_rfc3339(*expires_at_ms),
            waited(*max_wait_h)
        ),
        _ => return None,
    })
}

/// Findings of the rule set's own guards: `None` for any other finding.
pub(super) fn custom_finding(f: &Finding) -> Option<String> {
    use crate::vocab::guard::GuardFault;
    Some(match f {
        Finding::CustomPassed { guard, checked } => {
            format!("the store's guard `{guard}` holds for all {checked} checked")
        }
        Finding::CustomFired {
            guard,
            then,
            failing,
            count,
            checked,
        } => format!(
            "the store's guard `{guard}` ({then}) fires for {count} of {checked}: {}{}",
            failing.join(", "),
            if (*count as usize) > failing.len() {
                ", …"
            } else {
                ""
            }
        ),
        Finding::CustomFault {
            guard,
            subject,
            fault,
        } => {
            let why = match fault {
                GuardFault::Missing { path } => format!("{path} is not known"),
                GuardFault::UnknownEntity { entity } => format!("{entity} is unknown"),
                GuardFault::NotABoolean => "its expression is not true or false".into(),
                GuardFault::Failed => {
                    "its expression failed (an overflow or a division by zero)".into()
                }
            };
            format!("the store's guard `{guard}` cannot be checked for {subject}: {why}")
        }
        _ => return None,
    })
}

pub(super) fn margin_below(
    min_bp: i64,
    checked: u32,
    failing_count: u32,
    failing: &[crate::vocab::SkuMargin],
    passing: &[String],
) -> String {
    let mut s = format!(
        "{failing_count} of {checked} sku(s) would sell below the {} margin: {}",
        percent(min_bp),
        failing
            .iter()
            .map(margin_text)
            .collect::<Vec<_>>()
            .join("; ")
    );
    if (failing_count as usize) > failing.len() {
        s.push_str(&format!(
            " (and {} more)",
            failing_count as usize - failing.len()
        ));
    }
    if !passing.is_empty() {
        s.push_str(&format!(
            "; a promotion on the {} sku(s) that keep the margin would pass: {}",
            passing.len(),
            passing.join(", ")
        ));
    }
    s
}

/// Names the rule set's longest wait when it set an expiry.
pub(super) fn waited(max_wait_h: Option<u64>) -> String {
    max_wait_h.map_or_else(String::new, |h| {
        format!(" (the rules let an intention wait at most {h} h)")
    })
}
