//! The life of an intention: announced, decided (perhaps several times),
//! settled. Decisions change its status and the resolver's work queues follow
//! the status; human resolutions settle escalations.
//!
//! Memory follows what rules can still see: a rejected or expired intention
//! leaves at once, an approved one without a conflict key leaves at once, and
//! an approved one with a conflict key leaves once the priority rule's live
//! window (of the rules in force then) has passed. Lengthening the window later
//! does not bring back what already left; live and replay agree because both
//! fold the same way.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use serde::Serialize;

use super::Inconsistent;
use crate::vocab::{
    Action, ConflictKey, Decision, DeferUntil, EscalationOption, Intention, Outcome, RuleId,
    StepRef,
};

mod check;
#[cfg(test)]
mod tests;

/// Where an open intention stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Announced; its decision is the next record.
    New,
    Deferred {
        until_ms: u64,
    },
    /// Deferred until a step of a workflow run completes (rule
    /// `workflow.sequence`); `unblocked` once it has (or the run ended).
    Waiting {
        step: StepRef,
        unblocked: bool,
    },
    /// Waiting for a human; resolves to the rule set's safe default at
    /// `expires_at_ms` if the rules in force when it escalated say so.
    Escalated {
        expires_at_ms: Option<u64>,
    },
    /// Approved and still live for the priority rule.
    Approved,
}

impl Status {
    /// Deferred, waiting or escalated: not settled, and a live rival.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Status::Deferred { .. } | Status::Waiting { .. } | Status::Escalated { .. }
        )
    }
}

/// A human's settlement waiting to be written as a decision.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Settlement {
    pub resolution: u64,
    /// The intention whose escalation the human resolved.
    pub escalated: u64,
    pub option: u32,
    pub approve: bool,
    /// The chosen option's modified action, when it approves this intention.
    pub modified: Option<Action>,
}

/// The escalation an intention waits on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct OpenEscalation {
    /// The decision that escalated it.
    pub decision: u64,
    pub rule: RuleId,
    pub options: Vec<EscalationOption>,
}

/// An intention the resolver can still see.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct IntentionState {
    pub seq: u64,
    pub agent: String,
    pub at_ms: u64,
    pub intention: Intention,
    /// When it expires: the earlier of its own `expires_at_ms` and the rule
    /// set's longest wait after its announcement (`None` only before any
    /// rule set is installed, without an own expiry).
    pub expires_at_ms: Option<u64>,
    /// Set when the rule set's longest wait decided `expires_at_ms`:
    /// (the rules record's seq, `max_wait_h`).
    pub wait_limit: Option<(u64, u64)>,
    pub status: Status,
    /// Decision records about it, in order.
    pub decisions: Vec<u64>,
    pub escalation: Option<OpenEscalation>,
    pub settlement: Option<Settlement>,
    /// The `intention_withdrawn` record by which its agent withdrew it: its
    /// expiry became that record's time, so the resolver closes it next
    /// (an `expired` decision, whose expiry read cites this seq).
    pub withdrawn: Option<u64>,
}

/// Intentions and the resolver's work queues over them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Intentions {
    states: BTreeMap<u64, IntentionState>,
    /// Not yet settled (new, pending, or awaiting a human's settlement).
    open: BTreeSet<u64>,
    /// New intentions: each owes its first decision.
    fresh: BTreeSet<u64>,
    /// Settled by a human, awaiting the decision that records it.
    settling: BTreeSet<u64>,
    /// Deferrals by (until, seq).
    due: BTreeSet<(u64, u64)>,
    /// Pending intentions with an expiry, by (expires, seq).
    expiring: BTreeSet<(u64, u64)>,
    /// Escalations that resolve to the safe default, by (expires, seq).
    escalations_expiring: BTreeSet<(u64, u64)>,
    /// Intentions waiting on a step.
    waiting: BTreeMap<StepRef, BTreeSet<u64>>,
    /// Intentions whose step wait is over: to be decided again.
    unblocked: BTreeSet<u64>,
    /// Pending intentions by conflict key.
    pending_by_conflict: BTreeMap<ConflictKey, BTreeSet<u64>>,
    /// Approved intentions by conflict key, by (the intention's time, seq):
    /// the priority rule's window is a range of it.
    approved_by_conflict: BTreeMap<ConflictKey, BTreeSet<(u64, u64)>>,
    /// Approved intentions with a conflict key, by (time, seq): they leave
    /// once the live window has passed.
    retiring: BTreeSet<(u64, u64)>,
}

impl Intentions {
    pub fn get(&self, seq: u64) -> Option<&IntentionState> {
        self.states.get(&seq)
    }

    /// How many intentions the resolver can still see.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Every intention the resolver can still see, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = &IntentionState> {
        self.states.values()
    }

    /// The intentions not yet settled, in seq order.
    pub fn open(&self) -> impl Iterator<Item = &IntentionState> {
        self.open.iter().filter_map(|seq| self.states.get(seq))
    }

    /// The oldest intention that owes its first decision.
    pub fn first_fresh(&self) -> Option<&IntentionState> {
        self.fresh.first().and_then(|seq| self.states.get(seq))
    }

    /// The oldest intention a human settled whose decision is not written yet.
    pub fn first_settling(&self) -> Option<&IntentionState> {
        self.settling.first().and_then(|seq| self.states.get(seq))
    }

    /// The oldest intention whose step wait is over.
    pub fn first_unblocked(&self) -> Option<&IntentionState> {
        self.unblocked.first().and_then(|seq| self.states.get(seq))
    }

    /// The earliest deferral that has ended by `now_ms`.
    pub fn first_due(&self, now_ms: u64) -> Option<&IntentionState> {
        self.first_by_time(&self.due, now_ms).map(|(_, s)| s)
    }

    /// The earliest pending intention whose expiry `now_ms` has reached.
    pub fn first_expired(&self, now_ms: u64) -> Option<&IntentionState> {
        self.first_by_time(&self.expiring, now_ms).map(|(_, s)| s)
    }

    /// The earliest escalation that resolves to the safe default by
    /// `now_ms`, with the time it expired.
    pub fn first_escalation_expired(&self, now_ms: u64) -> Option<(u64, &IntentionState)> {
        self.first_by_time(&self.escalations_expiring, now_ms)
    }

    fn first_by_time<'a>(
        &'a self,
        set: &BTreeSet<(u64, u64)>,
        now_ms: u64,
    ) -> Option<(u64, &'a IntentionState)> {
        let &(t, seq) = set.first().filter(|(t, _)| *t <= now_ms)?;
        Some((t, self.states.get(&seq)?))
    }

    /// The seqs on conflict key `key` that may be live rivals: pending ones,
    /// and approved ones whose time is `approved_from_ms` or later.
    pub fn on_conflict_key(&self, key: &ConflictKey, approved_from_ms: u64) -> BTreeSet<u64> {
        let mut seqs: BTreeSet<u64> = self
            .approved_by_conflict
            .get(key)
            .map(|set| {
                set.range((approved_from_ms, 0)..)
                    .map(|(_, s)| *s)
                    .collect()
            })
            .unwrap_or_default();
        seqs.extend(self.pending_by_conflict.get(key).into_iter().flatten());
        seqs
    }

    /// A new intention. `limit` is the rule set's longest wait in force:
    /// (the rules record's seq, `max_wait_h`).
    pub fn announce(
        &mut self,
        seq: u64,
        (agent, at_ms): (&str, u64),
        intention: &Intention,
        limit: Option<(u64, u64)>,
    ) {
        debug_assert!(!self.states.contains_key(&seq), "seqs are unique");
        let own = intention.expires_at_ms;
        let cap = limit.map(|(_, h)| at_ms.saturating_add(h.saturating_mul(3_600_000)));
        let (expires_at_ms, wait_limit) = match (own, cap) {
            (Some(o), Some(c)) if c < o => (Some(c), limit),
            (Some(o), _) => (Some(o), None),
            (None, Some(c)) => (Some(c), limit),
            (None, None) => (None, None),
        };
        debug_assert!(expires_at_ms.is_none_or(|e| own.is_none_or(|o| e <= o)));
        self.states.insert(
            seq,
            IntentionState {
                seq,
                agent: agent.to_owned(),
                at_ms,
                intention: intention.clone(),
                expires_at_ms,
                wait_limit,
                status: Status::New,
                decisions: Vec::new(),
                escalation: None,
                settlement: None,
                withdrawn: None,
            },
        );
        self.index(seq);
    }

    /// Folds a decision in. Returns the action that takes effect, if the
    /// decision approves one.
    pub fn decide(
        &mut self,
        seq: u64,
        at_ms: u64,
        d: &Decision,
        escalation_expiry_ms: Option<u64>,
    ) -> Result<Option<Action>, Inconsistent> {
        if !self.open.contains(&d.intention) {
            return Err(Inconsistent::NotOpen {
                seq,
                intention: d.intention,
            });
        }
        self.unindex(d.intention);
        let state = self
            .states
            .get_mut(&d.intention)
            .ok_or(Inconsistent::NotOpen {
                seq,
                intention: d.intention,
            })?;
        state.decisions.push(seq);
        state.settlement = None;
        state.escalation = None;
        let action = d.outcome.approved_action(&state.intention.action).cloned();
        let status = match &d.outcome {
            Outcome::Approved | Outcome::Modified { .. } => Some(Status::Approved),
            Outcome::Deferred {
                until: DeferUntil::Time(t),
            } => Some(Status::Deferred { until_ms: *t }),
            Outcome::Deferred {
                until: DeferUntil::Step(r),
            } => Some(Status::Waiting {
                step: r.clone(),
                unblocked: false,
            }),
            Outcome::Escalated { escalation } => {
                state.escalation = Some(OpenEscalation {
                    decision: seq,
                    rule: d.rule,
                    options: escalation.options.clone(),
                });
                Some(Status::Escalated {
                    expires_at_ms: escalation_expiry_ms.map(|e| at_ms.saturating_add(e)),
                })
            }
            Outcome::Rejected | Outcome::Expired => None,
        };
        let key = state.intention.action.conflict_key();
        match (status, key) {
            (Some(Status::Approved), Some(key)) => {
                state.status = Status::Approved;
                let (at, agent) = (state.at_ms, state.agent.clone());
                self.supersede(&key, &agent);
                self.approved_by_conflict
                    .entry(key)
                    .or_default()
                    .insert((at, d.intention));
                self.retiring.insert((at, d.intention));
            }
            // Settled for good, and no rule looks back at it.
            (Some(Status::Approved), None) | (None, _) => {
                self.states.remove(&d.intention);
            }
            (Some(s), _) => {
                state.status = s;
                self.index(d.intention);
            }
        }
        Ok(action)
    }

    /// An agent's newly approved plan for a conflict key replaces its own
    /// earlier approved one there: the earlier leaves the live set (an agent
    /// revising its plan is not its own rival, and its old plan is no longer
    /// anyone's). Keeps at most one live approval per agent and key.
    fn supersede(&mut self, key: &ConflictKey, agent: &str) {
        let Some(set) = self.approved_by_conflict.get_mut(key) else {
            return;
        };
        let old: Vec<(u64, u64)> = set
            .iter()
            .filter(|(_, seq)| self.states.get(seq).is_some_and(|s| s.agent == agent))
            .copied()
            .collect();
        debug_assert!(old.len() <= 1, "one live approval per agent and key");
        for entry in old {
            set.remove(&entry);
            self.retiring.remove(&entry);
            self.states.remove(&entry.1);
        }
        if set.is_empty() {
            self.approved_by_conflict.remove(key);
        }
    }

    /// A human chose option `option` of the escalation of `intention`: every
    /// pending intention in the options is settled (the chosen ones approved).
    /// Returns the escalation's rule, options and chosen option.
    pub fn resolve(
        &mut self,
        seq: u64,
        intention: u64,
        option: u32,
    ) -> Result<(RuleId, EscalationOption), Inconsistent> {
        let open = self
            .states
            .get(&intention)
            .and_then(|s| s.escalation.clone())
            .ok_or(Inconsistent::NoEscalation { seq, intention })?;
        let chosen = open
            .options
            .get(option as usize)
            .cloned()
            .ok_or(Inconsistent::NoEscalation { seq, intention })?;
        let involved: BTreeSet<u64> = open
            .options
            .iter()
            .flat_map(|o| o.approve.iter().copied())
            .chain([intention])
            .collect();
        for i in involved {
            let settle = self
                .states
                .get(&i)
                .is_some_and(|s| s.status == Status::New || s.status.is_pending());
            if !settle {
                continue;
            }
            self.unindex(i);
            if let Some(s) = self.states.get_mut(&i) {
                let approve = chosen.approve.contains(&i);
                s.settlement = Some(Settlement {
                    resolution: seq,
                    escalated: intention,
                    option,
                    approve,
                    modified: chosen.modified.clone().filter(|_| approve),
                });
            }
            self.index(i);
        }
        Ok((open.rule, chosen))
    }

    /// Approved intentions whose live window has passed leave.
    pub fn retire(&mut self, now_ms: u64, live_window_ms: Option<u64>) {
        let Some(window) = live_window_ms else {
            return;
        };
        while let Some(&(at, seq)) = self.retiring.first() {
            if at.saturating_add(window) > now_ms {
                break;
            }
            self.retiring.remove(&(at, seq));
            let Some(s) = self.states.get(&seq) else {
                continue;
            };
            if s.status != Status::Approved {
                continue;
            }
            if let Some(key) = s.intention.action.conflict_key() {
                if let Some(set) = self.approved_by_conflict.get_mut(&key) {
                    set.remove(&(at, seq));
                    if set.is_empty() {
                        self.approved_by_conflict.remove(&key);
                    }
                }
            }
            self.states.remove(&seq);
        }
    }

    /// Its agent withdraws pending intention `intention` by record `seq` at
    /// `at_ms`: its expiry becomes `at_ms` (if earlier), so the resolver's
    /// next follow-up closes it. Admission allows only the intention's agent,
    /// only while it is pending and no person has settled it; anything else
    /// is left as is.
    pub fn withdraw(&mut self, seq: u64, intention: u64, at_ms: u64) {
        let withdrawable = self.states.get(&intention).is_some_and(|s| {
            s.status.is_pending() && s.settlement.is_none() && s.withdrawn.is_none()
        });
        if !withdrawable || !self.open.contains(&intention) {
            return;
        }
        self.unindex(intention);
        let mut expiry = at_ms;
        if let Some(s) = self.states.get_mut(&intention) {
            expiry = s.expires_at_ms.map_or(at_ms, |e| e.min(at_ms));
            s.expires_at_ms = Some(expiry);
            s.withdrawn = Some(seq);
        }
        self.index(intention);
        debug_assert!(
            self.expiring.contains(&(expiry, intention)),
            "a withdrawn intention is due to expire at once"
        );
    }

    /// Removes an intention from the work queues (before its state changes).
    fn unindex(&mut self, seq: u64) {
        let Some(s) = self.states.get(&seq) else {
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
            Status::Waiting { step, .. } => {
                if let Some(set) = self.waiting.get_mut(step) {
                    set.remove(&seq);
                    if set.is_empty() {
                        self.waiting.remove(step);
                    }
                }
            }
            _ => {}
        }
        if let Some(e) = s.expires_at_ms {
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
    fn index(&mut self, seq: u64) {
        let Some(s) = self.states.get(&seq) else {
            return;
        };
        let pending = s.status.is_pending();
        let settling = s.settlement.is_some();
        if s.status == Status::New {
            self.fresh.insert(seq);
        }
        if settling {
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
            Status::Waiting { step, .. } => {
                self.waiting.entry(step.clone()).or_default().insert(seq);
            }
            _ => {}
        }
        if pending {
            if let Some(e) = s.expires_at_ms {
                self.expiring.insert((e, seq));
            }
            if let Some(k) = s.intention.action.conflict_key() {
                self.pending_by_conflict.entry(k).or_default().insert(seq);
            }
        }
        if pending || s.status == Status::New || settling {
            self.open.insert(seq);
        }
    }

    /// Intentions waiting on a step of `run` become decidable again: those
    /// waiting on `step`, or all of the run's when `step` is `None`.
    pub fn unblock(&mut self, run: &str, step: Option<&str>) {
        let from = StepRef {
            run: run.to_owned(),
            step: String::new(),
        };
        let seqs: Vec<u64> = self
            .waiting
            .range(from..)
            .take_while(|(r, _)| r.run == run)
            .filter(|(r, _)| step.is_none_or(|s| r.step == s))
            .flat_map(|(_, set)| set.iter().copied())
            .collect();
        for seq in seqs {
            self.unindex(seq);
            if let Some(Status::Waiting { unblocked, .. }) =
                self.states.get_mut(&seq).map(|s| &mut s.status)
            {
                *unblocked = true;
            }
            self.index(seq);
        }
    }

    /// The earliest time something pending becomes decidable.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        [
            self.due.first().map(|d| d.0),
            self.expiring.first().map(|e| e.0),
            self.escalations_expiring.first().map(|e| e.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
