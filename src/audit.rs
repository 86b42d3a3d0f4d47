//! Audit: "why did this price change?". Every change of an entity's field,
//! newest first, with the record that changed it, the intention behind it, the
//! decision and its full rule trace, the human resolution if any, and the
//! intentions that lost. Reads only the records the entity index names.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::context::Context;
use crate::ledger::{Ledger, LedgerError};
use crate::record::{Body, StoredRecord};
use crate::value::Value;
use crate::vocab::{Action, Decision, Impact, Objective};

/// Why an audit or a state view cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no record names entity `{0}` (entities look like sku:SKU-1, order:O-9, customer:C-3, category:headphones)")]
    UnknownEntity(String),
    #[error("entity `{entity}` has no field `{field}`; its fields: {known}")]
    UnknownField {
        entity: String,
        field: String,
        known: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The intention behind a change.
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowStepView {
    pub run: String,
    pub step: String,
    /// The run's workflow (`name vN`), from its `workflow_started` record.
    pub workflow: Option<String>,
}

/// A human resolution behind a decision.
#[derive(Clone, Debug, Serialize)]
pub struct ResolutionView {
    pub seq: u64,
    pub human: String,
    pub option: u32,
    pub rationale: String,
}

/// An intention that lost to the change.
#[derive(Clone, Debug, Serialize)]
pub struct Lost {
    pub seq: u64,
    pub agent: String,
    pub reasoning: String,
    pub outcome: String,
    pub rule: String,
}

/// One change of a field.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub seq: u64,
    pub at_ms: u64,
    pub field: String,
    pub value: Value,
    pub kind: &'static str,
    pub producer: String,
    pub intention: Option<IntentionView>,
    pub decision: Option<Box<Decision>>,
    pub resolution: Option<ResolutionView>,
    pub lost: Vec<Lost>,
}

/// The answer to `parley audit`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    pub entity: String,
    pub field: Option<String>,
    pub changes: Vec<Change>,
}

/// The JSON name of a unit enum value (`"active"`, `"free_shipping"`).
fn json_name<T: Serialize>(v: &T) -> Value {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Value::Text(s),
        Ok(other) => Value::Text(other.to_string()),
        Err(_) => Value::Null,
    }
}

fn canonical_field(field: &str) -> String {
    match field {
        "price" => "price_minor".into(),
        "cost" => "cost_minor".into(),
        other => other.to_owned(),
    }
}

/// The (entity, field, value) writes a record makes; decisions need the
/// intention they approve.
fn writes_of(body: &Body, intention: Option<&Action>) -> Vec<(String, String, Value)> {
    let sku = |s: &str| format!("sku:{s}");
    let w = |e: String, f: &str, v: Value| (e, f.to_owned(), v);
    match body {
        Body::Catalog {
            sku: s,
            category,
            cost_minor,
            price_minor,
            stock,
            lifecycle,
        } => vec![
            w(sku(s), "category", Value::Text(category.clone())),
            w(sku(s), "cost_minor", Value::Int(*cost_minor)),
            w(sku(s), "price_minor", Value::Int(*price_minor)),
            w(sku(s), "stock", Value::Int(*stock)),
            w(sku(s), "lifecycle", json_name(lifecycle)),
        ],
        Body::StockChanged { sku: s, stock } => vec![w(sku(s), "stock", Value::Int(*stock))],
        Body::CompetitorPrice {
            sku: s,
            competitor,
            price_minor,
        } => {
            vec![w(
                sku(s),
                &format!("competitor_price.{competitor}"),
                Value::Int(*price_minor),
            )]
        }
        Body::SupplierDelay { skus, days, .. } => skus
            .iter()
            .map(|s| w(sku(s), "supplier_delay_days", Value::Int(i64::from(*days))))
            .collect(),
        Body::TrafficSpike {
            sku: s,
            increase_bp,
        } => {
            vec![w(
                sku(s),
                "traffic_increase_bp",
                Value::Int(i64::from(*increase_bp)),
            )]
        }
        Body::OrderPlaced {
            order,
            customer,
            total_minor,
        } => vec![
            w(
                format!("order:{order}"),
                "customer",
                Value::Text(customer.clone()),
            ),
            w(
                format!("order:{order}"),
                "total_minor",
                Value::Int(*total_minor),
            ),
        ],
        Body::OrderDelayed { order, days } => vec![w(
            format!("order:{order}"),
            "delayed_days",
            Value::Int(i64::from(*days)),
        )],
        Body::OrderFlagged { order, reason } => vec![w(
            format!("order:{order}"),
            "flagged",
            Value::Text(reason.clone()),
        )],
        Body::CustomerContacted {
            customer,
            order,
            topic,
        } => {
            vec![w(
                format!("customer:{customer}"),
                "contact",
                Value::Text(format!("{order}|{topic}")),
            )]
        }
        Body::Fact {
            entity,
            attribute,
            value,
        } => vec![w(entity.clone(), attribute, value.clone())],
        Body::Decision { decision } => match intention {
            Some(Action::SetPrice {
                sku: s,
                price_minor,
            }) => vec![w(sku(s), "price_minor", Value::Int(*price_minor))],
            Some(Action::LaunchPromotion { discount_bp, .. }) => {
                vec![w(
                    decision.entity.clone(),
                    "promotion",
                    Value::Int(i64::from(*discount_bp)),
                )]
            }
            Some(Action::Reorder { sku: s, quantity }) => {
                vec![w(sku(s), "on_order", Value::Int(i64::from(*quantity)))]
            }
            Some(Action::Discontinue { sku: s }) => {
                vec![w(
                    sku(s),
                    "lifecycle",
                    json_name(&crate::vocab::Lifecycle::Discontinuing),
                )]
            }
            Some(Action::NotifyCustomer {
                customer,
                order,
                topic,
            }) => {
                vec![w(
                    format!("customer:{customer}"),
                    "contact",
                    Value::Text(format!("{order}|{topic}")),
                )]
            }
            Some(Action::OfferPerk { order, perk }) => {
                vec![w(format!("order:{order}"), "perk", json_name(perk))]
            }
            Some(Action::ChangeAdBudget {
                campaign,
                budget_minor,
            }) => {
                vec![w(
                    format!("campaign:{campaign}"),
                    "budget_minor",
                    Value::Int(*budget_minor),
                )]
            }
            Some(Action::ReserveStock { sku: s, quantity }) => {
                vec![w(sku(s), "reserved", Value::Int(i64::from(*quantity)))]
            }
            Some(Action::Generic {
                entity,
                attribute,
                value,
            }) => vec![w(entity.clone(), attribute, value.clone())],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Every change of `entity` (and of `field`, if given), newest first.
pub fn audit(
    ledger: &Ledger,
    entity: &str,
    field: Option<&str>,
) -> Result<AuditReport, AuditError> {
    let seqs = ledger
        .derived()?
        .entity_seqs(entity)
        .map_err(LedgerError::from)?;
    if seqs.is_empty() {
        return Err(AuditError::UnknownEntity(entity.to_owned()));
    }
    let records = ledger.read(&seqs).map_err(LedgerError::from)?;
    let field = field.map(canonical_field);
    let intentions: BTreeMap<u64, &StoredRecord> = records
        .iter()
        .filter(|r| matches!(r.record.body, Body::Intend { .. }))
        .map(|r| (r.record.envelope.seq, r))
        .collect();
    let decisions: Vec<(&StoredRecord, &Decision)> = records
        .iter()
        .filter_map(|r| match &r.record.body {
            Body::Decision { decision } => Some((r, decision.as_ref())),
            _ => None,
        })
        .collect();
    let action_of = |seq: u64| match intentions.get(&seq).map(|r| &r.record.body) {
        Some(Body::Intend { intention }) => Some(&intention.action),
        _ => None,
    };
    let mut known = std::collections::BTreeSet::new();
    let mut changes = Vec::new();
    let mut resolutions = Vec::new();
    for r in &records {
        let decision = match &r.record.body {
            Body::Decision { decision } => Some(decision),
            _ => None,
        };
        let writes = writes_of(
            &r.record.body,
            decision
                .and_then(|d| action_of(d.intention).and_then(|a| d.outcome.approved_action(a))),
        );
        for (e, f, value) in writes {
            if e != entity {
                continue;
            }
            known.insert(f.clone());
            if field.as_deref().is_some_and(|want| want != f) {
                continue;
            }
            let intention = decision
                .and_then(|d| intentions.get(&d.intention))
                .and_then(|i| match &i.record.body {
                    Body::Intend { intention } => Some(IntentionView {
                        seq: i.record.envelope.seq,
                        agent: i.record.envelope.producer.clone(),
                        action: intention.action.clone(),
                        reasoning: intention.reasoning.clone(),
                        impact: intention.impact,
                        objective: intention.objective,
                        workflow_step: intention
                            .workflow_step
                            .as_ref()
                            .map(|r| step_view(ledger, r)),
                    }),
                    _ => None,
                });
            let lost = intention.as_ref().map_or_else(Vec::new, |i| {
                losers(i.seq, decision.map(|d| d.as_ref()), &decisions, &intentions)
            });
            if let Some(d) = decision.filter(|d| d.rule == "human_resolution") {
                resolutions.extend(d.competing.first().copied());
            }
            changes.push(Change {
                seq: r.record.envelope.seq,
                at_ms: r.record.envelope.recorded_at_ms,
                field: f,
                value,
                kind: r.record.body.kind(),
                producer: r.record.envelope.producer.clone(),
                intention,
                decision: decision.cloned(),
                resolution: None,
                lost,
            });
        }
    }
    if let Some(f) = &field {
        if !known.contains(f) && changes.is_empty() {
            return Err(AuditError::UnknownField {
                entity: entity.to_owned(),
                field: f.clone(),
                known: known.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
    }
    resolutions.sort_unstable();
    resolutions.dedup();
    let resolved = ledger.read(&resolutions).map_err(LedgerError::from)?;
    for change in &mut changes {
        let Some(res_seq) = change
            .decision
            .as_ref()
            .filter(|d| d.rule == "human_resolution")
            .and_then(|d| d.competing.first())
        else {
            continue;
        };
        if let Some(r) = resolved.iter().find(|r| r.record.envelope.seq == *res_seq) {
            if let Body::HumanResolution {
                option, rationale, ..
            } = &r.record.body
            {
                change.resolution = Some(ResolutionView {
                    seq: *res_seq,
                    human: r.record.envelope.producer.clone(),
                    option: *option,
                    rationale: rationale.clone(),
                });
            }
        }
    }
    changes.reverse();
    Ok(AuditReport {
        entity: entity.to_owned(),
        field,
        changes,
    })
}

/// Intentions that lost to `winner`: rejected or deferred citing it, or rivals it
/// outranked that were not approved.
/// The step and its run's workflow (read from the run's first record).
fn step_view(ledger: &Ledger, r: &crate::vocab::StepRef) -> WorkflowStepView {
    let workflow = ledger
        .derived()
        .ok()
        .and_then(|d| d.entity_seqs(&format!("run:{}", r.run)).ok())
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

fn losers(
    winner: u64,
    decision: Option<&Decision>,
    decisions: &[(&StoredRecord, &Decision)],
    intentions: &BTreeMap<u64, &StoredRecord>,
) -> Vec<Lost> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let final_of = |seq: u64| {
        decisions
            .iter()
            .rev()
            .find(|(_, d)| d.intention == seq)
            .map(|(_, d)| *d)
    };
    let mut candidates: Vec<u64> = decisions
        .iter()
        .filter(|(_, d)| {
            d.intention != winner && d.competing.contains(&winner) && !d.outcome.is_approval()
        })
        .map(|(_, d)| d.intention)
        .collect();
    candidates.extend(
        decision
            .map_or(&[][..], |d| &d.competing)
            .iter()
            .filter(|s| intentions.contains_key(s)),
    );
    for seq in candidates {
        let Some(last) = final_of(seq).filter(|d| !d.outcome.is_approval()) else {
            continue;
        };
        if !seen.insert(seq) {
            continue;
        }
        if let Some(Body::Intend { intention }) = intentions.get(&seq).map(|r| &r.record.body) {
            out.push(Lost {
                seq,
                agent: intentions[&seq].record.envelope.producer.clone(),
                reasoning: intention.reasoning.clone(),
                outcome: last.outcome.name().to_owned(),
                rule: last.rule.clone(),
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
    let mut out = format!("digraph audit {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  label=\"{}\";\n", escape(&report.entity));
    // One node per change: a record may change several fields.
    for (n, c) in report.changes.iter().enumerate() {
        let value = serde_json::to_string(&c.value).unwrap_or_default();
        out.push_str(&format!(
            "  c{n} [label=\"{} = {}\\nseq {} ({})\", style=filled, fillcolor=lightyellow];\n",
            escape(&c.field),
            escape(&value),
            c.seq,
            c.kind
        ));
        if let Some(d) = &c.decision {
            out.push_str(&format!(
                "  d{} [label=\"decision: {}\\nrule {}\"];\n  d{} -> c{n};\n",
                c.seq,
                d.outcome.name(),
                escape(&d.rule),
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
                out.push_str(&format!("  l{} [label=\"#{} {} ({})\\n{}\", color=gray];\n  l{} -> d{} [style=dashed, label=\"lost: {}\"];\n", l.seq, l.seq, escape(&l.agent), l.outcome, escape(&l.reasoning), l.seq, c.seq, escape(&l.rule)));
            }
        }
    }
    out.push_str("}\n");
    out
}

/// One entity of the shared context as JSON, or an error naming the entity.
pub fn entity_view(ctx: &Context, entity: &str) -> Result<serde_json::Value, AuditError> {
    let unknown = || AuditError::UnknownEntity(entity.to_owned());
    let (kind, id) = entity.split_once(':').ok_or_else(unknown)?;
    let open: Vec<&crate::context::IntentionState> = ctx
        .open
        .iter()
        .filter_map(|s| ctx.intentions.get(s))
        .filter(|s| s.intention.action.entity() == entity)
        .collect();
    let view = match kind {
        "sku" => {
            let s = ctx.skus.get(id).ok_or_else(unknown)?;
            let promotions: Vec<_> = ctx
                .promotions
                .values()
                .filter(|p| ctx.skus_of(&p.target).iter().any(|k| k == id))
                .collect();
            serde_json::json!({"entity": entity, "sku": s, "promotions": promotions, "open_intentions": open})
        }
        "order" => {
            serde_json::json!({"entity": entity, "order": ctx.orders.get(id).ok_or_else(unknown)?, "open_intentions": open})
        }
        "customer" => {
            let prefix = format!("{id}|");
            let contacts: BTreeMap<&String, _> = ctx
                .contacts
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect();
            if contacts.is_empty() && open.is_empty() {
                return Err(unknown());
            }
            serde_json::json!({"entity": entity, "contacts": contacts, "open_intentions": open})
        }
        "agent" => {
            serde_json::json!({"entity": entity, "agent": ctx.agents.get(id).ok_or_else(unknown)?})
        }
        "run" => {
            let run = ctx.workflows.runs.get(id).ok_or_else(unknown)?;
            let intentions: Vec<&crate::context::IntentionState> = ctx
                .intentions
                .values()
                .filter(|s| {
                    s.intention
                        .workflow_step
                        .as_ref()
                        .is_some_and(|r| r.run == id)
                })
                .collect();
            serde_json::json!({"entity": entity, "run": run, "intentions": intentions})
        }
        _ => {
            let prefix = format!("{entity}|");
            let facts: BTreeMap<&String, _> = ctx
                .facts
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect();
            if facts.is_empty() && open.is_empty() {
                return Err(unknown());
            }
            serde_json::json!({"entity": entity, "facts": facts, "open_intentions": open})
        }
    };
    Ok(view)
}
