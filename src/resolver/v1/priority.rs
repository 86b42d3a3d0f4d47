//! `priority`: among live intentions of other agents with the same conflict
//! key, the best-ranked one wins. Rank = (the objective's position in the rule
//! set's order, the agent's priority (higher first), the earlier seq). Only
//! the best-ranked rival is read and cited: it alone decides the outcome.

use std::cmp::Reverse;

use super::steps::{Eval, Step};
use super::{i64_of, read};
use crate::context::{IntentionState, Status};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{CiteRole, Field, Finding, Outcome, Read, RuleId, Verdict};

type Rank = (usize, Reverse<u32>, u64);

impl Eval<'_> {
    /// Live intentions of other agents that conflict with this one (same
    /// conflict key), in seq order: pending ones (deferred, waiting,
    /// escalated), and approved ones younger than the live window.
    pub(super) fn live_rivals(&self) -> Vec<&IntentionState> {
        let Some(key) = self.s.intention.action.conflict_key() else {
            return Vec::new();
        };
        let q = &self.ctx.intentions;
        let window = self.rules.rules.live_window_ms();
        let now = self.ctx.now_ms;
        // Live while `at_ms + window > now`, i.e. `at_ms >= now - window + 1`.
        let from = if now >= window { now - window + 1 } else { 0 };
        let seqs = q.on_conflict_key(&key, from);
        // An agent revising its own plan is not a conflict: rivals are other agents'.
        seqs.iter()
            .filter(|s| **s != self.s.seq)
            .filter_map(|s| q.get(*s))
            .filter(|o| o.agent != self.s.agent)
            .filter(|o| match o.status {
                Status::Approved => o.at_ms.saturating_add(window) > now,
                Status::Deferred { .. } | Status::Waiting { .. } | Status::Escalated { .. } => true,
                Status::New => false,
            })
            .collect()
    }

    fn rank_of(&self, s: &IntentionState) -> Rank {
        let priority = self
            .ctx
            .authority
            .agents
            .get(&s.agent)
            .map_or(0, |a| a.value.priority);
        (
            self.rules.rules.rank(s.intention.objective),
            Reverse(priority),
            s.seq,
        )
    }

    /// What the rank of `s` was read from.
    fn rank_reads(&self, s: &IntentionState) -> Vec<Read> {
        let objective = s.intention.objective;
        let agent = self.ctx.authority.agents.get(&s.agent);
        let mut reads = vec![
            read(
                Field::Objective,
                Some(EntityRef::Intention(s.seq)),
                Value::Text(objective.name().into()),
                s.seq,
            ),
            self.rule_read(
                Field::ObjectiveRank,
                i64_of(self.rules.rules.rank(objective) as u64),
            ),
        ];
        if let Some(a) = agent {
            reads.push(read(
                Field::AgentPriority,
                Some(EntityRef::Agent(s.agent.clone())),
                Value::Int(i64::from(a.value.priority)),
                a.seq,
            ));
        }
        reads
    }

    pub(super) fn priority(&mut self) -> Step {
        self.s.intention.action.conflict_key()?;
        let rivals = self.live_rivals();
        let Some(best) = rivals.iter().min_by_key(|r| self.rank_of(r)).copied() else {
            self.push(RuleId::Priority, Verdict::Pass, Finding::NoRival, vec![]);
            return None;
        };
        let mut reads = self.rank_reads(self.s);
        reads.extend(self.rank_reads(best));
        let outranked = self.rank_of(best) < self.rank_of(self.s);
        let (by, agent, objective) = (best.seq, best.agent.clone(), best.intention.objective);
        let count = u32::try_from(rivals.len()).unwrap_or(u32::MAX);
        if outranked {
            self.cite(CiteRole::Rival, by);
            let f = Finding::Outranked {
                by,
                agent,
                objective,
            };
            self.push(RuleId::Priority, Verdict::Reject, f, reads);
            return Some(Outcome::Rejected);
        }
        let f = Finding::OutranksRivals { rivals: count };
        self.push(RuleId::Priority, Verdict::Pass, f, reads);
        None
    }
}
