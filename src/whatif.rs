//! What-if: the recorded facts and intentions replayed under other rules, in
//! memory. Nothing is written and nothing is executed: actions approved only
//! under the alternative rules are reported as "would have".
//!
//! From `from` on, the recorded decisions and rule changes are set aside; the
//! resolver decides every intention again under the alternative rules, and later
//! decisions see the what-if state. Human resolutions are replayed only where the
//! what-if run escalated the same intention.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::context::{Context, InstalledRules};
use crate::record::{Body, StoredRecord};
use crate::resolver::{check_command, next_follow_up};
use crate::rules::{rules_hash, RuleSet};

/// Most follow-ups one record may cause during a what-if (as in the sequencer).
const MAX_FOLLOW_UPS: usize = 100_000;

/// One outcome and the rule that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub outcome: String,
    pub rule: String,
}

/// A decision that differs between the record and the what-if run.
#[derive(Clone, Debug, Serialize)]
pub struct ChangedDecision {
    /// The intention's seq.
    pub seq: u64,
    pub agent: String,
    pub action: String,
    pub entity: String,
    pub recorded: Option<Verdict>,
    pub whatif: Option<Verdict>,
}

/// Counts of final outcomes, and the revenue impact approved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub approved: u64,
    pub deferred: u64,
    pub rejected: u64,
    pub escalated: u64,
    pub expired: u64,
    /// Escalation decisions made (an intention can be escalated and then settled).
    pub escalations: u64,
    pub approved_revenue_impact_minor: i64,
}

/// Both ways side by side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub intentions: u64,
    pub recorded: Tally,
    pub whatif: Tally,
}

/// The answer to `parley whatif`.
#[derive(Clone, Debug, Serialize)]
pub struct WhatIfReport {
    pub from: u64,
    pub to: u64,
    pub rules_hash: String,
    pub changed: Vec<ChangedDecision>,
    /// Intentions approved only under the alternative rules: never executed.
    pub would_have: Vec<u64>,
    pub summary: Summary,
}

/// Runs a what-if over records fed in log order (from seq 1).
pub struct WhatIf {
    from: u64,
    to: u64,
    alt: InstalledRules,
    recorded: Context,
    whatif: Option<Context>,
    recorded_final: BTreeMap<u64, Verdict>,
    whatif_final: BTreeMap<u64, Verdict>,
    escalations: (u64, u64),
}

fn verdict(d: &crate::vocab::Decision) -> Verdict {
    Verdict {
        outcome: d.outcome.name().to_owned(),
        rule: d.rule.clone(),
    }
}

impl WhatIf {
    pub fn new(rules_text: &str, rules: RuleSet, from: u64, to: u64) -> WhatIf {
        WhatIf {
            from: from.max(1),
            to,
            alt: InstalledRules {
                seq: 0,
                hash: rules_hash(rules_text),
                rules,
            },
            recorded: Context::default(),
            whatif: None,
            recorded_final: BTreeMap::new(),
            whatif_final: BTreeMap::new(),
            escalations: (0, 0),
        }
    }

    /// Feeds the next record of the log.
    pub fn feed(&mut self, r: &StoredRecord) {
        let seq = r.record.envelope.seq;
        if seq > self.to {
            return;
        }
        if seq >= self.from && self.whatif.is_none() {
            let mut ctx = self.recorded.clone();
            ctx.rules = Some(self.alt.clone());
            self.whatif = Some(ctx);
        }
        self.recorded.apply(r);
        let Some(ctx) = self.whatif.as_mut() else {
            return;
        };
        match &r.record.body {
            Body::Decision { decision } => {
                self.escalations.0 += u64::from(decision.outcome.name() == "escalated");
                self.recorded_final
                    .insert(decision.intention, verdict(decision));
                return;
            }
            Body::RulesInstalled { .. } => return,
            // Workflow progress is derived again below, under the alternative rules.
            b if b.is_follow_up() => return,
            // A resolution or step report the what-if state does not allow (the
            // escalation never happened, the step is not ready) is left out.
            b if check_command(ctx, &r.record.envelope.producer, b).is_err() => return,
            _ => {}
        }
        ctx.apply(r);
        for _ in 0..MAX_FOLLOW_UPS {
            let Some(body) = next_follow_up(ctx) else {
                break;
            };
            if let Body::Decision { decision } = &body {
                self.escalations.1 += u64::from(decision.outcome.name() == "escalated");
                self.whatif_final
                    .insert(decision.intention, verdict(decision));
            }
            let mut follow = r.clone();
            follow.record.envelope.producer = crate::command::SYSTEM_PRODUCER.into();
            follow.record.body = body;
            ctx.apply(&follow);
        }
    }

    /// The report, once every record up to `to` was fed.
    pub fn finish(self) -> WhatIfReport {
        let ctx = self.whatif.unwrap_or_default();
        let mut summary = Summary::default();
        let mut changed = Vec::new();
        let mut would_have = Vec::new();
        let seqs: std::collections::BTreeSet<u64> = self
            .recorded_final
            .keys()
            .chain(self.whatif_final.keys())
            .copied()
            .collect();
        let tally = |t: &mut Tally, v: Option<&Verdict>, revenue: i64| match v
            .map(|v| v.outcome.as_str())
        {
            Some("approved" | "modified") => {
                t.approved += 1;
                t.approved_revenue_impact_minor += revenue;
            }
            Some("deferred") => t.deferred += 1,
            Some("rejected") => t.rejected += 1,
            Some("escalated") => t.escalated += 1,
            Some("expired") => t.expired += 1,
            _ => {}
        };
        for seq in seqs {
            let (rec, wif) = (self.recorded_final.get(&seq), self.whatif_final.get(&seq));
            let state = ctx.intentions.get(&seq);
            let revenue = state.map_or(0, |s| s.intention.impact.revenue_minor);
            summary.intentions += 1;
            tally(&mut summary.recorded, rec, revenue);
            tally(&mut summary.whatif, wif, revenue);
            if rec != wif {
                let approval = |v: &Verdict| matches!(v.outcome.as_str(), "approved" | "modified");
                if wif.is_some_and(approval) && !rec.is_some_and(approval) {
                    would_have.push(seq);
                }
                changed.push(ChangedDecision {
                    seq,
                    agent: state.map_or_else(String::new, |s| s.agent.clone()),
                    action: state
                        .map_or_else(String::new, |s| format!("{:?}", s.intention.action.kind())),
                    entity: state.map_or_else(String::new, |s| s.intention.action.entity()),
                    recorded: rec.cloned(),
                    whatif: wif.cloned(),
                });
            }
        }
        summary.recorded.escalations = self.escalations.0;
        summary.whatif.escalations = self.escalations.1;
        WhatIfReport {
            from: self.from,
            to: self.to,
            rules_hash: self.alt.hash,
            changed,
            would_have,
            summary,
        }
    }
}
