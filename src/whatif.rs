//! What-if: the recorded facts and intentions replayed under another rule set
//! and/or another resolver version, in memory. Nothing is written and nothing
//! is executed: actions approved only under the alternative are reported as
//! "would have".
//!
//! From `from` on, the recorded decisions (and, when rules are given, rule
//! changes; when a version is given, version changes) are set aside; the
//! resolver decides every intention again, and later decisions see the
//! what-if state. Human resolutions are replayed only where the what-if run
//! escalated the same intention. Two runs differ where the outcome or the
//! deciding rule differs (a new version's number alone is no difference).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::context::{Context, InstalledRules};
use crate::record::{Body, Digest, StoredRecord};
use crate::resolver::Resolvers;
use crate::resolver::FOLLOW_UPS_MAX;
use crate::rules::{rules_hash, RuleSet};
use crate::vocab::{OutcomeKind, RuleId};

/// One outcome and the rule that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Verdict {
    pub outcome: OutcomeKind,
    pub rule: RuleId,
}

/// A decision that differs between the record and the what-if run.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ChangedDecision {
    /// The intention's seq.
    pub seq: u64,
    pub agent: String,
    pub action: crate::vocab::ActionKind,
    pub entity: crate::entity::EntityRef,
    pub recorded: Option<Verdict>,
    pub whatif: Option<Verdict>,
}

/// Counts of final outcomes, and the revenue impact approved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Tally {
    pub approved: u64,
    pub deferred: u64,
    pub rejected: u64,
    /// Intentions whose last decision escalated them: still waiting for a
    /// human at the end of the range.
    pub awaiting_human: u64,
    pub expired: u64,
    /// Escalation decisions made (an intention can be escalated and then
    /// settled, so this counts more than `awaiting_human`).
    pub escalations: u64,
    pub approved_revenue_impact_minor: i64,
    /// The projected margin impact of the approved intentions.
    pub approved_margin_impact_minor: i64,
    /// Escalation decisions per UTC day (`YYYY-MM-DD`) of the record that
    /// caused them.
    pub escalations_by_day: BTreeMap<String, u64>,
}

/// Both ways side by side.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub intentions: u64,
    pub recorded: Tally,
    pub whatif: Tally,
}

/// The answer to `parley whatif`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct WhatIfReport {
    pub from: u64,
    pub to: u64,
    /// The alternative rule set's hash (`None`: the recorded rules).
    pub rules_hash: Option<Digest>,
    /// The resolver version the what-if ran (`None`: the recorded versions).
    pub resolver: Option<u32>,
    pub changed: Vec<ChangedDecision>,
    /// Intentions approved only under the alternative rules: never executed.
    pub would_have: Vec<u64>,
    pub summary: Summary,
}

/// What a report says of an intention.
struct Announced {
    agent: String,
    kind: crate::vocab::ActionKind,
    entity: crate::entity::EntityRef,
    revenue_minor: i64,
    margin_minor: i64,
}

/// The alternative a what-if runs.
#[derive(Clone, Debug)]
pub struct Alternative {
    /// Another rule set (its text and parse), or the recorded ones.
    pub rules: Option<(String, RuleSet)>,
    /// Another resolver version, or the recorded ones.
    pub resolver: Option<u32>,
}

/// Runs a what-if over records fed in log order (from seq 1).
pub struct WhatIf {
    from: u64,
    to: u64,
    alt: Option<InstalledRules>,
    resolver: Option<u32>,
    resolvers: Resolvers,
    recorded: Context,
    whatif: Option<Context>,
    recorded_final: BTreeMap<u64, Verdict>,
    whatif_final: BTreeMap<u64, Verdict>,
    /// What the report needs of each intention from `from` on.
    intentions: BTreeMap<u64, Announced>,
    escalations: (u64, u64),
    /// Escalations by day number (ms / 86,400,000): recorded, what-if.
    escalation_days: (BTreeMap<u64, u64>, BTreeMap<u64, u64>),
}

const DAY_MS: u64 = 86_400_000;

/// Counts one escalation on the day of `at_ms`.
fn count_day(days: &mut BTreeMap<u64, u64>, at_ms: u64) {
    *days.entry(at_ms / DAY_MS).or_default() += 1;
}

fn verdict(d: &crate::vocab::Decision) -> Verdict {
    Verdict {
        outcome: d.outcome.kind(),
        rule: d.rule,
    }
}

impl WhatIf {
    /// A what-if of `alt` over seqs `from..=to`; `resolvers` must know the
    /// alternative version, if one is given.
    pub fn new(alt: Alternative, from: u64, to: u64, resolvers: Resolvers) -> WhatIf {
        WhatIf {
            from: from.max(1),
            to,
            alt: alt.rules.map(|(text, rules)| InstalledRules {
                seq: 0,
                hash: rules_hash(&text),
                // A parsed rule set's guards compile (`RuleSet::parse`).
                guards: rules.guards().unwrap_or_default(),
                rules,
            }),
            resolver: alt.resolver,
            resolvers,
            recorded: Context::default(),
            whatif: None,
            recorded_final: BTreeMap::new(),
            whatif_final: BTreeMap::new(),
            intentions: BTreeMap::new(),
            escalations: (0, 0),
            escalation_days: (BTreeMap::new(), BTreeMap::new()),
        }
    }

    /// Feeds the next record of the log.
    pub fn feed(&mut self, r: &StoredRecord) {
        let seq = r.record.envelope.seq;
        if seq > self.to {
            return;
        }
        if seq >= self.from && self.whatif.is_none() {
            // From here on only the what-if context folds: the recorded one
            // moves into it (nothing reads it after `from`).
            let mut ctx = std::mem::take(&mut self.recorded);
            if let Some(alt) = &self.alt {
                ctx.authority.rules = Some(alt.clone());
            }
            if let Some(v) = self.resolver {
                ctx.authority.resolver.value = v;
            }
            self.whatif = Some(ctx);
        }
        // Before `from`, the recorded log folds as written (it was checked
        // when written).
        if self.whatif.is_none() {
            let _ = self.recorded.apply(r);
        }
        if let Body::Intend { intention } = &r.record.body {
            self.intentions.insert(
                seq,
                Announced {
                    agent: r.record.envelope.producer.clone(),
                    kind: intention.action.kind(),
                    entity: intention.action.entity(),
                    revenue_minor: intention.impact.revenue_minor,
                    margin_minor: intention.impact.margin_minor,
                },
            );
        }
        let Some(ctx) = self.whatif.as_mut() else {
            // Before `from`: an intention settled for good needs no report.
            if let Body::Decision { decision } = &r.record.body {
                if decision.outcome.is_final() {
                    self.intentions.remove(&decision.intention);
                }
            }
            return;
        };
        let system = r.record.envelope.producer == crate::command::SYSTEM_PRODUCER;

        match &r.record.body {
            Body::Decision { decision } => {
                self.recorded_decision(decision, r.record.envelope.recorded_at_ms);
                return;
            }
            Body::RulesInstalled { .. } if self.alt.is_some() => return,
            Body::ResolverAdopted { .. } if self.resolver.is_some() => return,
            // Workflow progress is derived again below.
            b if b.is_follow_up() => return,
            // A resolution or step report the what-if state does not allow (the
            // escalation never happened, the step is not ready) is left out.
            b if !system
                && self
                    .resolvers
                    .admit(ctx, crate::resolver::Author::of(&r.record.envelope), b)
                    .is_err() =>
            {
                return
            }
            _ => {}
        }
        if ctx.apply(r).is_err() {
            return;
        }
        if let Some(v) = self.resolver {
            // The genesis record names the ledger's first version: the
            // alternative stays in force over it.
            ctx.authority.resolver.value = v;
        }
        self.follow_ups(r);
    }

    /// Derives, in the what-if context, the records `r` is owed.
    fn follow_ups(&mut self, r: &StoredRecord) {
        let Some(ctx) = self.whatif.as_mut() else {
            return;
        };
        for _ in 0..FOLLOW_UPS_MAX {
            let Some(body) = self.resolvers.next_follow_up(ctx) else {
                break;
            };
            if let Body::Decision { decision } = &body {
                if decision.outcome.kind() == OutcomeKind::Escalated {
                    self.escalations.1 += 1;
                    count_day(
                        &mut self.escalation_days.1,
                        r.record.envelope.recorded_at_ms,
                    );
                }
                self.whatif_final
                    .insert(decision.intention, verdict(decision));
            }
            let mut follow = r.clone();
            follow.record.envelope.producer = crate::command::SYSTEM_PRODUCER.into();
            follow.record.body = body;
            if ctx.apply(&follow).is_err() {
                break;
            }
        }
    }

    /// The last seq of the what-if's range.
    pub fn to(&self) -> u64 {
        self.to
    }

    /// Feeds a record right after `to`: a follow-up (producer `parley`,
    /// caused by a record at or before `to`) that the last command in range
    /// brought, such as the decision recorded for an intention at `to`.
    /// Without them an intention at `to` would have no recorded decision,
    /// and a what-if with the recorded rules would report it changed.
    /// `Break` at the first record that is not one (feed no more after it).
    pub fn follow_up(&mut self, r: &StoredRecord) -> ControlFlow<()> {
        let env = &r.record.envelope;
        let follows = env.seq > self.to
            && env.producer == crate::command::SYSTEM_PRODUCER
            && env.causation.is_some_and(|c| c <= self.to);
        if !follows || self.whatif.is_none() {
            return ControlFlow::Break(());
        }
        if let Body::Decision { decision } = &r.record.body {
            self.recorded_decision(decision, env.recorded_at_ms);
        }
        ControlFlow::Continue(())
    }

    fn recorded_decision(&mut self, decision: &crate::vocab::Decision, at_ms: u64) {
        if decision.outcome.kind() == OutcomeKind::Escalated {
            self.escalations.0 += 1;
            count_day(&mut self.escalation_days.0, at_ms);
        }
        self.recorded_final
            .insert(decision.intention, verdict(decision));
    }

    /// The report, once every record up to `to` was fed.
    pub fn finish(self) -> WhatIfReport {
        let intentions = &self.intentions;
        let mut summary = Summary::default();
        let mut changed = Vec::new();
        let mut would_have = Vec::new();
        let seqs: std::collections::BTreeSet<u64> = self
            .recorded_final
            .keys()
            .chain(self.whatif_final.keys())
            .copied()
            .collect();
        let tally = |t: &mut Tally, v: Option<&Verdict>, (revenue, margin): (i64, i64)| match v
            .map(|v| v.outcome)
        {
            Some(OutcomeKind::Approved | OutcomeKind::Modified) => {
                t.approved += 1;
                t.approved_revenue_impact_minor += revenue;
                t.approved_margin_impact_minor += margin;
            }
            Some(OutcomeKind::Deferred) => t.deferred += 1,
            Some(OutcomeKind::Rejected) => t.rejected += 1,
            Some(OutcomeKind::Escalated) => t.awaiting_human += 1,
            Some(OutcomeKind::Expired) => t.expired += 1,
            None => {}
        };
        for seq in seqs {
            let (rec, wif) = (self.recorded_final.get(&seq), self.whatif_final.get(&seq));
            let state = intentions.get(&seq);
            let revenue = state.map_or((0, 0), |s| (s.revenue_minor, s.margin_minor));
            summary.intentions += 1;
            tally(&mut summary.recorded, rec, revenue);
            tally(&mut summary.whatif, wif, revenue);
            if rec != wif {
                let approval = |v: &Verdict| v.outcome.is_approval();
                if wif.is_some_and(approval) && !rec.is_some_and(approval) {
                    would_have.push(seq);
                }
                if let Some(a) = state {
                    changed.push(ChangedDecision {
                        seq,
                        agent: a.agent.clone(),
                        action: a.kind,
                        entity: a.entity.clone(),
                        recorded: rec.cloned(),
                        whatif: wif.cloned(),
                    });
                }
            }
        }
        summary.recorded.escalations = self.escalations.0;
        summary.whatif.escalations = self.escalations.1;
        let dated = |days: BTreeMap<u64, u64>| {
            days.into_iter()
                .map(|(d, n)| {
                    let date = crate::time::format_rfc3339(d * DAY_MS);
                    (date.get(..10).map_or_else(String::new, str::to_owned), n)
                })
                .collect()
        };
        summary.recorded.escalations_by_day = dated(self.escalation_days.0);
        summary.whatif.escalations_by_day = dated(self.escalation_days.1);
        WhatIfReport {
            from: self.from,
            to: self.to,
            rules_hash: self.alt.map(|a| a.hash),
            resolver: self.resolver,
            changed,
            would_have,
            summary,
        }
    }
}
