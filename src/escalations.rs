//! Escalations as people see them: what is waiting, why, each agent's side,
//! the numbered options in words, and how each was closed. Built once here
//! for the CLI, the HTTP API and the console.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::{Context, Status};
use crate::entity::EntityRef;
use crate::log::LogError;
use crate::reader::LedgerRead;
use crate::record::{Body, StoredRecord};
use crate::render;
use crate::time::format_rfc3339;
use crate::vocab::{
    Action, CiteRole, Decision, Escalation, OptionChoice, Outcome, OutcomeKind, RuleId,
};

/// One option, numbered as `resolve` takes it, in words.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OptionView {
    pub number: u32,
    pub choice: OptionChoice,
    pub label: String,
    pub approve: Vec<u64>,
    pub modified: Option<Action>,
}

/// A human resolution.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ResolutionView {
    pub seq: u64,
    pub human: String,
    pub option: u32,
    pub rationale: String,
    pub at_ms: u64,
}

/// How an escalation was closed.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ClosedBy {
    pub decision: u64,
    pub rule: RuleId,
    pub outcome: OutcomeKind,
    pub summary: String,
    /// The human resolution, if a person closed it.
    pub resolution: Option<ResolutionView>,
}

/// One escalation.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EscalationView {
    /// The escalated intention's seq: what `parley resolve` takes.
    pub id: u64,
    /// The decision that escalated it.
    pub decision: u64,
    pub at: String,
    pub at_ms: u64,
    pub agent: String,
    pub entity: EntityRef,
    pub rule: RuleId,
    /// open | resolved | expired | decided
    pub status: &'static str,
    /// When it resolves to the rule set's safe default, if it is open and expires.
    pub expires_at: Option<String>,
    pub expires_at_ms: Option<u64>,
    pub summary: String,
    pub escalation: Escalation,
    pub options: Vec<OptionView>,
    /// The context the decision read (`state --at` shows it).
    pub context_seq: u64,
    pub closed_by: Option<ClosedBy>,
}

fn options(e: &Escalation) -> Vec<OptionView> {
    e.options
        .iter()
        .enumerate()
        .map(|(n, o)| OptionView {
            number: u32::try_from(n).unwrap_or(u32::MAX),
            choice: o.choice,
            label: render::option_label(o, e),
            approve: o.approve.clone(),
            modified: o.modified.clone(),
        })
        .collect()
}

/// An escalating decision and what closed it.
struct Found {
    seq: u64,
    at_ms: u64,
    agent: String,
    decision: Decision,
    closed: Option<(u64, Decision)>,
}

fn view(
    f: Found,
    ctx: &Context,
    resolutions: &BTreeMap<u64, ResolutionView>,
) -> Option<EscalationView> {
    let Outcome::Escalated { escalation } = &f.decision.outcome else {
        return None;
    };
    let open_expiry = ctx
        .intentions
        .get(f.decision.intention)
        .and_then(|s| match s.status {
            Status::Escalated { expires_at_ms } if f.closed.is_none() => expires_at_ms,
            _ => None,
        });
    let closed_by = f.closed.map(|(seq, d)| ClosedBy {
        decision: seq,
        rule: d.rule,
        outcome: d.outcome.kind(),
        summary: render::decision_line(&d),
        resolution: d
            .cited(CiteRole::Resolution)
            .next()
            .and_then(|r| resolutions.get(&r).cloned()),
    });
    let status = match &closed_by {
        None => "open",
        Some(c) if c.rule == RuleId::HumanResolution => "resolved",
        Some(c) if c.rule == RuleId::EscalationExpiry => "expired",
        Some(_) => "decided",
    };
    Some(EscalationView {
        id: f.decision.intention,
        decision: f.seq,
        at: format_rfc3339(f.at_ms),
        at_ms: f.at_ms,
        agent: f.agent,
        entity: f.decision.entity.clone(),
        rule: f.decision.rule,
        status,
        expires_at: open_expiry.map(format_rfc3339),
        expires_at_ms: open_expiry,
        summary: render::escalation_summary(escalation, &f.decision.entity),
        options: options(escalation),
        escalation: escalation.clone(),
        context_seq: f.decision.context_seq,
        closed_by,
    })
}

/// Escalating decisions and what closed them, folded from records in log order.
#[derive(Default)]
struct Collect {
    found: Vec<Found>,
    /// Intention seq → its latest escalation in `found`.
    latest: BTreeMap<u64, usize>,
    resolutions: BTreeMap<u64, ResolutionView>,
}

impl Collect {
    fn visit(&mut self, r: StoredRecord) {
        let (seq, at) = (r.record.envelope.seq, r.record.envelope.recorded_at_ms);
        match r.record.body {
            Body::HumanResolution {
                option, rationale, ..
            } => {
                let view = ResolutionView {
                    seq,
                    human: r.record.envelope.producer,
                    option,
                    rationale,
                    at_ms: at,
                };
                self.resolutions.insert(seq, view);
            }
            Body::Decision { decision } => {
                let i = decision.intention;
                if let Some(&k) = self.latest.get(&i) {
                    if self.found[k].closed.is_none() {
                        self.found[k].closed = Some((seq, (*decision).clone()));
                    }
                }
                if matches!(decision.outcome, Outcome::Escalated { .. }) {
                    self.latest.insert(i, self.found.len());
                    self.found.push(Found {
                        seq,
                        at_ms: at,
                        // Named after the scan (`name_agents`).
                        agent: String::new(),
                        decision: *decision,
                        closed: None,
                    });
                }
            }
            _ => {}
        }
    }

    /// Names each escalation's agent from `agents` (intention seq → its
    /// producer, `producers`), once the records are visited. (Remembering
    /// every intention's producer during a scan held memory in proportion to
    /// the whole log for each request: the soak's console reads grew the
    /// server by hundreds of MiB.)
    fn name_agents(&mut self, agents: &BTreeMap<u64, String>) {
        for f in &mut self.found {
            if let Some(agent) = agents.get(&f.decision.intention) {
                f.agent.clone_from(agent);
            }
        }
    }

    /// The intentions that escalated, ascending and unique (as `read` asks:
    /// the keys of a BTreeMap).
    fn escalated(&self) -> Vec<u64> {
        self.latest.keys().copied().collect()
    }

    fn views(self, ctx: &Context) -> Vec<EscalationView> {
        let resolutions = self.resolutions;
        self.found
            .into_iter()
            .filter_map(|f| view(f, ctx, &resolutions))
            .collect()
    }
}

/// Every escalation in the log (or only the open ones), oldest first.
pub(crate) fn escalation_views(
    ledger: &dyn LedgerRead,
    ctx: &Context,
    only_open: bool,
) -> Result<Vec<EscalationView>, LogError> {
    if only_open {
        return open_views(ledger, ctx);
    }
    let mut c = Collect::default();
    ledger.scan(1, ledger.head_seq(), &mut |r: StoredRecord| {
        c.visit(r);
        Ok(())
    })?;
    c.name_agents(&producers(&ledger.read(&c.escalated())?));
    Ok(c.views(ctx))
}

/// Intention seq → producer, for the `intend` records among `records`.
fn producers(records: &[StoredRecord]) -> BTreeMap<u64, String> {
    records
        .iter()
        .filter(|r| matches!(r.record.body, Body::Intend { .. }))
        .map(|r| (r.record.envelope.seq, r.record.envelope.producer.clone()))
        .collect()
}

/// The escalations of one intention (an intention re-decided after a
/// deferral may escalate more than once), oldest first; empty when it never
/// escalated. Reads only the records that name the intention.
pub(crate) fn escalations_of(
    ledger: &dyn LedgerRead,
    ctx: &Context,
    intention: u64,
) -> Result<Vec<EscalationView>, LogError> {
    let seqs = ledger.entity_seqs(&EntityRef::Intention(intention))?;
    let records = ledger.read(&seqs)?;
    // The intention's own record is among them: no second read.
    let agents = producers(&records);
    let mut c = Collect::default();
    for r in records {
        c.visit(r);
    }
    c.name_agents(&agents);
    Ok(c.views(ctx))
}

/// The open escalations, from the context and the escalating decisions.
fn open_views(ledger: &dyn LedgerRead, ctx: &Context) -> Result<Vec<EscalationView>, LogError> {
    let mut open: Vec<(u64, String)> = ctx
        .intentions
        .open()
        .filter_map(|s| Some((s.escalation.as_ref()?.decision, s.agent.clone())))
        .collect();
    open.sort();
    let seqs: Vec<u64> = open.iter().map(|(d, _)| *d).collect();
    let records = ledger.read(&seqs)?;
    let none = BTreeMap::new();
    Ok(records
        .into_iter()
        .zip(open)
        .filter_map(|(r, (_, agent))| match r.record.body {
            Body::Decision { decision } => view(
                Found {
                    seq: r.record.envelope.seq,
                    at_ms: r.record.envelope.recorded_at_ms,
                    agent,
                    decision: *decision,
                    closed: None,
                },
                ctx,
                &none,
            ),
            _ => None,
        })
        .collect())
}
