//! The MCP tools: each an argument type (its JSON Schema is the tool's input
//! schema), a description written for a model, an output schema from the
//! API's own answer type, and the API request it makes. Writes go as the
//! token's identity; a tool never widens what the token may do.

use axum::http::Method;
use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::args::{
    Announce, AsOf, Audit, Broadcast, Entity, Escalations, Events, Explain, Fact, ReportStep,
    Resolve, Scorecard, StepOutcome, WhatIf, Workflow,
};
use crate::vocab::{named_enum, ProblemCode};

named_enum!(
    /// The tools, in the order they are listed.
    McpTool {
        AnnounceIntention = "announce_intention",
        PublishFact = "publish_fact",
        Broadcast = "broadcast",
        GetContext = "get_context",
        GetEntity = "get_entity",
        RecentEvents = "recent_events",
        ExplainDecision = "explain_decision",
        AuditField = "audit_field",
        Whatif = "whatif",
        ListEscalations = "list_escalations",
        ResolveEscalation = "resolve_escalation",
        WorkflowStatus = "workflow_status",
        ReportStep = "report_step",
        Scorecard = "scorecard",
    }
);

impl McpTool {
    /// The tool named `text`, if there is one.
    pub(crate) fn parse(text: &str) -> Option<McpTool> {
        McpTool::ALL.iter().copied().find(|t| t.name() == text)
    }
}

/// A tool as listed: name, description, input and output schema.
pub(crate) struct Spec {
    pub name: McpTool,
    pub title: &'static str,
    pub description: &'static str,
    pub input: Value,
    pub output: Value,
    pub read_only: bool,
}

/// What a tool call turns into: an API request, or a request whose answer
/// needs a second look (an intention's latest decision, a workflow run).
pub(crate) enum Plan {
    Api {
        method: Method,
        path: String,
        body: Option<Value>,
        /// Wraps a non-object answer as `{key: answer}`.
        wrap: Option<&'static str>,
    },
    Explain {
        seq: u64,
    },
    Workflow {
        run: Option<String>,
    },
}

fn input<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().for_deserialize();
    portable(
        settings
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value(),
    )
}

fn output<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().for_serialize();
    portable(
        settings
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value(),
    )
}

/// Drops the Rust integer `format`s schemars adds (`uint64`, `int32`, …):
/// they are not JSON Schema formats, so strict validators in MCP hosts warn
/// about them. The ranges (`minimum`) stay.
fn portable(mut schema: Value) -> Value {
    fn walk(v: &mut Value, depth: u32) {
        if depth > 64 {
            return; // schemas are far shallower; a bound on the walk all the same
        }
        match v {
            Value::Object(o) => {
                let rust_int = o
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.trim_start_matches('u').starts_with("int"));
                if rust_int {
                    o.remove("format");
                }
                for x in o.values_mut() {
                    walk(x, depth + 1);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, depth + 1)),
            _ => {}
        }
    }
    walk(&mut schema, 0);
    schema
}

/// An object holding one field `key` of type `T` (for answers that are not objects).
fn wrapped<T: JsonSchema>(key: &str) -> Value {
    let mut inner = output::<T>();
    let defs = inner.as_object_mut().and_then(|o| o.remove("$defs"));
    if let Some(o) = inner.as_object_mut() {
        o.remove("$schema");
    }
    let mut schema = json!({
        "type": "object",
        "properties": {key: inner},
        "required": [key],
    });
    if let Some(d) = defs {
        schema["$defs"] = d;
    }
    schema
}

/// Every tool, in the order they are listed.
pub(crate) fn catalog() -> Vec<Spec> {
    use crate::answer::CommandAnswer;
    use crate::context::view::{EntityView, StateView};
    use crate::escalations::EscalationView;
    let answer = output::<CommandAnswer>;
    vec![
        Spec { name: McpTool::AnnounceIntention, title: "Announce an intention", read_only: false,
            description: "Announce what you intend to do BEFORE doing it, and get parley's decision back: approved (go ahead), modified (go ahead with the changed values in decision.outcome.action), deferred (wait: `decision.next` says until when; do not act yet), escalated (a person decides; do not act yet), or rejected (do not act; decision.summary says why and what would pass). Act only on approved or modified.",
            input: input::<Announce>(), output: answer() },
        Spec { name: McpTool::PublishFact, title: "Publish a fact", read_only: false,
            description: "Write a fact about an entity into the shared context (e.g. sku:E2 colour = red), as your agent. Other agents read it with get_entity.",
            input: input::<Fact>(), output: answer() },
        Spec { name: McpTool::Broadcast, title: "Broadcast an event", read_only: false,
            description: "Tell every agent that something happened (a topic, an optional entity and details). Broadcasts are recorded; they change no state by themselves.",
            input: input::<Broadcast>(), output: answer() },
        Spec { name: McpTool::GetContext, title: "Read the shared context", read_only: true,
            description: "The whole shared context: agents, skus (price, cost, stock), orders, promotions, open intentions, workflow runs, precedents. Now, or as of a seq (`at`) or a time (`at_time`).",
            input: input::<AsOf>(), output: output::<StateView>() },
        Spec { name: McpTool::GetEntity, title: "Read one entity", read_only: true,
            description: "One entity of the shared context (sku:E2, order:O-9, customer:C-3, category:earbuds, run:sale-1, intention:42), now or as of a seq or time. Use it before announcing to see the current price, stock and promotions.",
            input: input::<Entity>(), output: wrapped::<EntityView>("entity") },
        Spec { name: McpTool::RecentEvents, title: "Recent events", read_only: true,
            description: "Records of the log, oldest first, filtered by kind, entity, topic or producer. Without `from`, the last `limit` records.",
            input: input::<Events>(), output: output::<crate::server::reads::RecordsPage>() },
        Spec { name: McpTool::ExplainDecision, title: "Explain a decision", read_only: true,
            description: "Why parley decided what it did: the rule, each step of the trace as a sentence with the values it read, and the records it cites. Give a decision's seq or an intention's seq.",
            input: input::<Explain>(), output: output::<crate::explain::Explanation>() },
        Spec { name: McpTool::AuditField, title: "Audit a field", read_only: true,
            description: "Why a field has its value: every change of e.g. sku:E2 price, newest first, with the intention, the decision and rule, the person who settled it and why, and the intentions that lost.",
            input: input::<Audit>(), output: output::<crate::audit::AuditReport>() },
        Spec { name: McpTool::Whatif, title: "What if the rules were different", read_only: true,
            description: "Replay the log's decisions under another rule set (TOML text) or resolver version, in memory, and report every decision that would differ plus a summary both ways. Writes nothing. Sends progress notifications while it runs.",
            input: input::<WhatIf>(), output: output::<crate::whatif::WhatIfReport>() },
        Spec { name: McpTool::ListEscalations, title: "List escalations", read_only: true,
            description: "Escalations waiting for a person (or, with open=false, those in the log a page at a time from `from`): the summary, each agent's side, and the numbered options resolve_escalation takes.",
            input: input::<Escalations>(), output: wrapped::<Vec<EscalationView>>("escalations") },
        Spec { name: McpTool::ResolveEscalation, title: "Resolve an escalation (humans only)", read_only: false,
            description: "As a person (a human's token only), settle an open escalation: choose one of its numbered options and say why. Returns the decisions that follow.",
            input: input::<Resolve>(), output: answer() },
        Spec { name: McpTool::WorkflowStatus, title: "Workflow status", read_only: true,
            description: "Workflow runs with each step's owner, state and deadline (one run with `run`), and the workflow definitions.",
            input: input::<Workflow>(), output: output::<crate::server::reads::WorkflowsView>() },
        Spec { name: McpTool::ReportStep, title: "Report a workflow step", read_only: false,
            description: "As the owner of a workflow step, report it completed (with an optional note) or failed (with the reason in `note`). Intentions waiting for it are decided again.",
            input: input::<ReportStep>(), output: answer() },
        Spec { name: McpTool::Scorecard, title: "What followed the decisions", read_only: true,
            description: "From the outcome records (sales, refunds, complaints): realized revenue and margin per day; each price or promotion decision's projected impact against what it realized; each agent's forecast bias (realized over projected; 10000 bp is right on) and error; what each rule decided and what followed its approvals; each precedent's record. Check your own forecast record before projecting impacts.",
            input: input::<Scorecard>(), output: output::<crate::scorecard::Report>() },
    ]
}

/// Why a call cannot be planned (the model can fix its arguments).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("the arguments do not fit: {0}")]
    Arguments(serde_json::Error),
    #[error("your token acts as `{identity}`, not as `{asked}`: leave `agent` out or set it to `{identity}`")]
    NotYourIdentity { identity: String, asked: String },
    #[error("`limit` is 1 to 200; got {0}")]
    Limit(u32),
    #[error("a failed step needs its reason in `note`")]
    NoReason,
}

fn args<T: serde::de::DeserializeOwned>(raw: &Value) -> Result<T, Refused> {
    serde_json::from_value(raw.clone()).map_err(Refused::Arguments)
}

/// The producer a write goes as: the token's identity, unless the model
/// named another, which is refused here with what to do instead.
pub(crate) fn writer(asked: Option<&str>, identity: &str) -> Result<String, Refused> {
    match asked {
        Some(a) if a != identity => Err(Refused::NotYourIdentity {
            identity: identity.to_owned(),
            asked: a.to_owned(),
        }),
        _ => Ok(identity.to_owned()),
    }
}

fn command(mut body: Value, producer: String, key: Option<String>) -> Plan {
    body["producer"] = Value::from(producer);
    if let Some(k) = key {
        body["idempotency_key"] = Value::from(k);
    }
    Plan::Api {
        method: Method::POST,
        path: "/v1/commands".into(),
        body: Some(body),
        wrap: None,
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes a query value or path segment.
pub(crate) fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn get(path: String, wrap: Option<&'static str>) -> Plan {
    Plan::Api {
        method: Method::GET,
        path,
        body: None,
        wrap,
    }
}

fn as_of(at: Option<u64>, at_time: Option<String>) -> String {
    query(&[("at", at.map(|a| a.to_string())), ("at_time", at_time)])
}

/// The plan for a call of `tool` with `raw` arguments by `identity`, whose
/// ledger head is `head`. Writes go as `identity`.
pub(crate) fn plan(tool: McpTool, raw: &Value, identity: &str, head: u64) -> Result<Plan, Refused> {
    use McpTool as T;
    match tool {
        T::AnnounceIntention => plan_announce_intention(raw, identity),
        T::PublishFact => plan_publish_fact(raw, identity),
        T::Broadcast => plan_broadcast(raw, identity),
        T::ResolveEscalation => plan_resolve_escalation(raw, identity),
        T::ReportStep => plan_report_step(raw, identity),
        T::GetContext => plan_get_context(raw),
        T::GetEntity => plan_get_entity(raw),
        T::RecentEvents => plan_recent_events(raw, head),
        T::ExplainDecision => plan_explain_decision(raw),
        T::AuditField => plan_audit_field(raw),
        T::Whatif => plan_whatif(raw),
        T::ListEscalations => plan_list_escalations(raw),
        T::WorkflowStatus => plan_workflow_status(raw),
        T::Scorecard => {
            let a: Scorecard = args(raw)?;
            Ok(get(
                format!("/v1/scorecard{}", query(&[("from", a.from), ("to", a.to)])),
                None,
            ))
        }
    }
}

fn plan_announce_intention(raw: &Value, identity: &str) -> Result<Plan, Refused> {
    let a: Announce = args(raw)?;
    let producer = writer(a.agent.as_deref(), identity)?;
    let mut intention = json!({"action": a.action, "reasoning": a.reasoning, "impact": a.impact, "objective": a.objective});
    if let Some(t) = a.expires_at_ms {
        intention["expires_at_ms"] = Value::from(t);
    }
    if let Some(s) = a.workflow_step {
        intention["workflow_step"] = json!(s);
    }
    Ok(command(
        json!({"kind": "intend", "intention": intention}),
        producer,
        a.idempotency_key,
    ))
}

fn plan_publish_fact(raw: &Value, identity: &str) -> Result<Plan, Refused> {
    let a: Fact = args(raw)?;
    let producer = writer(a.agent.as_deref(), identity)?;
    Ok(command(
        json!({"kind": "fact", "entity": a.entity, "attribute": a.attribute, "value": a.value}),
        producer,
        a.idempotency_key,
    ))
}

fn plan_broadcast(raw: &Value, identity: &str) -> Result<Plan, Refused> {
    let a: Broadcast = args(raw)?;
    let producer = writer(a.agent.as_deref(), identity)?;
    let mut body =
        json!({"kind": "broadcast", "topic": a.topic, "detail": a.detail.unwrap_or_default()});
    if let Some(e) = a.entity {
        body["entity"] = Value::from(e);
    }
    Ok(command(body, producer, a.idempotency_key))
}

fn plan_resolve_escalation(raw: &Value, identity: &str) -> Result<Plan, Refused> {
    let a: Resolve = args(raw)?;
    let body = json!({"kind": "human_resolution", "intention": a.escalation, "option": a.option, "rationale": a.rationale});
    Ok(command(body, identity.to_owned(), None))
}

fn plan_report_step(raw: &Value, identity: &str) -> Result<Plan, Refused> {
    let a: ReportStep = args(raw)?;
    let producer = writer(a.agent.as_deref(), identity)?;
    let body = match a.outcome {
        StepOutcome::Completed => {
            json!({"kind": "step_completed", "run": a.run, "step": a.step, "note": a.note.unwrap_or_default()})
        }
        StepOutcome::Failed => {
            let reason = a
                .note
                .filter(|n| !n.trim().is_empty())
                .ok_or(Refused::NoReason)?;
            json!({"kind": "step_failed", "run": a.run, "step": a.step, "reason": reason})
        }
    };
    Ok(command(body, producer, None))
}

fn plan_get_context(raw: &Value) -> Result<Plan, Refused> {
    let a: AsOf = args(raw)?;
    Ok(get(format!("/v1/state{}", as_of(a.at, a.at_time)), None))
}

fn plan_get_entity(raw: &Value) -> Result<Plan, Refused> {
    let a: Entity = args(raw)?;
    Ok(get(
        format!(
            "/v1/entities/{}{}",
            encode(&a.entity),
            as_of(a.at, a.at_time)
        ),
        Some("entity"),
    ))
}

fn plan_recent_events(raw: &Value, head: u64) -> Result<Plan, Refused> {
    let a: Events = args(raw)?;
    let limit = a.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(Refused::Limit(limit));
    }
    let from = a
        .from
        .unwrap_or_else(|| head.saturating_sub(u64::from(limit)) + 1);
    Ok(get(
        format!(
            "/v1/records{}",
            query(&[
                ("from", Some(from.to_string())),
                ("limit", Some(limit.to_string())),
                ("kind", a.kind),
                ("entity", a.entity),
                ("topic", a.topic),
                ("producer", a.producer),
            ])
        ),
        None,
    ))
}

fn plan_explain_decision(raw: &Value) -> Result<Plan, Refused> {
    Ok(Plan::Explain {
        seq: args::<Explain>(raw)?.seq,
    })
}

fn plan_audit_field(raw: &Value) -> Result<Plan, Refused> {
    let a: Audit = args(raw)?;
    Ok(get(
        format!(
            "/v1/entities/{}/audit{}",
            encode(&a.entity),
            query(&[("field", a.field)])
        ),
        None,
    ))
}

fn plan_whatif(raw: &Value) -> Result<Plan, Refused> {
    let a: WhatIf = args(raw)?;
    let body = json!({"rules": a.rules, "resolver": a.resolver, "from": a.from, "to": a.to});
    Ok(Plan::Api {
        method: Method::POST,
        path: "/v1/whatif".into(),
        body: Some(body),
        wrap: None,
    })
}

fn plan_list_escalations(raw: &Value) -> Result<Plan, Refused> {
    let a: Escalations = args(raw)?;
    let open = a.open.unwrap_or(true);
    let path = match a.from {
        Some(from) if !open => format!("/v1/escalations?open=false&from={from}"),
        _ => format!("/v1/escalations?open={open}"),
    };
    Ok(get(path, Some("escalations")))
}

fn plan_workflow_status(raw: &Value) -> Result<Plan, Refused> {
    Ok(Plan::Workflow {
        run: args::<Workflow>(raw)?.run,
    })
}

/// What a model can do about an API refusal, by its problem code.
pub(crate) fn hint(code: Option<ProblemCode>) -> &'static str {
    use ProblemCode as P;
    let Some(code) = code else {
        return "Read the message; it names what is wrong.";
    };
    match code {
        P::Unauthorized | P::CredentialRevoked => "The token is missing, unknown or revoked: ask the operator for a valid one.",
        P::NotYourIdentity => "Write as your own agent: leave `agent` out.",
        P::RoleForbids | P::Credential | P::AdminsOnly | P::NotAdmin | P::NotHuman => "Your token's role may not do this (agents announce and publish; humans resolve; admins change rules).",
        P::InvalidCommand | P::BadBody | P::BadBatch | P::BadQuery | P::BadEntity | P::BadFilter | P::BadSeq | P::BadWhatif | P::BadLimit | P::BadTime | P::BadWait | P::BadPath | P::BadLastEventId | P::UnknownField => "Fix the arguments as the message says and call again.",
        P::NotFound | P::UnknownEntity | P::NoSuchRun | P::NoSuchStep | P::NoSuchWorkflow | P::NoOpenEscalation | P::NoSuchOption => "Nothing is there: check the id or entity (list or read first).",
        P::RateLimited | P::Busy | P::ContextBehind => "Wait a second and call again.",
        P::IdempotencyConflict => "That idempotency key was used for something else: use a new key.",
        _ => "Read the message; it names what is wrong.",
    }
}
