//! The threshold rule, precedents, and the escalations a human settles.

use super::steps::{Eval, Step};
use super::{read, step};
use crate::context::IntentionState;
use crate::value::Value;
use crate::vocab::{Action, Escalation, EscalationOption, Involved, Outcome};

/// `part / whole` of `x`, rounded toward zero, in integers.
fn scale(x: i64, part: i64, whole: i64) -> i64 {
    if whole == 0 {
        return x;
    }
    let v = i128::from(x) * i128::from(part) / i128::from(whole);
    i64::try_from(v).unwrap_or(x)
}

impl Eval<'_> {
    pub(super) fn threshold(&mut self) -> Step {
        let limit = self.rules.rules.threshold.escalate_above_minor;
        let revenue = self.s.intention.impact.revenue_minor;
        let reads = vec![
            self.rule_read("threshold.escalate_above_minor", limit),
            read("impact.revenue_minor", Value::Int(revenue), self.s.seq),
        ];
        if revenue.unsigned_abs() <= limit.unsigned_abs() {
            self.push(
                "threshold",
                "pass",
                "within the auto-resolve limit".into(),
                reads,
            );
            return None;
        }
        let suggestion = self.scaled_to_limit(limit, revenue);
        let signature = self.ctx.signature("threshold", self.s.seq);
        let window = self.rules.rules.precedent_window_ms();
        let precedent = self.ctx.precedents.iter().rev().find(|p| {
            p.signature == signature
                && p.at_ms.saturating_add(window) >= self.ctx.now_ms
                && (!p.modified || suggestion.is_some())
        });
        if let Some(p) = precedent {
            let (resolution, approved, modified) = (p.resolution, p.approved, p.modified);
            self.push(
                "threshold",
                "escalate",
                format!("|{revenue}| exceeds {limit}"),
                reads,
            );
            self.d.competing.push(resolution);
            let (verdict, outcome) = match (approved, modified, suggestion) {
                (true, true, Some(action)) => ("approve", Outcome::Modified { action }),
                (true, _, _) => ("approve", Outcome::Approved),
                (false, _, _) => ("reject", Outcome::Rejected),
            };
            let how = if modified {
                "approved with the threshold's modified values"
            } else {
                "resolved the same way"
            };
            let note = format!(
                "a human resolved a conflict of signature `{signature}` at seq {resolution}; {how}"
            );
            self.push(
                "precedent",
                verdict,
                note,
                vec![read(
                    "precedent",
                    Value::Text(signature.clone()),
                    resolution,
                )],
            );
            return Some(outcome);
        }
        self.push(
            "threshold",
            "escalate",
            format!("|{revenue}| exceeds {limit}: a human decides"),
            reads,
        );
        let summary = format!(
            "`{}` intends {:?} on {} with projected revenue impact {revenue}, above the {limit} limit",
            self.s.agent,
            self.s.intention.action.kind(),
            self.d.entity
        );
        Some(self.escalate(summary, suggestion))
    }

    /// The threshold rule's modified values: the intended change scaled down so
    /// its projected revenue impact is at the limit (impact taken as
    /// proportional to the change). `None` when there is no such value.
    fn scaled_to_limit(&self, limit: i64, revenue: i64) -> Option<Action> {
        let whole = i64::try_from(revenue.unsigned_abs()).ok()?;
        let sc = |x: i64| scale(x, limit, whole);
        let action = match &self.s.intention.action {
            Action::SetPrice { sku, price_minor } => {
                let now = self.ctx.skus.get(sku)?.price_minor.value;
                Action::SetPrice {
                    sku: sku.clone(),
                    price_minor: now + sc(price_minor - now),
                }
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                starts_at_ms,
                ends_at_ms,
            } => Action::LaunchPromotion {
                target: target.clone(),
                discount_bp: u32::try_from(sc(i64::from(*discount_bp))).ok()?,
                starts_at_ms: *starts_at_ms,
                ends_at_ms: *ends_at_ms,
            },
            Action::ChangeAdBudget {
                campaign,
                budget_minor,
            } => {
                let key = format!("campaign:{campaign}|budget_minor");
                let now = match self.ctx.facts.get(&key).map(|f| &f.value) {
                    Some(Value::Int(v)) => *v,
                    _ => 0,
                };
                Action::ChangeAdBudget {
                    campaign: campaign.clone(),
                    budget_minor: now + sc(budget_minor - now),
                }
            }
            Action::Reorder { sku, quantity } => Action::Reorder {
                sku: sku.clone(),
                quantity: u32::try_from(sc(i64::from(*quantity))).ok()?,
            },
            Action::ReserveStock { sku, quantity } => Action::ReserveStock {
                sku: sku.clone(),
                quantity: u32::try_from(sc(i64::from(*quantity))).ok()?,
            },
            _ => return None,
        };
        let unchanged = |a: &Action| match a {
            Action::LaunchPromotion { discount_bp, .. } => *discount_bp == 0,
            Action::Reorder { quantity, .. } | Action::ReserveStock { quantity, .. } => {
                *quantity == 0
            }
            _ => false,
        };
        (action != self.s.intention.action && !unchanged(&action)).then_some(action)
    }

    /// The escalation for this intention: approve it, approve a pending rival
    /// instead, reject them all, or (when a rule suggests one) approve it with
    /// modified values.
    pub(super) fn escalate(&mut self, summary: String, modified: Option<Action>) -> Outcome {
        let me = self.s.seq;
        let rivals = self.live_rivals();
        let mut involved = vec![involved_of(self.s)];
        involved.extend(rivals.iter().map(|r| involved_of(r)));
        let mut options = vec![EscalationOption {
            label: format!("approve intention {me} by `{}`", self.s.agent),
            approve: vec![me],
            modified: None,
        }];
        let pending: Vec<u64> = rivals
            .iter()
            .filter(|r| r.status.is_pending())
            .map(|r| r.seq)
            .collect();
        for r in rivals.iter().filter(|r| r.status.is_pending()) {
            options.push(EscalationOption {
                label: format!("approve intention {} by `{}` instead", r.seq, r.agent),
                approve: vec![r.seq],
                modified: None,
            });
        }
        let all = if pending.is_empty() {
            format!("reject intention {me}")
        } else {
            let mut v = vec![me];
            v.extend(&pending);
            format!("reject all of {v:?}")
        };
        options.push(EscalationOption {
            label: all,
            approve: vec![],
            modified: None,
        });
        if let Some(action) = modified {
            options.push(EscalationOption {
                label: format!(
                    "approve intention {me} with modified values (scaled to the threshold): {}",
                    describe(&action)
                ),
                approve: vec![me],
                modified: Some(action),
            });
        }
        Outcome::Escalated {
            escalation: Escalation {
                summary,
                options,
                involved,
            },
        }
    }
}

/// A short human description of an action's values.
pub fn describe(action: &Action) -> String {
    match action {
        Action::SetPrice { sku, price_minor } => format!("price of {sku} {price_minor}"),
        Action::LaunchPromotion {
            discount_bp,
            target,
            ..
        } => format!("promotion of {discount_bp} bp on {target:?}"),
        Action::ChangeAdBudget {
            campaign,
            budget_minor,
        } => format!("budget of {campaign} {budget_minor}"),
        Action::Reorder { sku, quantity } => format!("reorder {quantity} of {sku}"),
        Action::ReserveStock { sku, quantity } => format!("reserve {quantity} of {sku}"),
        other => format!("{other:?}"),
    }
}

fn involved_of(s: &IntentionState) -> Involved {
    Involved {
        intention: s.seq,
        agent: s.agent.clone(),
        reasoning: s.intention.reasoning.clone(),
        impact: s.intention.impact,
    }
}

/// The decision owed when an escalation expires: the safe default, citing the
/// escalation's own decision.
pub(super) fn expire_escalation(
    ctx: &crate::context::Context,
    s: &IntentionState,
    expires_at_ms: u64,
) -> crate::vocab::Decision {
    let mut d = super::base(ctx, s);
    let safe = ctx
        .rules
        .as_ref()
        .and_then(|r| r.rules.escalation.as_ref())
        .map_or(crate::rules::SafeDefault::Reject, |e| e.safe_default);
    let (verdict, outcome) = match safe {
        crate::rules::SafeDefault::Reject => ("reject", Outcome::Rejected),
        crate::rules::SafeDefault::Approve => ("approve", Outcome::Approved),
    };
    let escalated = s.decisions.last().copied().unwrap_or(s.seq);
    d.rule = "escalation.expiry".into();
    d.outcome = outcome;
    d.competing = vec![escalated];
    d.trace.push(step(
        "escalation.expiry",
        verdict,
        &format!("no human settled the escalation (decision {escalated}) in time; the rule set's safe default is to {verdict}"),
        vec![
            read("expires_at_ms", Value::Int(super::as_i64(expires_at_ms)), escalated),
            read("now_ms", Value::Int(super::as_i64(ctx.now_ms)), ctx.seq),
        ],
    ));
    d
}
