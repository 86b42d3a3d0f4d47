//! A decision explained for people and models: its outcome and rule, the
//! sentence `parley` prints for it, and each step of its trace as a sentence
//! with the values it read. Rendered from the structured decision when shown
//! (decision bytes hold no prose); shared by the HTTP API, the console and MCP.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::entity::EntityRef;
use crate::render;
use crate::vocab::{Decision, Finding, OutcomeKind, RuleId};

/// One trace step in words.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct StepText {
    pub rule: RuleId,
    /// approve | reject | defer | escalate | pass | …
    pub verdict: String,
    /// What the rule found, as a sentence.
    pub text: String,
    /// The values it read: `sku:S1.price = 1999 (seq 12)`.
    pub reads: Vec<String>,
}

/// A decision explained.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Explanation {
    /// The decision record's seq.
    pub seq: u64,
    pub at_ms: u64,
    /// The intention decided.
    pub intention: u64,
    pub entity: EntityRef,
    pub outcome: OutcomeKind,
    pub rule: RuleId,
    pub resolver: u32,
    /// The seq of the context the decision read.
    pub context_seq: u64,
    /// The earlier decision on the same intention this one follows.
    pub follows: Option<u64>,
    /// The whole decision in one sentence.
    pub summary: String,
    pub steps: Vec<StepText>,
    /// The records the outcome rests on, by role: `rival 41`, `resolution 70`.
    pub cites: Vec<String>,
    /// The message of each custom guard the trace names, by guard id, from
    /// the rule set the decision was made under (`with_guard_messages`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub guard_messages: BTreeMap<String, String>,
}

impl Explanation {
    /// Explains `d`, recorded at `seq` at `at_ms`.
    pub fn of(seq: u64, at_ms: u64, d: &Decision) -> Explanation {
        debug_assert!(
            d.context_seq < seq,
            "a decision reads the context before it"
        );
        let steps: Vec<StepText> = d
            .trace
            .iter()
            .map(|t| StepText {
                rule: t.rule,
                verdict: t.verdict.name().to_owned(),
                text: render::finding(&t.finding),
                reads: t.reads.iter().map(render::read).collect(),
            })
            .collect();
        debug_assert_eq!(steps.len(), d.trace.len());
        Explanation {
            seq,
            at_ms,
            intention: d.intention,
            entity: d.entity.clone(),
            outcome: d.outcome.kind(),
            rule: d.rule,
            resolver: d.resolver,
            context_seq: d.context_seq,
            follows: d.follows,
            summary: render::decision_line(d),
            steps,
            cites: d
                .cites
                .iter()
                .map(|c| format!("{} {}", c.role.name(), c.seq))
                .collect(),
            guard_messages: BTreeMap::new(),
        }
    }

    /// The custom guards the decision's trace names, by id.
    pub fn guards_named(d: &Decision) -> Vec<&str> {
        d.trace
            .iter()
            .filter_map(|t| match &t.finding {
                Finding::CustomPassed { guard, .. }
                | Finding::CustomFired { guard, .. }
                | Finding::CustomFault { guard, .. } => Some(guard.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Adds the messages of the guards `d` names, from `rules` (the rule set
    /// whose hash the decision records).
    pub fn with_guard_messages(
        mut self,
        d: &Decision,
        rules: &crate::rules::RuleSet,
    ) -> Explanation {
        for id in Explanation::guards_named(d) {
            if let Some(g) = rules.custom.iter().find(|g| g.id == id) {
                self.guard_messages.insert(g.id.clone(), g.message.clone());
            }
        }
        self
    }
}
