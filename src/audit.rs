//! Audit: "why did this price change?". Every change of an entity's field,
//! newest first, with the record that changed it, the intention behind it, the
//! decision and its full rule trace, the human resolution if any, and the
//! intentions that lost. Reads only the records the entity index names; the
//! changes are those `crate::effect` defines, the same the context applies.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::context::synced::Registers;
use crate::effect::{self, Effect};
use crate::entity::EntityRef;
use crate::log::LogError;
use crate::reader::LedgerRead;
use crate::record::{Body, StoredRecord};
use crate::value::Value;
use crate::vocab::{Action, CiteRole, Decision, Impact, Objective, OutcomeKind, RuleId, StepRef};

/// Why an audit cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no record names entity `{0}` (entities look like sku:SKU-1, order:O-9, customer:C-3, category:headphones)")]
    UnknownEntity(EntityRef),
    #[error("entity `{entity}` has no field `{field}`; its fields: {known}")]
    UnknownField {
        entity: EntityRef,
        field: String,
        known: String,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The intention behind a change.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct IntentionView {
    pub seq: u64,
    pub agent: String,
    pub action: Action,
    pub reasoning: String,
    pub impact: Impact,
    pub objective: Objective,
    pub workflow_step: Option<WorkflowStepView>,
}

/// The workflow step an intention belonged to.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct WorkflowStepView {
    pub run: String,
    pub step: String,
    /// The run's workflow (`name vN`), from its `workflow_started` record.
    pub workflow: Option<String>,
}

/// A human resolution behind a decision.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ResolutionView {
    pub seq: u64,
    pub human: String,
    pub option: u32,
    pub rationale: String,
}

/// An intention that lost to the change.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Lost {
    pub seq: u64,
    pub agent: String,
    pub reasoning: String,
    pub outcome: OutcomeKind,
    pub rule: RuleId,
}

/// One change of a field.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Change {
    pub seq: u64,
    pub at_ms: u64,
    pub field: String,
    pub value: Value,
    /// True when `value` was added to the field (a reorder adds to `on_order`).
    pub addition: bool,
    pub kind: &'static str,
    pub producer: String,
    pub intention: Option<IntentionView>,
    pub decision: Option<Box<Decision>>,
    /// The decision in words (rendered now; not part of the record).
    pub summary: Option<String>,
    pub resolution: Option<ResolutionView>,
    pub lost: Vec<Lost>,
}

/// The answer to `parley audit`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AuditReport {
    pub entity: EntityRef,
    pub field: Option<String>,
    pub changes: Vec<Change>,
}

/// The records audit reads, by kind.
struct Records<'a> {
    intentions: BTreeMap<u64, &'a StoredRecord>,
    decisions: Vec<(&'a StoredRecord, &'a Decision)>,
}

impl<'a> Records<'a> {
    fn of(records: &'a [StoredRecord]) -> Records<'a> {
        let intentions = records
            .iter()
            .filter(|r| matches!(r.record.body, Body::Intend { .. }))
            .map(|r| (r.record.envelope.seq, r))
            .collect();
        let decisions = records
            .iter()
            .filter_map(|r| match &r.record.body {
                Body::Decision { decision } => Some((r, decision.as_ref())),
                _ => None,
            })
            .collect();
        Records {
            intentions,
            decisions,
        }
    }

    fn intention(&self, seq: u64) -> Option<(&'a StoredRecord, &'a crate::vocab::Intention)> {
        let r = self.intentions.get(&seq)?;
        match &r.record.body {
            Body::Intend { intention } => Some((r, intention)),
            _ => None,
        }
    }

    /// The changes a record makes: a fact's own, an approving decision's,
    /// or a platform object's newer version's (`synced` folds the entity's
    /// platform records in order, so a superseded one changes nothing).
    fn effects(&self, r: &StoredRecord, synced: &mut Registers) -> Vec<Effect> {
        match &r.record.body {
            Body::Synced { synced: s } => synced
                .apply(r.record.envelope.seq, s)
                .map_or_else(Vec::new, |a| a.effects),
            Body::Decision { decision } => self
                .intention(decision.intention)
                .and_then(|(_, i)| decision.outcome.approved_action(&i.action))
                .map_or_else(Vec::new, effect::of_action),
            body => effect::of_fact(body),
        }
    }
}

/// Every change of `entity` (and of `field`, if given), newest first.
pub fn audit(
    ledger: &dyn LedgerRead,
    entity: &EntityRef,
    field: Option<&str>,
) -> Result<AuditReport, AuditError> {
    let seqs = ledger.entity_seqs(entity)?;
    if seqs.is_empty() {
        return Err(AuditError::UnknownEntity(entity.clone()));
    }
    let records = ledger.read(&seqs)?;
    let field = field.map(|f| crate::entity::canonical_field(f).to_owned());
    let by = Records::of(&records);
    let mut known = BTreeSet::new();
    let mut changes = Vec::new();
    let mut synced = Registers::default();
    for r in &records {
        let decision = match &r.record.body {
            Body::Decision { decision } => Some(decision.as_ref()),
            _ => None,
        };
        for e in by
            .effects(r, &mut synced)
            .into_iter()
            .filter(|e| &e.entity == entity)
        {
            let f = e.change.field();
            known.insert(f.clone());
            if field.as_deref().is_some_and(|want| want != f) {
                continue;
            }
            let intention = decision
                .and_then(|d| by.intention(d.intention))
                .map(|(rec, i)| IntentionView {
                    seq: rec.record.envelope.seq,
                    agent: rec.record.envelope.producer.clone(),
                    action: i.action.clone(),
                    reasoning: i.reasoning.clone(),
                    impact: i.impact,
                    objective: i.objective,
                    workflow_step: i.workflow_step.as_ref().map(|s| step_view(ledger, s)),
                });
            let lost = intention
                .as_ref()
                .map_or_else(Vec::new, |i| losers(i.seq, &by));
            changes.push(Change {
                seq: r.record.envelope.seq,
                at_ms: r.record.envelope.recorded_at_ms,
                field: f,
                value: e.change.value(),
                addition: e.change.is_addition(),
                kind: r.record.body.kind(),
                producer: r.record.envelope.producer.clone(),
                intention,
                summary: decision.map(crate::render::decision_line),
                decision: decision.map(|d| Box::new(d.clone())),
                resolution: None,
                lost,
            });
        }
    }
    if let Some(f) = &field {
        if changes.is_empty() && !known.contains(f) {
            return Err(AuditError::UnknownField {
                entity: entity.clone(),
                field: f.clone(),
                known: known.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
    }
    attach_resolutions(ledger, &mut changes)?;
    changes.reverse();
    Ok(AuditReport {
        entity: entity.clone(),
        field,
        changes,
    })
}

/// Reads the human resolutions the changes' decisions cite.
fn attach_resolutions(ledger: &dyn LedgerRead, changes: &mut [Change]) -> Result<(), LogError> {
    let cited = |c: &Change| {
        c.decision
            .as_ref()
            .and_then(|d| d.cited(CiteRole::Resolution).next())
    };
    let mut seqs: Vec<u64> = changes.iter().filter_map(cited).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let resolved = ledger.read(&seqs)?;
    for change in changes.iter_mut() {
        let Some(seq) = cited(change) else {
            continue;
        };
        let Some(r) = resolved.iter().find(|r| r.record.envelope.seq == seq) else {
            continue;
        };
        if let Body::HumanResolution {
            option, rationale, ..
        } = &r.record.body
        {
            change.resolution = Some(ResolutionView {
                seq,
                human: r.record.envelope.producer.clone(),
                option: *option,
                rationale: rationale.clone(),
            });
        }
    }
    Ok(())
}

/// The step and its run's workflow (read from the run's first record).
fn step_view(ledger: &dyn LedgerRead, r: &StepRef) -> WorkflowStepView {
    let workflow = ledger
        .entity_seqs(&EntityRef::Run(r.run.clone()))
        .ok()
        .and_then(|seqs| ledger.read(&seqs[..seqs.len().min(1)]).ok())
        .and_then(|recs| match recs.first().map(|x| &x.record.body) {
            Some(Body::WorkflowStarted {
                workflow, version, ..
            }) => Some(format!("{workflow} v{version}")),
            _ => None,
        });
    WorkflowStepView {
        run: r.run.clone(),
        step: r.step.clone(),
        workflow,
    }
}

/// Intentions that lost to `winner`: finally not approved, with a decision
/// that cites it (as the rival that outranked them, or the promotion that
/// blocked them).
fn losers(winner: u64, by: &Records<'_>) -> Vec<Lost> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let final_of = |seq: u64| {
        by.decisions
            .iter()
            .rev()
            .find(|(_, d)| d.intention == seq)
            .map(|(_, d)| *d)
    };
    let candidates = by.decisions.iter().filter(|(_, d)| {
        d.intention != winner
            && !d.outcome.is_approval()
            && d.cites
                .iter()
                .any(|c| c.seq == winner && matches!(c.role, CiteRole::Rival | CiteRole::Promotion))
    });
    for (_, d) in candidates {
        let Some(last) = final_of(d.intention).filter(|l| !l.outcome.is_approval()) else {
            continue;
        };
        if !seen.insert(d.intention) {
            continue;
        }
        if let Some((rec, i)) = by.intention(d.intention) {
            out.push(Lost {
                seq: d.intention,
                agent: rec.record.envelope.producer.clone(),
                reasoning: i.reasoning.clone(),
                outcome: last.outcome.kind(),
                rule: last.rule,
            });
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The causal graph of an audit in Graphviz dot.
pub fn to_dot(report: &AuditReport) -> String {
    let mut out = format!(
        "digraph audit {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  label=\"{}\";\n",
        escape(&report.entity.to_string())
    );
    // One node per change: a record may change several fields.
    for (n, c) in report.changes.iter().enumerate() {
        let value = serde_json::to_string(&c.value).unwrap_or_default();
        out.push_str(&format!(
            "  c{n} [label=\"{} {} {}\\nseq {} ({})\", style=filled, fillcolor=lightyellow];\n",
            escape(&c.field),
            if c.addition { "+=" } else { "=" },
            escape(&value),
            c.seq,
            c.kind
        ));
        let Some(d) = &c.decision else {
            continue;
        };
        out.push_str(&format!(
            "  d{} [label=\"decision: {}\\nrule {}\"];\n  d{} -> c{n};\n",
            c.seq,
            d.outcome.name(),
            d.rule.name(),
            c.seq
        ));
        if let Some(i) = &c.intention {
            out.push_str(&format!(
                "  i{} [label=\"#{} {}\\n{}\"];\n  i{} -> d{};\n",
                i.seq,
                i.seq,
                escape(&i.agent),
                escape(&i.reasoning),
                i.seq,
                c.seq
            ));
        }
        if let Some(r) = &c.resolution {
            out.push_str(&format!(
                "  r{} [label=\"{} chose option {}\\n{}\", shape=ellipse];\n  r{} -> d{};\n",
                r.seq,
                escape(&r.human),
                r.option,
                escape(&r.rationale),
                r.seq,
                c.seq
            ));
        }
        for l in &c.lost {
            out.push_str(&format!(
                "  l{} [label=\"#{} {} ({})\\n{}\", color=gray];\n  l{} -> d{} [style=dashed, label=\"lost: {}\"];\n",
                l.seq,
                l.seq,
                escape(&l.agent),
                l.outcome,
                escape(&l.reasoning),
                l.seq,
                c.seq,
                escape(l.rule.name())
            ));
        }
    }
    out.push_str("}\n");
    out
}
