//! The rule steps of one decision, in the order the module docs give.

use super::{as_i64, read, step};
use crate::context::{contact_key, Context, InstalledRules, IntentionState, Status};
use crate::value::Value;
use crate::vocab::{Action, Autonomy, Decision, DeferUntil, Outcome, Read, BP_PER_UNIT};

pub(super) struct Eval<'a> {
    pub ctx: &'a Context,
    pub rules: &'a InstalledRules,
    pub s: &'a IntentionState,
    pub d: Decision,
}

pub(super) type Step = Option<Outcome>;

impl Eval<'_> {
    pub(super) fn rule_read(&self, name: &str, value: i64) -> Read {
        read(name, Value::Int(value), self.rules.seq)
    }

    pub(super) fn push(&mut self, rule: &str, verdict: &str, note: String, reads: Vec<Read>) {
        self.d.trace.push(step(rule, verdict, &note, reads));
    }

    pub fn run(&mut self) -> Outcome {
        let steps: [fn(&mut Self) -> Step; 10] = [
            Self::expiry,
            Self::autonomy,
            Self::sequence,
            Self::dedup,
            Self::lifecycle,
            Self::fraud_perk,
            Self::temporal,
            Self::margin,
            Self::priority,
            Self::threshold,
        ];
        for f in steps {
            if let Some(outcome) = f(self) {
                return outcome;
            }
        }
        self.push("approve", "approve", "every rule passed".into(), vec![]);
        Outcome::Approved
    }

    fn expiry(&mut self) -> Step {
        let exp = self.s.intention.expires_at_ms?;
        let reads = vec![
            read("expires_at_ms", Value::Int(as_i64(exp)), self.s.seq),
            read("now_ms", Value::Int(as_i64(self.ctx.now_ms)), self.ctx.seq),
        ];
        if exp <= self.ctx.now_ms {
            self.push(
                "expiry",
                "expire",
                "the intention expired before it was decided".into(),
                reads,
            );
            return Some(Outcome::Expired);
        }
        self.push("expiry", "pass", "not expired".into(), reads);
        None
    }

    fn autonomy(&mut self) -> Step {
        let kind = self.s.intention.action.kind();
        let Some(agent) = self.ctx.agents.get(&self.s.agent) else {
            let note = format!("agent `{}` is not registered", self.s.agent);
            self.push("autonomy", "reject", note, vec![]);
            return Some(Outcome::Rejected);
        };
        let level = agent
            .value
            .autonomy
            .get(&kind)
            .copied()
            .unwrap_or(Autonomy::Autonomous);
        let reads = vec![read(
            &format!("autonomy.{kind:?}"),
            Value::Text(format!("{level:?}")),
            agent.seq,
        )];
        match level {
            Autonomy::Autonomous => {
                self.push("autonomy", "pass", "autonomous for this kind".into(), reads);
                None
            }
            Autonomy::Manual => {
                self.push(
                    "autonomy",
                    "reject",
                    format!(
                        "{kind:?} is manual for `{}`: a human acts, not the agent",
                        self.s.agent
                    ),
                    reads,
                );
                Some(Outcome::Rejected)
            }
            Autonomy::ProposeAndApprove => {
                self.push(
                    "autonomy",
                    "escalate",
                    format!("{kind:?} is propose-and-approve for `{}`", self.s.agent),
                    reads,
                );
                let summary = format!(
                    "`{}` proposes {kind:?} on {}; its autonomy requires a human's approval",
                    self.s.agent, self.d.entity
                );
                Some(self.escalate(summary, None))
            }
        }
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
        let window = self.rules.rules.notification_window_ms();
        let mut reads = vec![self.rule_read(
            "dedup.notification_window_h",
            as_i64(self.rules.rules.dedup.notification_window_h),
        )];
        if let Some(c) = self.ctx.contacts.get(&contact_key(customer, order, topic)) {
            reads.push(read("last_contact_ms", Value::Int(as_i64(c.value)), c.seq));
            if self.ctx.now_ms.saturating_sub(c.value) < window {
                self.d.competing.push(c.seq);
                let note = format!("customer {customer} was already notified about {topic} on order {order} (seq {})", c.seq);
                self.push("dedup.notification", "reject", note, reads);
                return Some(Outcome::Rejected);
            }
        }
        self.push(
            "dedup.notification",
            "pass",
            "no notification within the window".into(),
            reads,
        );
        None
    }

    fn lifecycle(&mut self) -> Step {
        let Action::Reorder { sku, .. } = &self.s.intention.action else {
            return None;
        };
        let lc = self.ctx.skus.get(sku).map(|s| s.lifecycle.clone());
        let reads: Vec<Read> = lc
            .iter()
            .map(|l| read("lifecycle", Value::Text(format!("{:?}", l.value)), l.seq))
            .collect();
        if let Some(l) = lc.filter(|l| self.rules.rules.guard.no_reorder.contains(&l.value)) {
            self.push(
                "guard.lifecycle",
                "reject",
                format!("sku {sku} is {:?}: no reorder", l.value),
                reads,
            );
            return Some(Outcome::Rejected);
        }
        self.push(
            "guard.lifecycle",
            "pass",
            "lifecycle allows a reorder".into(),
            reads,
        );
        None
    }

    fn fraud_perk(&mut self) -> Step {
        let Action::OfferPerk { order, .. } = &self.s.intention.action else {
            return None;
        };
        let flag = self.ctx.orders.get(order).and_then(|o| o.flagged.clone());
        match flag {
            Some(f) if self.rules.rules.guard.no_perk_on_fraud_flag => {
                let reads = vec![read("fraud_flag", Value::Text(f.value.clone()), f.seq)];
                self.d.competing.push(f.seq);
                self.push(
                    "guard.fraud_perk",
                    "reject",
                    format!("order {order} is flagged for fraud ({})", f.value),
                    reads,
                );
                Some(Outcome::Rejected)
            }
            _ => {
                self.push(
                    "guard.fraud_perk",
                    "pass",
                    "order not flagged".into(),
                    vec![],
                );
                None
            }
        }
    }

    fn promotions_on(&self, sku: &str) -> Vec<&crate::context::Promotion> {
        self.ctx.promotions_on(sku)
    }

    fn temporal(&mut self) -> Step {
        let Action::SetPrice { sku, .. } = &self.s.intention.action else {
            return None;
        };
        let lead = self.rules.rules.promotion_lead_ms();
        let now = self.ctx.now_ms;
        let blocking: Vec<_> = self
            .promotions_on(sku)
            .into_iter()
            .filter(|p| p.starts_at_ms <= now.saturating_add(lead))
            .map(|p| (p.intention, p.decision, p.starts_at_ms, p.ends_at_ms))
            .collect();
        let mut reads = vec![self.rule_read(
            "temporal.promotion_lead_h",
            as_i64(self.rules.rules.temporal.promotion_lead_h),
        )];
        reads.extend(blocking.iter().map(|(i, dec, s, _)| {
            read(
                &format!("promotion[{i}].starts_at_ms"),
                Value::Int(as_i64(*s)),
                *dec,
            )
        }));
        let Some(until) = blocking.iter().map(|b| b.3).max() else {
            self.push(
                "temporal.promotion_window",
                "pass",
                "no promotion active or starting soon".into(),
                reads,
            );
            return None;
        };
        self.d.competing.extend(blocking.iter().map(|b| b.0));
        let note = format!(
            "a promotion on sku {sku} is active or starts within the lead; the plan made first holds until {}",
            crate::time::format_rfc3339(until)
        );
        self.push("temporal.promotion_window", "defer", note, reads);
        Some(Outcome::Deferred {
            until: DeferUntil::Time(until),
        })
    }

    fn margin(&mut self) -> Step {
        let min_bp = self.rules.rules.guard.min_margin_bp;
        let checks: Vec<(String, i64, u64, u32)> = match &self.s.intention.action {
            Action::SetPrice { sku, price_minor } => {
                let d = self
                    .promotions_on(sku)
                    .iter()
                    .map(|p| p.discount_bp)
                    .max()
                    .unwrap_or(0);
                vec![(sku.clone(), *price_minor, self.s.seq, d)]
            }
            Action::LaunchPromotion {
                target,
                discount_bp,
                ..
            } => self
                .ctx
                .skus_of(target)
                .into_iter()
                .filter_map(|sku| {
                    let st = self.ctx.skus.get(&sku)?;
                    let others = self
                        .promotions_on(&sku)
                        .iter()
                        .map(|p| p.discount_bp)
                        .max()
                        .unwrap_or(0);
                    Some((
                        sku,
                        st.price_minor.value,
                        st.price_minor.seq,
                        (*discount_bp).max(others),
                    ))
                })
                .collect(),
            _ => return None,
        };
        let mut reads = vec![self.rule_read("guard.min_margin_bp", min_bp)];
        for (sku, price, price_seq, discount_bp) in checks {
            let cost = self
                .ctx
                .skus
                .get(&sku)
                .map(|s| s.cost_minor.clone())
                .unwrap_or_default();
            let effective = price * (BP_PER_UNIT - i64::from(discount_bp)) / BP_PER_UNIT;
            reads.push(read(
                &format!("{sku}.price_minor"),
                Value::Int(price),
                price_seq,
            ));
            reads.push(read(
                &format!("{sku}.cost_minor"),
                Value::Int(cost.value),
                cost.seq,
            ));
            reads.push(read(
                &format!("{sku}.discount_bp"),
                Value::Int(i64::from(discount_bp)),
                self.s.seq,
            ));
            let margin_bp = if effective > 0 {
                (effective - cost.value) * BP_PER_UNIT / effective
            } else {
                i64::MIN
            };
            if margin_bp < min_bp {
                if let Some(winner) = self.intention_that_wrote(price_seq) {
                    self.d.competing.push(winner);
                }
                let note = format!(
                    "sku {sku}: price {price} less {discount_bp} bp = {effective} against cost {}: margin {} bp is below {min_bp} bp",
                    cost.value,
                    if margin_bp == i64::MIN { "-inf".to_owned() } else { margin_bp.to_string() }
                );
                self.push("guard.margin", "reject", note, reads);
                return Some(Outcome::Rejected);
            }
        }
        self.push(
            "guard.margin",
            "pass",
            "margin holds after every active and planned discount".into(),
            reads,
        );
        None
    }

    /// The intention whose approval wrote the value stamped `seq`, if any.
    fn intention_that_wrote(&self, seq: u64) -> Option<u64> {
        self.ctx.approved_by.get(&seq).copied()
    }

    /// Live intentions of other agents that conflict with this one (same
    /// conflict key), in seq order: pending ones (deferred, waiting, escalated),
    /// and approved ones younger than the live window (a range of the index).
    pub(super) fn live_rivals(&self) -> Vec<&IntentionState> {
        let Some(key) = self.s.intention.action.conflict_key() else {
            return Vec::new();
        };
        let window = self.rules.rules.live_window_ms();
        let now = self.ctx.now_ms;
        // Live while `at_ms + window > now`, i.e. `at_ms >= now - window + 1`.
        let from = if now >= window { now - window + 1 } else { 0 };
        let mut seqs: std::collections::BTreeSet<u64> = self
            .ctx
            .approved_by_conflict
            .get(&key)
            .map(|set| set.range((from, 0)..).map(|(_, s)| *s).collect())
            .unwrap_or_default();
        seqs.extend(self.ctx.pending_by_conflict.get(&key).into_iter().flatten());
        // An agent revising its own plan is not a conflict: rivals are other agents'.
        seqs.iter()
            .filter(|s| **s != self.s.seq)
            .filter_map(|s| self.ctx.intentions.get(s))
            .filter(|o| o.agent != self.s.agent)
            .filter(|o| match o.status {
                Status::Approved => o.at_ms.saturating_add(window) > now,
                Status::Deferred { .. } | Status::Waiting { .. } | Status::Escalated { .. } => true,
                _ => false,
            })
            .collect()
    }

    fn rank_key(&self, s: &IntentionState) -> (usize, std::cmp::Reverse<u32>, u64) {
        let priority = self
            .ctx
            .agents
            .get(&s.agent)
            .map_or(0, |a| a.value.priority);
        (
            self.rules.rules.rank(s.intention.objective),
            std::cmp::Reverse(priority),
            s.seq,
        )
    }

    fn priority(&mut self) -> Step {
        let me = self.rank_key(self.s);
        let rivals = self.live_rivals();
        let mut reads: Vec<Read> = rivals
            .iter()
            .map(|r| {
                read(
                    &format!("intention[{}].objective", r.seq),
                    Value::Text(format!("{:?}", r.intention.objective)),
                    r.seq,
                )
            })
            .collect();
        reads.push(read(
            "objective",
            Value::Text(format!("{:?}", self.s.intention.objective)),
            self.s.seq,
        ));
        let winner = rivals
            .iter()
            .map(|r| (self.rank_key(r), r))
            .filter(|(k, _)| *k < me)
            .min_by_key(|(k, _)| *k)
            .map(|(_, r)| (r.seq, r.agent.clone(), r.intention.objective));
        if let Some((seq, agent, objective)) = winner {
            self.d.competing.push(seq);
            let note =
                format!("live intention {seq} by `{agent}` ({objective:?}) outranks this one");
            self.push("priority", "reject", note, reads);
            return Some(Outcome::Rejected);
        }
        let outranked: Vec<u64> = rivals.iter().map(|r| r.seq).collect();
        self.d.competing.extend(&outranked);
        let note = if outranked.is_empty() {
            "no live rival".to_owned()
        } else {
            format!("outranks live intentions {outranked:?}")
        };
        self.push("priority", "pass", note, reads);
        None
    }
}
