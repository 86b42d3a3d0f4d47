//! The rule steps of one decision, in the order the module docs give; the
//! margin, priority, threshold and sequencing rules have modules of their own.

use super::{i64_of, int, read, step, LISTED_MAX};
use crate::context::{ContactKey, Context, InstalledRules, IntentionState};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{
    Action, Autonomy, Cite, CiteRole, Decision, DeferUntil, EscalationReason, Field, Finding,
    Outcome, PromotionTarget, Read, RuleId, Verdict,
};

/// One decision in the making: the context, the rules in force, the
/// intention and the trace so far.
pub(crate) struct Eval<'a> {
    pub ctx: &'a Context,
    pub rules: &'a InstalledRules,
    pub s: &'a IntentionState,
    pub d: Decision,
    /// What later versions add (nothing in versions 1 and 2).
    pub later: Later,
}

/// A rule's conclusion: `None` passes to the next rule.
pub(crate) type Step = Option<Outcome>;

/// Where a later version's rules run (see [`Eval::extra`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Point {
    /// After the built-in guards (`guard.fraud_perk`), before `temporal`:
    /// rules that refuse.
    AfterGuards,
    /// After `priority`, before `threshold`: rules that escalate.
    AfterPriority,
}

/// Rules a later version adds, called at each [`Point`].
pub(crate) type Extra = fn(&mut Eval<'_>, Point) -> Step;

/// What later versions add to version 1's evaluation. Each hook that is
/// `None` leaves version 1's behaviour, byte for byte.
#[derive(Clone, Copy, Default)]
pub(crate) struct Later {
    /// Rules run at each [`Point`] (version 3's custom guards).
    pub rules: Option<Extra>,
    /// The revenue impact the threshold rule compares, given the
    /// intention's own; traces what it did (version 4's calibration).
    pub calibrate: Option<fn(&mut Eval<'_>, i64) -> i64>,
    /// Whether a matching precedent no longer settles cases; traces why
    /// (version 4's retirement).
    pub retired: Option<fn(&mut Eval<'_>, &crate::context::Precedent) -> bool>,
}

impl Eval<'_> {
    pub(super) fn rule_read(&self, field: Field, value: i64) -> Read {
        read(field, None, Value::Int(value), self.rules.seq)
    }

    /// A read of this intention's own field.
    pub(super) fn own_read(&self, field: Field, value: Value) -> Read {
        read(
            field,
            Some(EntityRef::Intention(self.s.seq)),
            value,
            self.s.seq,
        )
    }

    pub(crate) fn push(&mut self, rule: RuleId, verdict: Verdict, f: Finding, reads: Vec<Read>) {
        self.d.trace.push(step(rule, verdict, f, reads));
    }

    pub(super) fn cite(&mut self, role: CiteRole, seq: u64) {
        let c = Cite { role, seq };
        if !self.d.cites.contains(&c) {
            self.d.cites.push(c);
        }
    }

    pub(super) fn run(&mut self) -> Outcome {
        let steps: [fn(&mut Self) -> Step; 13] = [
            Self::expiry,
            Self::autonomy,
            Self::sequence,
            Self::known,
            Self::dedup,
            Self::lifecycle,
            Self::fraud_perk,
            Self::extra_after_guards,
            Self::temporal,
            Self::margin,
            Self::priority,
            Self::extra_after_priority,
            Self::threshold,
        ];
        for f in steps {
            if let Some(outcome) = f(self) {
                return outcome;
            }
        }
        self.push(
            RuleId::Approve,
            Verdict::Approve,
            Finding::AllPassed,
            vec![],
        );
        Outcome::Approved
    }

    /// A later version's rules at [`Point::AfterGuards`] (none: nothing is traced).
    fn extra_after_guards(&mut self) -> Step {
        let extra = self.later.rules?;
        extra(self, Point::AfterGuards)
    }

    /// A later version's rules at [`Point::AfterPriority`].
    fn extra_after_priority(&mut self) -> Step {
        let extra = self.later.rules?;
        extra(self, Point::AfterPriority)
    }

    fn expiry(&mut self) -> Step {
        let exp = self.s.expires_at_ms?;
        let reads = super::expiry_reads(self.ctx, self.s, exp);
        if exp <= self.ctx.now_ms {
            let f = Finding::Expired {
                expires_at_ms: exp,
                max_wait_h: self.s.wait_limit.map(|(_, h)| h),
            };
            self.push(RuleId::Expiry, Verdict::Expire, f, reads);
            return Some(Outcome::Expired);
        }
        self.push(RuleId::Expiry, Verdict::Pass, Finding::NotExpired, reads);
        None
    }

    fn autonomy(&mut self) -> Step {
        let kind = self.s.intention.action.kind();
        let agent_id = &self.s.agent;
        let Some(agent) = self.ctx.authority.agents.get(agent_id) else {
            let f = Finding::AgentNotRegistered {
                agent: agent_id.clone(),
            };
            self.push(RuleId::Autonomy, Verdict::Reject, f, vec![]);
            return Some(Outcome::Rejected);
        };
        let level = agent
            .value
            .autonomy
            .get(&kind)
            .copied()
            .unwrap_or(Autonomy::Autonomous);
        let reads = vec![read(
            Field::Autonomy(kind),
            Some(EntityRef::Agent(agent_id.clone())),
            Value::Text(level.name().into()),
            agent.seq,
        )];
        match level {
            Autonomy::Autonomous => {
                let f = Finding::Autonomous { kind };
                self.push(RuleId::Autonomy, Verdict::Pass, f, reads);
                None
            }
            Autonomy::Manual => {
                let f = Finding::ManualKind { kind };
                self.push(RuleId::Autonomy, Verdict::Reject, f, reads);
                Some(Outcome::Rejected)
            }
            Autonomy::ProposeAndApprove => {
                let f = Finding::ProposeAndApprove { kind };
                self.push(RuleId::Autonomy, Verdict::Escalate, f, reads);
                let reason = EscalationReason::Autonomy {
                    agent: agent_id.clone(),
                    kind,
                };
                Some(self.escalate(reason, None))
            }
        }
    }

    /// `guard.known`: every sku, category and order the action needs exists,
    /// and an order named with a customer is that customer's.
    fn known(&mut self) -> Step {
        let store = &self.ctx.store;
        let needs: Vec<EntityRef> = match &self.s.intention.action {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku } => vec![EntityRef::Sku(sku.clone())],
            Action::LaunchPromotion { target, .. } => match target {
                PromotionTarget::Skus(s) => s.iter().cloned().map(EntityRef::Sku).collect(),
                PromotionTarget::Category(c) => vec![EntityRef::Category(c.clone())],
            },
            Action::NotifyCustomer { order, .. } | Action::OfferPerk { order, .. } => {
                vec![EntityRef::Order(order.clone())]
            }
            Action::ChangeAdBudget { .. } | Action::Generic { .. } => return None,
        };
        if let Some(missing) = needs.iter().find(|e| !store.knows(e)) {
            let f = Finding::Unknown {
                entity: missing.clone(),
            };
            self.push(RuleId::GuardKnown, Verdict::Reject, f, vec![]);
            return Some(Outcome::Rejected);
        }
        let mut reads = Vec::new();
        for e in needs.iter().take(LISTED_MAX) {
            match e {
                EntityRef::Sku(id) => {
                    if let Some(s) = store.sku(id) {
                        let v = Value::Text(s.category.value.clone());
                        reads.push(read(Field::Category, Some(e.clone()), v, s.category.seq));
                    }
                }
                EntityRef::Order(id) => {
                    if let Some(o) = store.order(id) {
                        let v = Value::Text(o.customer.value.clone());
                        reads.push(read(
                            Field::OrderCustomer,
                            Some(e.clone()),
                            v,
                            o.customer.seq,
                        ));
                    }
                }
                _ => {}
            }
        }
        if let Action::NotifyCustomer {
            customer, order, ..
        } = &self.s.intention.action
        {
            let owner = store.order(order).map(|o| o.customer.value.clone());
            if let Some(owner) = owner.filter(|o| o != customer) {
                let f = Finding::OrderOfAnotherCustomer {
                    order: order.clone(),
                    customer: owner,
                };
                self.push(RuleId::GuardKnown, Verdict::Reject, f, reads);
                return Some(Outcome::Rejected);
            }
        }
        self.push(RuleId::GuardKnown, Verdict::Pass, Finding::Known, reads);
        None
    }

    fn dedup(&mut self) -> Step {
        let Action::NotifyCustomer {
            customer,
            order,
            topic,
        } = &self.s.intention.action
        else {
            return None;
        };
        let window_h = self.rules.rules.dedup.notification_window_h;
        let mut reads = vec![self.rule_read(Field::NotificationWindowH, i64_of(window_h))];
        let key = ContactKey {
            customer: customer.clone(),
            order: order.clone(),
            topic: topic.clone(),
        };
        if let Some(c) = self.ctx.store.contact(&key) {
            reads.push(read(
                Field::LastContactMs,
                Some(EntityRef::Customer(customer.clone())),
                int(c.value),
                c.seq,
            ));
            let window = self.rules.rules.notification_window_ms();
            if self.ctx.now_ms.saturating_sub(c.value) < window {
                self.cite(CiteRole::Contact, c.seq);
                let f = Finding::AlreadyNotified {
                    customer: customer.clone(),
                    order: order.clone(),
                    topic: topic.clone(),
                    at_ms: c.value,
                };
                self.push(RuleId::DedupNotification, Verdict::Reject, f, reads);
                return Some(Outcome::Rejected);
            }
        }
        self.push(
            RuleId::DedupNotification,
            Verdict::Pass,
            Finding::NotNotified,
            reads,
        );
        None
    }

    fn lifecycle(&mut self) -> Step {
        let Action::Reorder { sku, .. } = &self.s.intention.action else {
            return None;
        };
        // guard.known passed: the sku is catalogued.
        let lc = self.ctx.store.sku(sku)?.lifecycle.clone();
        let reads = vec![read(
            Field::Lifecycle,
            Some(EntityRef::Sku(sku.clone())),
            Value::Text(lc.value.name().into()),
            lc.seq,
        )];
        if self.rules.rules.guard.no_reorder.contains(&lc.value) {
            let f = Finding::NoReorder {
                sku: sku.clone(),
                lifecycle: lc.value,
            };
            self.push(RuleId::GuardLifecycle, Verdict::Reject, f, reads);
            return Some(Outcome::Rejected);
        }
        let f = Finding::LifecycleAllows;
        self.push(RuleId::GuardLifecycle, Verdict::Pass, f, reads);
        None
    }

    fn fraud_perk(&mut self) -> Step {
        let Action::OfferPerk { order, .. } = &self.s.intention.action else {
            return None;
        };
        if !self.rules.rules.guard.no_perk_on_fraud_flag {
            return None;
        }
        let flag = self.ctx.store.order(order).and_then(|o| o.flagged.clone());
        let Some(f) = flag else {
            let fnd = Finding::NotFlagged;
            self.push(RuleId::GuardFraudPerk, Verdict::Pass, fnd, vec![]);
            return None;
        };
        let reads = vec![read(
            Field::FraudFlag,
            Some(EntityRef::Order(order.clone())),
            Value::Text(f.value.clone()),
            f.seq,
        )];
        self.cite(CiteRole::FraudFlag, f.seq);
        let fnd = Finding::FraudFlagged {
            order: order.clone(),
        };
        self.push(RuleId::GuardFraudPerk, Verdict::Reject, fnd, reads);
        Some(Outcome::Rejected)
    }

    fn temporal(&mut self) -> Step {
        let Action::SetPrice { sku, .. } = &self.s.intention.action else {
            return None;
        };
        let lead_h = self.rules.rules.temporal.promotion_lead_h;
        let horizon = self
            .ctx
            .now_ms
            .saturating_add(self.rules.rules.promotion_lead_ms());
        let blocking: Vec<(u64, u64, u64, u64)> = self
            .ctx
            .promotions_on(sku)
            .into_iter()
            .filter(|p| p.starts_at_ms <= horizon)
            .map(|p| (p.intention, p.decision, p.starts_at_ms, p.ends_at_ms))
            .collect();
        let mut reads = vec![self.rule_read(Field::PromotionLeadH, i64_of(lead_h))];
        let Some(until) = blocking.iter().map(|b| b.3).max() else {
            let f = Finding::NoPromotionWindow;
            self.push(RuleId::TemporalPromotionWindow, Verdict::Pass, f, reads);
            return None;
        };
        for (intention, decision, starts, _) in blocking.iter().take(LISTED_MAX) {
            reads.push(read(
                Field::PromotionStartsAtMs,
                Some(EntityRef::Intention(*intention)),
                int(*starts),
                *decision,
            ));
            self.cite(CiteRole::Promotion, *intention);
        }
        let f = Finding::PromotionWindow {
            sku: sku.clone(),
            promotions: u32::try_from(blocking.len()).unwrap_or(u32::MAX),
            until_ms: until,
        };
        self.push(RuleId::TemporalPromotionWindow, Verdict::Defer, f, reads);
        Some(Outcome::Deferred {
            until: DeferUntil::Time(until),
        })
    }
}
