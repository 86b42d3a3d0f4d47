//! `Intentions::check`: the work queues and indexes rebuilt from the states
//! and compared (see `crate::context::Violation`).

use super::{IntentionState, Intentions, Status};
use crate::invariant::{ensure, Part, Violation};

impl Intentions {
    /// Checks that every work queue and index is exactly what the states call
    /// for, and the rules each state keeps (see `invariant`).
    pub fn check(&self) -> Result<(), Violation> {
        let part = Part::Intentions;
        let mut rebuilt = Intentions {
            states: self.states.clone(),
            ..Intentions::default()
        };
        for (&seq, s) in &self.states {
            ensure(s.seq == seq, part, "a state is filed under its own seq")?;
            check_state(s)?;
            if s.status == Status::Approved {
                // Only approvals with a conflict key stay (see `decide`).
                let key = s.intention.action.conflict_key();
                ensure(
                    key.is_some(),
                    part,
                    "an approval that stays has a conflict key",
                )?;
                if let Some(key) = key {
                    let entry = (s.at_ms, seq);
                    rebuilt
                        .approved_by_conflict
                        .entry(key)
                        .or_default()
                        .insert(entry);
                    rebuilt.retiring.insert(entry);
                }
            } else {
                rebuilt.index(seq);
            }
        }
        ensure(
            rebuilt.open == self.open,
            part,
            "open = the states not settled",
        )?;
        ensure(rebuilt.fresh == self.fresh, part, "fresh = the new states")?;
        ensure(
            rebuilt.settling == self.settling,
            part,
            "settling = the states with a settlement",
        )?;
        ensure(rebuilt.due == self.due, part, "due = the deferrals")?;
        ensure(
            rebuilt.expiring == self.expiring,
            part,
            "expiring = the pending with an expiry",
        )?;
        ensure(
            rebuilt.escalations_expiring == self.escalations_expiring,
            part,
            "escalations_expiring = the escalations with an expiry",
        )?;
        ensure(
            rebuilt.waiting == self.waiting,
            part,
            "waiting = the step waits",
        )?;
        ensure(
            rebuilt.unblocked == self.unblocked,
            part,
            "unblocked = the waits that are over",
        )?;
        ensure(
            rebuilt.pending_by_conflict == self.pending_by_conflict,
            part,
            "pending_by_conflict = the pending by key",
        )?;
        ensure(
            rebuilt.approved_by_conflict == self.approved_by_conflict,
            part,
            "approved_by_conflict = the approvals by key",
        )?;
        ensure(
            rebuilt.retiring == self.retiring,
            part,
            "retiring = the approvals by time",
        )
    }
}

/// The rules one intention's state keeps.
fn check_state(s: &IntentionState) -> Result<(), Violation> {
    let part = Part::Intentions;
    let escalated = matches!(s.status, Status::Escalated { .. });
    ensure(
        s.escalation.is_some() == escalated,
        part,
        "an open escalation exactly when escalated",
    )?;
    ensure(
        s.decisions.is_empty() == (s.status == Status::New),
        part,
        "decided at least once exactly when not new",
    )?;
    ensure(
        s.settlement.is_none() || s.status == Status::New || s.status.is_pending(),
        part,
        "only a new or pending intention awaits a settlement",
    )?;
    ensure(
        s.wait_limit.is_none() || s.expires_at_ms.is_some(),
        part,
        "a wait limit sets an expiry",
    )?;
    // `>=`, not `>`: a what-if run folds its own follow-ups at their
    // cause's seq.
    ensure(
        s.decisions.windows(2).all(|w| w[0] <= w[1])
            && s.decisions.first().is_none_or(|d| *d >= s.seq),
        part,
        "decisions follow the announcement, in seq order",
    )?;
    ensure(
        s.settlement.as_ref().is_none_or(|t| t.resolution >= s.seq),
        part,
        "a settlement follows the announcement",
    )
}
