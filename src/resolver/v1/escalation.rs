//! The threshold rule, precedents, the escalations a human settles, and their
//! expiry to the safe default.
//!
//! A precedent settles a later conflict only when a person would call the two
//! the same case (ARCHITECTURE.md, "Precedents"): the same rule escalated it,
//! the same kind of action, on the same class of entity (the category of its
//! skus, the campaign of a budget), moving the value the same way, with a
//! revenue impact of the same sign within a factor of two of the impact the
//! human saw, inside the rule set's precedent window.

use super::steps::{Eval, Step};
use super::{base, finish, int, read, step, LISTED_MAX};
use crate::context::{Context, IntentionState, Precedent};
use crate::entity::EntityRef;
use crate::rules::SafeDefault;
use crate::value::Value;
use crate::vocab::{
    Action, CiteRole, Decision, EntityClass, Escalation, EscalationOption, EscalationReason, Field,
    Finding, Involved, OptionChoice, Outcome, RuleId, Signature, Verdict,
};

/// `x · part / whole`, truncated toward zero, in i128 (inside the bounds the
/// product fits; the result is at most |x|).
fn scale(x: i64, part: i64, whole: i64) -> Option<i64> {
    if whole == 0 {
        return None;
    }
    let v = i128::from(x) * i128::from(part) / i128::from(whole);
    i64::try_from(v).ok()
}

/// The class of entity an action is about, given its skus' categories.
fn class_of(action: &Action, categories: &[String]) -> EntityClass {
    match action {
        Action::ChangeAdBudget { campaign, .. } => EntityClass::Campaign(campaign.clone()),
        Action::NotifyCustomer { .. } => EntityClass::Customers,
        Action::OfferPerk { .. } => EntityClass::Orders,
        Action::Generic {
            entity, attribute, ..
        } => EntityClass::Attribute {
            kind: entity.kind().map(str::to_owned),
            attribute: attribute.clone(),
        },
        _ => match categories {
            [one] => EntityClass::Category(one.clone()),
            many => EntityClass::Categories(many.to_vec()),
        },
    }
}

/// Does the impact `new` lie within a factor of two of `seen`, same sign?
fn comparable(new: i64, seen: i64) -> bool {
    let (n, s) = (i128::from(new), i128::from(seen));
    if n.signum() != s.signum() {
        return false;
    }
    let (n, s) = (n.abs(), s.abs());
    2 * n >= s && n <= 2 * s
}

impl Eval<'_> {
    fn signature(&self) -> Signature {
        let action = &self.s.intention.action;
        Signature {
            rule: RuleId::Threshold,
            kind: action.kind(),
            class: class_of(action, &self.ctx.categories_of(action)),
            direction: self.ctx.direction_of(action),
        }
    }

    fn precedent_signature(p: &Precedent) -> Signature {
        Signature {
            rule: p.rule,
            kind: p.action.kind(),
            class: class_of(&p.action, &p.categories),
            direction: p.direction,
        }
    }

    pub(super) fn threshold(&mut self) -> Step {
        let limit = self.rules.rules.threshold.escalate_above_minor;
        let own = self.s.intention.impact.revenue_minor;
        let reads = vec![
            self.rule_read(Field::EscalateAboveMinor, limit),
            self.own_read(Field::RevenueImpactMinor, Value::Int(own)),
        ];
        // Version 4 may compare a calibrated impact (and traces how); the
        // precedent rule still matches on the intention's own.
        let revenue = match self.later.calibrate {
            Some(calibrate) => calibrate(self, own),
            None => own,
        };
        if revenue.unsigned_abs() <= limit.unsigned_abs() {
            self.push(
                RuleId::Threshold,
                Verdict::Pass,
                Finding::WithinLimit,
                reads,
            );
            return None;
        }
        let f = Finding::AboveLimit {
            revenue_minor: revenue,
            limit_minor: limit,
        };
        self.push(RuleId::Threshold, Verdict::Escalate, f, reads);
        let suggestion = self.scaled_to_limit(limit, revenue);
        if let Some(outcome) = self.follow_precedent(own, suggestion.clone()) {
            return Some(outcome);
        }
        let reason = EscalationReason::Threshold {
            agent: self.s.agent.clone(),
            kind: self.s.intention.action.kind(),
            revenue_minor: revenue,
            limit_minor: limit,
        };
        Some(self.escalate(reason, suggestion.map(|(a, _)| a)))
    }

    /// The newest matching precedent decides, if there is one.
    fn follow_precedent(
        &mut self,
        revenue: i64,
        suggestion: Option<(Action, Option<crate::vocab::Read>)>,
    ) -> Step {
        let signature = self.signature();
        let window = self.rules.rules.precedent_window_ms();
        let now = self.ctx.now_ms;
        let ctx = self.ctx;
        let mut matching = ctx.precedents.newest_first().filter(|p| {
            Self::precedent_signature(p) == signature
                && comparable(revenue, p.impact_minor)
                && p.at_ms.saturating_add(window) >= now
                && (!p.modified || suggestion.is_some())
        });
        // Version 4 passes over precedents its outcomes retired, tracing
        // each; when none is left, the threshold step moves back to the end
        // of the trace: it decides (with no retirement, it is already last).
        let retired = self.later.retired;
        let threshold_step = self.d.trace.len().saturating_sub(1);
        let p = loop {
            let Some(p) = matching.next() else {
                if threshold_step < self.d.trace.len() {
                    let step = self.d.trace.remove(threshold_step);
                    self.d.trace.push(step);
                }
                return None;
            };
            match retired {
                Some(retired) if retired(self, p) => continue,
                _ => break p,
            }
        };
        let (resolution, approved, modified) = (p.resolution, p.approved, p.modified);
        let mut reads = vec![
            read(
                Field::PrecedentImpactMinor,
                Some(EntityRef::Intention(p.intention)),
                Value::Int(p.impact_minor),
                p.intention,
            ),
            read(
                Field::ChosenOption,
                Some(EntityRef::Intention(p.intention)),
                Value::Bool(approved),
                resolution,
            ),
        ];
        let f = Finding::PrecedentApplies {
            resolution,
            signature,
            precedent_impact_minor: p.impact_minor,
            impact_minor: revenue,
            approved,
            modified,
        };
        self.cite(CiteRole::Precedent, resolution);
        let (verdict, outcome) = match (approved, modified, suggestion) {
            (true, true, Some((action, current))) => {
                reads.extend(current);
                (Verdict::Approve, Outcome::Modified { action })
            }
            (true, _, _) => (Verdict::Approve, Outcome::Approved),
            (false, _, _) => (Verdict::Reject, Outcome::Rejected),
        };
        self.push(RuleId::Precedent, verdict, f, reads);
        Some(outcome)
    }

    /// The threshold rule's modified values: the intended change scaled down
    /// so its projected revenue impact is at the limit (impact taken as
    /// proportional to the change), with the read of the current value it
    /// starts from. `None` when there is no such value.
    fn scaled_to_limit(
        &self,
        limit: i64,
        revenue: i64,
    ) -> Option<(Action, Option<crate::vocab::Read>)> {
        let whole = i64::try_from(revenue.unsigned_abs()).ok()?;
        let sc = |x: i64| scale(x, limit, whole);
        let (action, current) = match &self.s.intention.action {
            Action::SetPrice { sku, price_minor } => {
                let now = self.ctx.store.sku(sku)?.price_minor.clone();
                let r = read(
                    Field::PriceMinor,
                    Some(EntityRef::Sku(sku.clone())),
                    Value::Int(now.value),
                    now.seq,
                );
                let price = now.value.checked_add(sc(price_minor - now.value)?)?;
                (
                    Action::SetPrice {
                        sku: sku.clone(),
                        price_minor: price,
                    },
                    Some(r),
                )
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                starts_at_ms,
                ends_at_ms,
            } => {
                let bp = u32::try_from(sc(i64::from(*discount_bp))?).ok()?;
                let a = Action::LaunchPromotion {
                    target: target.clone(),
                    discount_bp: bp,
                    starts_at_ms: *starts_at_ms,
                    ends_at_ms: *ends_at_ms,
                };
                (a, None)
            }
            Action::ChangeAdBudget {
                campaign,
                budget_minor,
            } => {
                // No budget recorded: nothing to scale from.
                let now = self.ctx.store.budget(campaign)?.clone();
                let r = read(
                    Field::BudgetMinor,
                    Some(EntityRef::Campaign(campaign.clone())),
                    Value::Int(now.value),
                    now.seq,
                );
                let budget = now.value.checked_add(sc(budget_minor - now.value)?)?;
                let a = Action::ChangeAdBudget {
                    campaign: campaign.clone(),
                    budget_minor: budget,
                };
                (a, Some(r))
            }
            Action::Reorder { sku, quantity } => {
                let q = u32::try_from(sc(i64::from(*quantity))?).ok()?;
                let a = Action::Reorder {
                    sku: sku.clone(),
                    quantity: q,
                };
                (a, None)
            }
            Action::ReserveStock { sku, quantity } => {
                let q = u32::try_from(sc(i64::from(*quantity))?).ok()?;
                let a = Action::ReserveStock {
                    sku: sku.clone(),
                    quantity: q,
                };
                (a, None)
            }
            _ => return None,
        };
        // A modified action must itself be a valid action (a promotion of 0 bp,
        // a reorder of nothing, a price of 0 are not) and differ from the intended.
        let valid = action.validate("modified").is_ok();
        (valid && action != self.s.intention.action).then_some((action, current))
    }

    /// The escalation for this intention: approve it, approve a pending rival
    /// instead, reject them all, or (when a rule suggests one) approve it with
    /// modified values.
    pub(crate) fn escalate(
        &mut self,
        reason: EscalationReason,
        modified: Option<Action>,
    ) -> Outcome {
        let me = self.s.seq;
        let rivals = self.live_rivals();
        let mut involved = vec![involved_of(self.s)];
        involved.extend(rivals.iter().take(LISTED_MAX).map(|r| involved_of(r)));
        let option = |choice, approve: Vec<u64>| EscalationOption {
            choice,
            approve,
            modified: None,
        };
        let mut options = vec![option(OptionChoice::ApproveThis, vec![me])];
        let pending: Vec<u64> = rivals
            .iter()
            .filter(|r| r.status.is_pending())
            .take(LISTED_MAX)
            .map(|r| r.seq)
            .collect();
        options.extend(
            pending
                .iter()
                .map(|r| option(OptionChoice::ApproveRival, vec![*r])),
        );
        options.push(option(OptionChoice::RejectAll, vec![]));
        if let Some(action) = modified {
            options.push(EscalationOption {
                choice: OptionChoice::ApproveModified,
                approve: vec![me],
                modified: Some(action),
            });
        }
        Outcome::Escalated {
            escalation: Escalation {
                reason,
                options,
                involved,
            },
        }
    }
}

fn involved_of(s: &IntentionState) -> Involved {
    Involved {
        intention: s.seq,
        agent: s.agent.clone(),
        action: s.intention.action.clone(),
        reasoning: s.intention.reasoning.clone(),
        impact: s.intention.impact,
        objective: s.intention.objective,
    }
}

/// The decision owed when an escalation expires: the safe default of the
/// rules in force, citing the escalation.
pub(super) fn expire(ctx: &Context, s: &IntentionState, expires_at_ms: u64) -> Decision {
    let mut d = base(ctx, s);
    let safe = ctx
        .authority
        .rules
        .as_ref()
        .and_then(|r| r.rules.escalation.as_ref())
        .map_or(SafeDefault::Reject, |e| e.safe_default);
    let (verdict, outcome, approve) = match safe {
        SafeDefault::Reject => (Verdict::Reject, Outcome::Rejected, false),
        SafeDefault::Approve => (Verdict::Approve, Outcome::Approved, true),
    };
    let escalated = s.decisions.last().copied().unwrap_or(s.seq);
    d.cites.push(crate::vocab::Cite {
        role: CiteRole::Escalation,
        seq: escalated,
    });
    d.trace.push(step(
        RuleId::EscalationExpiry,
        verdict,
        Finding::EscalationExpired {
            escalation: escalated,
            approve,
        },
        vec![
            read(
                Field::EscalationExpiresAtMs,
                Some(EntityRef::Intention(s.seq)),
                int(expires_at_ms),
                escalated,
            ),
            read(Field::NowMs, None, int(ctx.now_ms), ctx.seq),
        ],
    ));
    finish(d, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparable_means_same_sign_within_a_factor_of_two() {
        assert!(comparable(600_000, 700_000));
        assert!(comparable(350_000, 700_000));
        assert!(!comparable(349_999, 700_000));
        assert!(!comparable(3_500_000, 700_000));
        assert!(!comparable(-600_000, 700_000));
        assert!(comparable(i64::MAX, i64::MAX));
    }
}
