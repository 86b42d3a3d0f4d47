//! The tools' argument types: each one's JSON Schema is its tool's input
//! schema, and its doc comments are what a model reads.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::value::Value as FactValue;
use crate::vocab::{Action, Impact, Objective, StepRef};

/// Announce an intention before acting.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Announce {
    /// The agent you act for. It must be the identity of your token; leave it out to use that.
    pub agent: Option<String>,
    /// What you intend to do, e.g. {"type":"set_price","sku":"E2","price_minor":5399}. Money is in minor units (pence).
    pub action: Action,
    /// Why, in a sentence: other agents and people read it.
    pub reasoning: String,
    /// Projected effect on revenue and margin, in minor units (negative for a loss).
    pub impact: Impact,
    /// The objective this serves; it ranks conflicting intentions.
    pub objective: Objective,
    /// When the intention lapses if still undecided (ms since the epoch).
    pub expires_at_ms: Option<u64>,
    /// The workflow step this intention performs, if any.
    pub workflow_step: Option<StepRef>,
    /// Retrying with the same key never announces twice.
    pub idempotency_key: Option<String>,
}

/// Publish a fact to the shared context.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fact {
    /// The agent you act for (your token's identity; leave it out to use that).
    pub agent: Option<String>,
    /// The entity, e.g. `sku:E2`, `order:O-9`, `customer:C-3`.
    pub entity: String,
    /// The attribute, e.g. `colour`.
    pub attribute: String,
    /// Its value: text, a whole number, true/false.
    pub value: FactValue,
    pub idempotency_key: Option<String>,
}

/// Broadcast an event to every agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Broadcast {
    pub agent: Option<String>,
    /// What happened, e.g. `competitor_category_cut`.
    pub topic: String,
    /// The entity it is about, if any.
    pub entity: Option<String>,
    /// Details as name → value.
    pub detail: Option<BTreeMap<String, FactValue>>,
    pub idempotency_key: Option<String>,
}

/// A moment of the ledger: its head, a seq, or a time.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOf {
    /// A seq: the context as it was right after that record.
    pub at: Option<u64>,
    /// A time (RFC 3339): the context as of the last record at or before it.
    pub at_time: Option<String>,
}

/// One entity of the shared context.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entity {
    /// e.g. `sku:E2`, `order:O-9`, `customer:C-3`, `category:earbuds`, `run:sale-1`, `intention:42`.
    pub entity: String,
    pub at: Option<u64>,
    pub at_time: Option<String>,
}

/// Recent records of the log.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Events {
    /// The first seq (default: the last `limit` records).
    pub from: Option<u64>,
    /// How many, 1 to 200 (default 20).
    pub limit: Option<u32>,
    /// A record kind: intend, decision, fact, broadcast, human_resolution, …
    pub kind: Option<String>,
    /// Only records naming this entity.
    pub entity: Option<String>,
    /// Only broadcasts on this topic.
    pub topic: Option<String>,
    /// Only records by this producer.
    pub producer: Option<String>,
}

/// A decision to explain.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Explain {
    /// A decision's seq, or an intention's seq (its latest decision is explained).
    pub seq: u64,
}

/// A field to audit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Audit {
    /// e.g. `sku:E2`.
    pub entity: String,
    /// e.g. `price`; leave out for every field.
    pub field: Option<String>,
}

/// Another rule set or resolver to replay the log under.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatIf {
    /// A whole rule set as TOML text (read `parley://rules` for the one in force and change it).
    pub rules: Option<String>,
    /// Another released resolver version.
    pub resolver: Option<u32>,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

/// Which escalations.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Escalations {
    /// Only those still waiting for a person (default true).
    pub open: Option<bool>,
    /// With open=false: the first seq to look at (default 1). A page holds
    /// at most 100 escalations; pass the last one's `decision` + 1 for more.
    #[schemars(range(min = 1, max = u64::MAX))]
    pub from: Option<u64>,
}

/// A person's decision on an escalation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolve {
    /// The escalation's id (the escalated intention's seq).
    pub escalation: u64,
    /// The option's number, as `list_escalations` shows them.
    pub option: u32,
    /// Why: recorded with the decision for agents and audits.
    pub rationale: String,
}

/// Which workflow runs.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workflow {
    /// One run's id; leave out for every run and definition.
    pub run: Option<String>,
}

/// The range of a scorecard.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scorecard {
    /// Days and decisions from this time on: RFC 3339, or a date `YYYY-MM-DD`.
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub from: Option<String>,
    /// Before this time.
    #[schemars(with = "Option<crate::bounds::schema::DayOrTime>")]
    pub to: Option<String>,
}

/// How a step ended.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepOutcome {
    Completed,
    Failed,
}

/// A workflow step's owner reports it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportStep {
    pub agent: Option<String>,
    pub run: String,
    pub step: String,
    pub outcome: StepOutcome,
    /// For completed: a note; for failed: the reason (required).
    pub note: Option<String>,
}
