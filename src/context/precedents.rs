//! Human resolutions that later conflicts may follow. The fold records what
//! the human saw (the action, the categories of its skus, the impact); which
//! later case counts as "the same" is the resolver's policy (versioned).

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::vocab::{Action, Direction, RuleId};

/// A human resolution, as a precedent.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Precedent {
    /// The `human_resolution` record.
    pub resolution: u64,
    /// The intention that was escalated.
    pub intention: u64,
    /// The rule that escalated it.
    pub rule: RuleId,
    pub action: Action,
    /// The categories of the skus the action touched, sorted.
    pub categories: Vec<String>,
    /// Which way the action moved its value, against the store then.
    pub direction: Direction,
    /// The escalated intention's projected revenue impact.
    pub impact_minor: i64,
    pub at_ms: u64,
    /// The human approved the escalated intention.
    pub approved: bool,
    /// The human chose the rule's modified values.
    pub modified: bool,
}

/// Precedents still inside the rule set's window, by resolution seq (which
/// is also time order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Precedents {
    pub by_resolution: BTreeMap<u64, Precedent>,
}

impl Precedents {
    pub fn add(&mut self, p: Precedent) {
        debug_assert!(
            self.by_resolution
                .last_key_value()
                .is_none_or(|(k, _)| *k < p.resolution),
            "resolutions come in log order"
        );
        self.by_resolution.insert(p.resolution, p);
    }

    /// Precedents older than the window leave.
    pub fn retire(&mut self, now_ms: u64, window_ms: Option<u64>) {
        let Some(window) = window_ms else {
            return;
        };
        while let Some((&k, p)) = self.by_resolution.first_key_value() {
            if p.at_ms.saturating_add(window) >= now_ms {
                break;
            }
            self.by_resolution.remove(&k);
        }
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Precedent> {
        self.by_resolution.values().rev()
    }
}
