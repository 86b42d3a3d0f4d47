//! Escalations as people see them: what is waiting, why, each agent's side,
//! the numbered options in words, and how each was closed. Built once here
//! for the CLI, the HTTP API and the console.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::{Context, IntentionState, Status};
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

/// An intention waiting on an escalation, as the context holds it now.
#[derive(Clone, Debug)]
struct WaitingOn {
    /// The decision that escalated it.
    decision: u64,
    agent: String,
    expires_at_ms: Option<u64>,
}

/// What escalation reads need of the context: the intentions waiting on an
/// escalation (taken in one pass, so a read need not copy the context).
#[derive(Clone, Debug, Default)]
pub(crate) struct Waiting {
    /// By intention seq.
    by_intention: BTreeMap<u64, WaitingOn>,
}

impl Waiting {
    /// The open intentions of `ctx` with an escalation, and its decision.
    fn escalated(ctx: &Context) -> impl Iterator<Item = (&IntentionState, u64)> {
        ctx.intentions
            .open()
            .filter_map(|s| Some((s, s.escalation.as_ref()?.decision)))
    }

    /// The intentions of `ctx` that wait on an escalation.
    pub(crate) fn of(ctx: &Context) -> Waiting {
        let by_intention: BTreeMap<u64, WaitingOn> = Waiting::escalated(ctx)
            .map(|(s, decision)| {
                let expires_at_ms = match s.status {
                    Status::Escalated { expires_at_ms } => expires_at_ms,
                    _ => None,
                };
                let agent = s.agent.clone();
                let w = WaitingOn {
                    decision,
                    agent,
                    expires_at_ms,
                };
                (s.seq, w)
            })
            .collect();
        debug_assert!(by_intention.iter().all(|(i, w)| w.decision > *i));
        Waiting { by_intention }
    }

    /// How many intentions of `ctx` wait on a person (nothing copied).
    pub(crate) fn count(ctx: &Context) -> usize {
        Waiting::escalated(ctx).count()
    }

    fn expiry(&self, intention: u64) -> Option<u64> {
        self.by_intention.get(&intention)?.expires_at_ms
    }
}

fn view(
    f: Found,
    waiting: &Waiting,
    resolutions: &BTreeMap<u64, ResolutionView>,
) -> Option<EscalationView> {
    let Outcome::Escalated { escalation } = &f.decision.outcome else {
        return None;
    };
    let open_expiry = if f.closed.is_none() {
        waiting.expiry(f.decision.intention)
    } else {
        None
    };
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

    fn views(self, waiting: &Waiting) -> Vec<EscalationView> {
        let resolutions = self.resolutions;
        self.found
            .into_iter()
            .filter_map(|f| view(f, waiting, &resolutions))
            .collect()
    }
}

/// Every escalation in the log (or only the open ones), oldest first.
pub(crate) fn escalation_views(
    ledger: &dyn LedgerRead,
    waiting: &Waiting,
    only_open: bool,
) -> Result<Vec<EscalationView>, LogError> {
    if only_open {
        return open_views(ledger, waiting);
    }
    let mut c = Collect::default();
    ledger.scan(1, ledger.head_seq(), &mut |r: StoredRecord| {
        c.visit(r);
        Ok(())
    })?;
    c.name_agents(&producers(&ledger.read(&c.escalated())?));
    Ok(c.views(waiting))
}

/// Most records one page of escalations scans (`escalations_page`).
pub(crate) const PAGE_SCAN_MAX: u64 = 100_000;
/// Most escalations on one page.
pub(crate) const PAGE_ESCALATIONS_MAX: usize = 1_000;

/// One page of the escalations in the log: those whose escalating decision
/// lies in `from..next` (or `from..=head` when `next` is `None`), oldest
/// first, each with what closed it, wherever in the log that is.
#[derive(Clone, Debug)]
pub(crate) struct EscalationsPage {
    pub(crate) views: Vec<EscalationView>,
    /// Where the next page starts, if the log goes on past this one.
    pub(crate) next: Option<u64>,
}

/// The escalations whose escalating decision is at `from` or later: at most
/// `limit` of them, found within [`PAGE_SCAN_MAX`] records, so one request
/// costs the same however long the log is. What closed each is read from
/// the records that name its intention (the entity index), not the scan.
pub(crate) fn escalations_page(
    ledger: &dyn LedgerRead,
    waiting: &Waiting,
    from: u64,
    limit: usize,
) -> Result<EscalationsPage, LogError> {
    assert!((1..=PAGE_ESCALATIONS_MAX).contains(&limit));
    let head = ledger.head_seq();
    let from = from.max(1);
    let end = head.min(from.saturating_add(PAGE_SCAN_MAX - 1));
    // Escalating decision seq → its intention, in the window.
    let mut found: BTreeMap<u64, u64> = BTreeMap::new();
    let mut next = end.saturating_add(1);
    ledger.scan_until(from, end, &mut |r: StoredRecord| {
        if let Body::Decision { decision } = &r.record.body {
            if matches!(decision.outcome, Outcome::Escalated { .. }) {
                found.insert(r.record.envelope.seq, decision.intention);
                if found.len() == limit {
                    next = r.record.envelope.seq + 1;
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let mut intentions: Vec<u64> = found.values().copied().collect();
    intentions.sort_unstable();
    intentions.dedup();
    let mut views = Vec::with_capacity(found.len());
    for intention in intentions {
        let of = escalations_of(ledger, waiting, intention)?;
        views.extend(of.into_iter().filter(|v| found.contains_key(&v.decision)));
    }
    views.sort_by_key(|v| v.decision);
    debug_assert_eq!(views.len(), found.len(), "every escalation found is viewed");
    debug_assert!(views.iter().all(|v| (from..next).contains(&v.decision)));
    Ok(EscalationsPage {
        views,
        next: (next <= head).then_some(next),
    })
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
    waiting: &Waiting,
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
    Ok(c.views(waiting))
}

/// The open escalations, from the context and the escalating decisions.
fn open_views(ledger: &dyn LedgerRead, waiting: &Waiting) -> Result<Vec<EscalationView>, LogError> {
    let mut open: Vec<&WaitingOn> = waiting.by_intention.values().collect();
    open.sort_by_key(|w| w.decision);
    let seqs: Vec<u64> = open.iter().map(|w| w.decision).collect();
    let records = ledger.read(&seqs)?;
    let none = BTreeMap::new();
    Ok(records
        .into_iter()
        .zip(open)
        .filter_map(|(r, w)| match r.record.body {
            Body::Decision { decision } => view(
                Found {
                    seq: r.record.envelope.seq,
                    at_ms: r.record.envelope.recorded_at_ms,
                    agent: w.agent.clone(),
                    decision: *decision,
                    closed: None,
                },
                waiting,
                &none,
            ),
            _ => None,
        })
        .collect())
}
