//! The life of an intention in the context: decisions change its status, the
//! work queues follow the status, approved actions take effect, and human
//! resolutions settle escalations (and become precedents).
//!
//! Architecture invariant: pure, like the rest of the fold.

use super::{contact_key, stamp, Context, Precedent, Promotion, Settlement, Status};
use crate::value::Value;
use crate::vocab::{Action, Decision, DeferUntil, Lifecycle, Outcome};

impl Context {
    pub(super) fn apply_decision(&mut self, seq: u64, at_ms: u64, decision: &Decision) {
        if !self.intentions.contains_key(&decision.intention) {
            return;
        }
        let expiry = self
            .rules
            .as_ref()
            .and_then(|r| r.rules.escalation_expiry_ms());
        self.unindex(decision.intention);
        let Some(state) = self.intentions.get_mut(&decision.intention) else {
            return;
        };
        state.decisions.push(seq);
        state.settlement = None;
        state.escalation = None;
        state.status = match &decision.outcome {
            Outcome::Approved | Outcome::Modified { .. } => Status::Approved,
            Outcome::Deferred {
                until: DeferUntil::Time(t),
            } => Status::Deferred { until_ms: *t },
            Outcome::Deferred {
                until: DeferUntil::Step(r),
            } => Status::Waiting {
                run: r.run.clone(),
                step: r.step.clone(),
                unblocked: false,
            },
            Outcome::Rejected => Status::Rejected,
            Outcome::Escalated { escalation } => {
                state.escalation = Some((decision.rule.clone(), escalation.options.clone()));
                Status::Escalated {
                    expires_at_ms: expiry.map(|e| at_ms.saturating_add(e)),
                }
            }
            Outcome::Expired => Status::Expired,
        };
        let action = decision
            .outcome
            .approved_action(&state.intention.action)
            .cloned();
        self.index(decision.intention);
        if let Some(action) = action {
            if let Some((key, at)) = self
                .intentions
                .get(&decision.intention)
                .and_then(|s| Some((s.intention.action.conflict_key()?, s.at_ms)))
            {
                self.approved_by_conflict
                    .entry(key)
                    .or_default()
                    .insert((at, decision.intention));
            }
            self.approved_by.insert(seq, decision.intention);
            self.execute(decision.intention, seq, at_ms, &action);
        }
    }

    /// Removes an intention from the work queues (before its state changes).
    pub(super) fn unindex(&mut self, seq: u64) {
        let Some(s) = self.intentions.get(&seq) else {
            return;
        };
        self.open.remove(&seq);
        self.fresh.remove(&seq);
        self.settling.remove(&seq);
        self.unblocked.remove(&seq);
        match &s.status {
            Status::Deferred { until_ms } => {
                self.due.remove(&(*until_ms, seq));
            }
            Status::Escalated {
                expires_at_ms: Some(t),
            } => {
                self.escalations_expiring.remove(&(*t, seq));
            }
            Status::Waiting { run, step, .. } => {
                if let Some(steps) = self.waiting.get_mut(run) {
                    if let Some(set) = steps.get_mut(step) {
                        set.remove(&seq);
                        if set.is_empty() {
                            steps.remove(step);
                        }
                    }
                    if steps.is_empty() {
                        self.waiting.remove(run);
                    }
                }
            }
            _ => {}
        }
        if let Some(e) = s.intention.expires_at_ms {
            self.expiring.remove(&(e, seq));
        }
        if let Some(k) = s.intention.action.conflict_key() {
            if let Some(set) = self.pending_by_conflict.get_mut(&k) {
                set.remove(&seq);
                if set.is_empty() {
                    self.pending_by_conflict.remove(&k);
                }
            }
        }
    }

    /// Puts an intention into the work queues its state calls for.
    pub(super) fn index(&mut self, seq: u64) {
        let Some(s) = self.intentions.get(&seq) else {
            return;
        };
        let pending = s.status.is_pending();
        if s.status == Status::New {
            self.fresh.insert(seq);
        }
        if s.settlement.is_some() {
            self.settling.insert(seq);
        }
        match &s.status {
            Status::Deferred { until_ms } => {
                self.due.insert((*until_ms, seq));
            }
            Status::Escalated {
                expires_at_ms: Some(t),
            } => {
                self.escalations_expiring.insert((*t, seq));
            }
            Status::Waiting {
                unblocked: true, ..
            } => {
                self.unblocked.insert(seq);
            }
            Status::Waiting { run, step, .. } => {
                self.waiting
                    .entry(run.clone())
                    .or_default()
                    .entry(step.clone())
                    .or_default()
                    .insert(seq);
            }
            _ => {}
        }
        if pending {
            if let Some(e) = s.intention.expires_at_ms {
                self.expiring.insert((e, seq));
            }
            if let Some(k) = s.intention.action.conflict_key() {
                self.pending_by_conflict.entry(k).or_default().insert(seq);
            }
        }
        if pending || s.status == Status::New || s.settlement.is_some() {
            self.open.insert(seq);
        }
    }

    /// Intentions waiting on a step of `run` become decidable again: those
    /// waiting on `step`, or all of the run's when `step` is `None`.
    pub(super) fn unblock(&mut self, run: &str, step: Option<&str>) {
        let seqs: Vec<u64> = match (self.waiting.get(run), step) {
            (None, _) => return,
            (Some(steps), Some(st)) => steps.get(st).into_iter().flatten().copied().collect(),
            (Some(steps), None) => steps.values().flatten().copied().collect(),
        };
        for seq in seqs {
            self.unindex(seq);
            if let Some(Status::Waiting { unblocked, .. }) =
                self.intentions.get_mut(&seq).map(|s| &mut s.status)
            {
                *unblocked = true;
            }
            self.index(seq);
        }
    }

    /// The approved action takes effect in the context.
    fn execute(&mut self, intention: u64, seq: u64, at_ms: u64, action: &Action) {
        match action {
            Action::SetPrice { sku, price_minor } => {
                self.skus.entry(sku.clone()).or_default().price_minor = stamp(*price_minor, seq);
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                starts_at_ms,
                ends_at_ms,
            } => {
                self.add_promotion(Promotion {
                    intention,
                    decision: seq,
                    target: target.clone(),
                    discount_bp: *discount_bp,
                    starts_at_ms: *starts_at_ms,
                    ends_at_ms: *ends_at_ms,
                });
            }
            Action::Reorder { sku, quantity } => {
                let s = self.skus.entry(sku.clone()).or_default();
                s.on_order = stamp(s.on_order.value + i64::from(*quantity), seq);
            }
            Action::Discontinue { sku } => {
                self.skus.entry(sku.clone()).or_default().lifecycle =
                    stamp(Lifecycle::Discontinuing, seq);
            }
            Action::NotifyCustomer {
                customer,
                order,
                topic,
            } => {
                self.contacts
                    .insert(contact_key(customer, order, topic), stamp(at_ms, seq));
            }
            Action::OfferPerk { order, perk } => {
                self.orders
                    .entry(order.clone())
                    .or_default()
                    .perks
                    .push(stamp(perk.clone(), seq));
            }
            Action::ChangeAdBudget {
                campaign,
                budget_minor,
            } => {
                let key = format!("campaign:{campaign}|budget_minor");
                self.facts
                    .insert(key, stamp(Value::Int(*budget_minor), seq));
            }
            Action::ReserveStock { sku, quantity } => {
                let s = self.skus.entry(sku.clone()).or_default();
                s.reserved = stamp(s.reserved.value + i64::from(*quantity), seq);
            }
            Action::Generic {
                entity,
                attribute,
                value,
            } => {
                self.facts
                    .insert(format!("{entity}|{attribute}"), stamp(value.clone(), seq));
            }
        }
    }

    pub(super) fn apply_resolution(&mut self, seq: u64, intention: u64, option: u32) {
        let Some(state) = self.intentions.get(&intention) else {
            return;
        };
        let Some((rule, options)) = state.escalation.clone() else {
            return;
        };
        let Some(chosen) = options.get(option as usize).cloned() else {
            return;
        };
        let involved: Vec<u64> = options
            .iter()
            .flat_map(|o| o.approve.iter())
            .copied()
            .chain([intention])
            .collect();
        let signature = self.signature(&rule, intention);
        self.precedents.push(Precedent {
            resolution: seq,
            signature,
            at_ms: self.now_ms,
            approved: chosen.approve.contains(&intention),
            modified: chosen.modified.is_some(),
        });
        for i in involved {
            let settle = self
                .intentions
                .get(&i)
                .is_some_and(|s| s.status == Status::New || s.status.is_pending());
            if !settle {
                continue;
            }
            self.unindex(i);
            if let Some(s) = self.intentions.get_mut(&i) {
                let approve = chosen.approve.contains(&i);
                s.settlement = Some(Settlement {
                    resolution: seq,
                    approve,
                    modified: chosen.modified.clone().filter(|_| approve),
                });
            }
            self.index(i);
        }
    }

    /// A conflict's signature for precedents: rule, action kind, entity class
    /// (a sku's category, otherwise the entity's type).
    pub fn signature(&self, rule: &str, intention: u64) -> String {
        let Some(state) = self.intentions.get(&intention) else {
            return format!("{rule}|?");
        };
        let action = &state.intention.action;
        let class = match action {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku } => self.skus.get(sku).map_or_else(
                || "sku".to_owned(),
                |s| format!("category:{}", s.category.value),
            ),
            other => other.entity().split(':').next().unwrap_or("").to_owned(),
        };
        format!("{rule}|{:?}|{class}", action.kind())
    }
}
