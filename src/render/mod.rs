//! Sentences for people, written from structured decisions when they are
//! shown (CLI, HTTP, the console, MCP). Nothing here is ever hashed: wording
//! may change freely without touching a record.

mod findings;

use findings::{
    custom_finding, guard_finding, learning_finding, margin_below, settlement_finding, waited,
    workflow_finding,
};

use crate::entity::EntityRef;
use crate::time::format_rfc3339;
use crate::value::Value;
use crate::vocab::{
    Action, Decision, EntityClass, Escalation, EscalationOption, EscalationReason, Field, Finding,
    OptionChoice, Outcome, Perk, PromotionTarget, Read, SkuMargin, TraceStep,
};

/// Minor units as pounds: 123456 → £1,234.56.
pub fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    let pounds = (m / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}£{grouped}.{:02}", m % 100)
}

/// Basis points as a percentage: 1500 → 15 %, 1250 → 12.5 %.
pub fn percent(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let b = bp.unsigned_abs();
    match b % 100 {
        0 => format!("{sign}{} %", b / 100),
        r if r % 10 == 0 => format!("{sign}{}.{} %", b / 100, r / 10),
        r => format!("{sign}{}.{r:02} %", b / 100),
    }
}

fn target(t: &PromotionTarget) -> String {
    match t {
        PromotionTarget::Category(c) => format!("category {c}"),
        PromotionTarget::Skus(s) => s.join(", "),
    }
}

/// What an action does, as a phrase: "set SKU-1's price to £71.99".
pub fn action(a: &Action) -> String {
    match a {
        Action::SetPrice { sku, price_minor } => {
            format!("set {sku}'s price to {}", money(*price_minor))
        }
        Action::LaunchPromotion {
            target: t,
            discount_bp,
            starts_at_ms,
            ends_at_ms,
        } => format!(
            "launch {} off {} from {} to {}",
            percent(i64::from(*discount_bp)),
            target(t),
            format_rfc3339(*starts_at_ms),
            format_rfc3339(*ends_at_ms)
        ),
        Action::Reorder { sku, quantity } => format!("reorder {quantity} of {sku}"),
        Action::Discontinue { sku } => format!("discontinue {sku}"),
        Action::NotifyCustomer {
            customer,
            order,
            topic,
        } => format!("message customer {customer} about the {topic} of order {order}"),
        Action::OfferPerk { order, perk } => match perk {
            Perk::FreeShipping => format!("offer free shipping on order {order}"),
            Perk::DiscountBp(bp) => {
                format!("offer {} off order {order}", percent(i64::from(*bp)))
            }
        },
        Action::ChangeAdBudget {
            campaign,
            budget_minor,
        } => format!(
            "set campaign {campaign}'s ad budget to {}",
            money(*budget_minor)
        ),
        Action::ReserveStock { sku, quantity } => format!("hold {quantity} of {sku}"),
        Action::Generic {
            entity,
            attribute,
            value,
        } => format!("set {entity} {attribute} to {value}"),
    }
}

fn margin_text(m: &SkuMargin) -> String {
    let margin = m
        .margin_bp
        .map_or_else(|| "no margin at all".to_owned(), percent);
    format!(
        "{}: {} less {} is {} against a cost of {} ({margin})",
        m.sku,
        money(m.price_minor),
        percent(i64::from(m.discount_bp)),
        money(m.effective_minor),
        money(m.cost_minor)
    )
}

/// One finding as a sentence. The match names every variant, so a new
/// finding does not compile until it has a sentence; the names are most of
/// its length.
#[allow(clippy::too_many_lines)]
pub fn finding(f: &Finding) -> String {
    let group = workflow_finding(f)
        .or_else(|| guard_finding(f))
        .or_else(|| settlement_finding(f))
        .or_else(|| custom_finding(f))
        .or_else(|| learning_finding(f));
    if let Some(s) = group {
        return s;
    }
    match f {
        Finding::NoRuleSet => "no rule set is installed".into(),
        Finding::NotExpired => "not expired".into(),
        Finding::Expired {
            expires_at_ms,
            max_wait_h,
        } => format!(
            "the intention expired at {}{}; it is not carried out",
            format_rfc3339(*expires_at_ms),
            waited(*max_wait_h)
        ),
        Finding::AgentNotRegistered { agent } => format!("agent `{agent}` is not registered"),
        Finding::Autonomous { kind } => format!("the agent may {} on its own", kind.name()),
        Finding::ManualKind { kind } => {
            format!(
                "{} is manual for this agent: a person acts, not the agent",
                kind.name()
            )
        }
        Finding::ProposeAndApprove { kind } => format!(
            "{} is propose-and-approve for this agent: a person must approve",
            kind.name()
        ),
        Finding::MarginBelow {
            min_bp,
            checked,
            failing_count,
            failing,
            passing,
        } => margin_below(*min_bp, *checked, *failing_count, failing, passing),
        Finding::MarginHolds {
            min_bp,
            checked,
            lowest,
        } => {
            let kept = format!("all {checked} sku(s) keep the {} margin", percent(*min_bp));
            match lowest {
                Some(m) => format!("{kept}; the lowest is {}", margin_text(m)),
                None => kept,
            }
        }
        Finding::Outranked {
            by,
            agent,
            objective,
        } => format!(
            "live intention {by} by `{agent}` ({}) outranks this one",
            objective.name()
        ),
        Finding::NoRival => "no live rival".into(),
        Finding::OutranksRivals { rivals } => {
            format!("this intention outranks its {rivals} live rival(s)")
        }
        Finding::WithinLimit => "within the auto-approve limit".into(),
        Finding::AboveLimit {
            revenue_minor,
            limit_minor,
        } => format!(
            "the projected revenue impact {} is beyond the {} limit",
            money(*revenue_minor),
            money(*limit_minor)
        ),
        Finding::AllPassed => "every rule passed".into(),
        // Rendered above.
        Finding::NoSuchRun { .. }
        | Finding::NoSuchStep { .. }
        | Finding::NotStepOwner { .. }
        | Finding::RunEnded { .. }
        | Finding::StepReady { .. }
        | Finding::RunCompensating { .. }
        | Finding::WaitsForStep { .. }
        | Finding::CompensationOnly { .. }
        | Finding::StepAlreadySettled { .. }
        | Finding::PrecedentApplies { .. }
        | Finding::SettledByHuman { .. }
        | Finding::EscalationExpired { .. }
        | Finding::PendingExpired { .. }
        | Finding::AlreadyNotified { .. }
        | Finding::NotNotified
        | Finding::Unknown { .. }
        | Finding::OrderOfAnotherCustomer { .. }
        | Finding::Known
        | Finding::NoReorder { .. }
        | Finding::LifecycleAllows
        | Finding::FraudFlagged { .. }
        | Finding::NotFlagged
        | Finding::PromotionWindow { .. }
        | Finding::NoPromotionWindow
        | Finding::CustomPassed { .. }
        | Finding::CustomFired { .. }
        | Finding::CustomFault { .. }
        | Finding::Calibrated { .. }
        | Finding::NotCalibrated { .. }
        | Finding::PrecedentRetired { .. } => unreachable_finding(f),
    }
}

/// Kept apart so the exhaustive match above names every variant.
fn unreachable_finding(f: &Finding) -> String {
    debug_assert!(false, "finding rendered by a group: {f:?}");
    String::new()
}

fn class(c: &EntityClass) -> String {
    match c {
        EntityClass::Category(c) => format!("category {c}"),
        EntityClass::Categories(cs) => format!("categories {}", cs.join(", ")),
        EntityClass::Campaign(c) => format!("campaign {c}"),
        EntityClass::Orders => "orders".into(),
        EntityClass::Customers => "customers".into(),
        EntityClass::Attribute { kind, attribute } => match kind {
            Some(k) => format!("the {attribute} of {k} entities"),
            None => format!("the {attribute} of untyped entities"),
        },
    }
}

fn field(f: &Field) -> String {
    match f {
        Field::Autonomy(kind) => format!("autonomy.{}", kind.name()),
        Field::StepStatus(step) => format!("step[{step}].status"),
        Field::View(path) => path.to_string(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into()),
    }
}

/// A read as `entity.field = value (seq N)`.
pub fn read(r: &Read) -> String {
    let at = match &r.entity {
        Some(e) => format!("{e}.{}", field(&r.field)),
        None => format!("rules.{}", field(&r.field)),
    };
    let value = match &r.value {
        Value::Text(t) => t.clone(),
        other => other.to_string(),
    };
    format!("{at} = {value} (seq {})", r.seq)
}

/// One trace step: "guard.margin reject: …".
pub fn trace_step(t: &TraceStep) -> String {
    format!(
        "{} {}: {}",
        t.rule.name(),
        t.verdict.name(),
        finding(&t.finding)
    )
}

/// Why a human is asked.
pub fn escalation_summary(e: &Escalation, entity: &EntityRef) -> String {
    match &e.reason {
        EscalationReason::Autonomy { agent, kind } => format!(
            "`{agent}` proposes to {} on {entity}; its autonomy for {} requires a person's approval",
            e.involved
                .first()
                .map_or_else(|| kind.name().to_owned(), |i| action(&i.action)),
            kind.name()
        ),
        EscalationReason::Custom { guard, agent, .. } => format!(
            "`{agent}` intends to {}; the store's guard `{guard}` asks a person to decide",
            e.involved
                .first()
                .map_or_else(|| entity.to_string(), |i| action(&i.action)),
        ),
        EscalationReason::Threshold {
            agent,
            revenue_minor,
            limit_minor,
            ..
        } => format!(
            "`{agent}` intends to {} with a projected revenue impact of {}, beyond the {} a rule may approve alone",
            e.involved
                .first()
                .map_or_else(|| entity.to_string(), |i| action(&i.action)),
            money(*revenue_minor),
            money(*limit_minor)
        ),
    }
}

/// An option's label: "approve intention 12 by `pricing`".
pub fn option_label(o: &EscalationOption, e: &Escalation) -> String {
    let agent_of = |seq: u64| {
        e.involved
            .iter()
            .find(|i| i.intention == seq)
            .map_or_else(String::new, |i| format!(" by `{}`", i.agent))
    };
    let first = o.approve.first().copied().unwrap_or(0);
    match o.choice {
        OptionChoice::ApproveThis => format!("approve intention {first}{}", agent_of(first)),
        OptionChoice::ApproveRival => {
            format!("approve intention {first}{} instead", agent_of(first))
        }
        OptionChoice::RejectAll => {
            let all: Vec<String> = e.involved.iter().map(|i| i.intention.to_string()).collect();
            format!("reject {}", all.join(", "))
        }
        OptionChoice::ApproveModified => format!(
            "approve intention {first} with modified values: {}",
            o.modified.as_ref().map_or_else(String::new, action)
        ),
    }
}

/// A decision in one line: "approved by approve: every rule passed".
pub fn decision_line(d: &Decision) -> String {
    let why = d
        .trace
        .last()
        .map_or_else(String::new, |t| finding(&t.finding));
    let what = match &d.outcome {
        Outcome::Modified { action: a } => format!("modified ({})", action(a)),
        Outcome::Deferred {
            until: crate::vocab::DeferUntil::Time(t),
        } => format!("deferred until {}", format_rfc3339(*t)),
        Outcome::Deferred {
            until: crate::vocab::DeferUntil::Step(r),
        } => format!("deferred until step `{}` of run `{}`", r.step, r.run),
        other => other.name().to_owned(),
    };
    format!("{what} by {}: {why}", d.rule.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_percent() {
        assert_eq!(money(123_456), "£1,234.56");
        assert_eq!(money(-5), "-£0.05");
        assert_eq!(percent(1500), "15 %");
        assert_eq!(percent(1250), "12.5 %");
        assert_eq!(percent(-132), "-1.32 %");
    }
}
