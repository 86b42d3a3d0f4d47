//! The OpenAPI 3.1 document of the HTTP API (`GET /v1/openapi.json`, and
//! `schemas/openapi.json`), generated from the handlers' own request and
//! response types: response schemas describe what is serialized, request
//! schemas what is accepted. `tests/openapi.rs` fails when a route of the
//! router is missing here or the committed copy drifts.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::auth::WhoAmI;
use super::intentions::{IntentionAnswer, IntentionQuery};
use super::problem::Problem;
use super::reads::{
    AtQuery, AuditQuery, EscalationsQuery, RecordsPage, RecordsQuery, RulesView, WorkflowsView,
};
use super::stream::StreamQuery;
use super::tokens::{TokenAnswer, TokenRequest};
use super::whatif::WhatIfRequest;
use super::writes::BatchItem;
use crate::answer::CommandAnswer;
use crate::audit::AuditReport;
use crate::command::CommandLine;
use crate::context::view::{EntityView, StateView};
use crate::escalations::EscalationView;
use crate::explain::Explanation;
use crate::whatif::WhatIfReport;

const REF_BASE: &str = "#/components/schemas/";

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    })
}

/// Generators for what the API reads and what it writes.
struct Schemas {
    request: SchemaGenerator,
    response: SchemaGenerator,
}

impl Schemas {
    fn req<T: JsonSchema>(&mut self) -> Value {
        self.request.subschema_for::<T>().to_value()
    }

    fn res<T: JsonSchema>(&mut self) -> Value {
        self.response.subschema_for::<T>().to_value()
    }

    /// The query parameters of `Q` (a struct of optional scalars).
    fn query<Q: JsonSchema>() -> Vec<Value> {
        let gen = settings()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        let root: Schema = gen.into_root_schema_for::<Q>();
        let root = root.to_value();
        let required: Vec<&str> = root["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = root["properties"].as_object() else {
            return Vec::new();
        };
        props
            .iter()
            .map(|(name, schema)| {
                let mut schema = schema.clone();
                let description = schema
                    .as_object_mut()
                    .and_then(|o| o.remove("description"))
                    .unwrap_or(Value::Null);
                not_null(&mut schema);
                let mut p = json!({
                    "name": name, "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if !description.is_null() {
                    p["description"] = description;
                }
                p
            })
            .collect()
    }

    /// Every named schema, response and request ones merged; a request
    /// schema that differs from the response schema of the same name is
    /// renamed `…Input` (and references to it rewritten).
    fn components(mut self, paths: &mut Value) -> Map<String, Value> {
        let mut out = self.response.take_definitions(true);
        let requests = self.request.take_definitions(true);
        let renamed: Vec<String> = requests
            .iter()
            .filter(|(name, schema)| out.get(*name).is_some_and(|s| s != *schema))
            .map(|(name, _)| name.clone())
            .collect();
        let rewrite = |v: &mut Value| {
            if renamed.is_empty() {
                return;
            }
            let mut text = v.to_string();
            for name in &renamed {
                let from = format!("\"{REF_BASE}{name}\"");
                let to = format!("\"{REF_BASE}{name}Input\"");
                text = text.replace(&from, &to);
            }
            // Re-parsing text this function wrote from a Value cannot fail.
            *v = serde_json::from_str(&text).unwrap_or(Value::Null);
        };
        for (name, mut schema) in requests {
            rewrite(&mut schema);
            if renamed.contains(&name) {
                out.insert(format!("{name}Input"), schema);
            } else {
                out.entry(name).or_insert(schema);
            }
        }
        // Request bodies are in `paths`; their references follow the renames.
        for (_, item) in paths.as_object_mut().into_iter().flatten() {
            for (_, op) in item.as_object_mut().into_iter().flatten() {
                if let Some(body) = op.get_mut("requestBody") {
                    rewrite(body);
                }
            }
        }
        out
    }
}

/// Query parameters are never `null`: drops `null` from a `type` list.
fn not_null(schema: &mut Value) {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
}

/// A path parameter.
fn path_param(name: &str, integer: bool, description: &str) -> Value {
    let schema = if integer {
        json!({"type": "integer", "minimum": 1, "maximum": u64::MAX})
    } else {
        json!({"type": "string", "minLength": 1, "maxLength": crate::bounds::ID_CHARS_MAX,
               "pattern": crate::bounds::schema::entity_pattern()})
    };
    let mut p = json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description});
    if !integer {
        p["example"] = json!("sku:S1");
    }
    p
}

/// One operation: its success answer and, for every other status, a problem.
fn op(summary: &str, id: &str, params: Vec<Value>, ok: (&str, &str, Value)) -> Value {
    let (status, media, schema) = ok;
    let mut responses = Map::new();
    responses.insert(
        status.to_owned(),
        json!({"description": "Success", "content": {media: {"schema": schema}}}),
    );
    responses.insert(
        "default".to_owned(),
        json!({
            "description": "A problem (RFC 9457); `type` is `urn:parley:problem:<code>`",
            "content": {"application/problem+json": {"schema": {"$ref": format!("{REF_BASE}Problem")}}}
        }),
    );
    json!({"summary": summary, "operationId": id, "parameters": params, "responses": responses})
}

fn json_ok(schema: Value) -> (&'static str, &'static str, Value) {
    ("200", "application/json", schema)
}

fn with_body(mut operation: Value, schema: Value) -> Value {
    operation["requestBody"] = json!({
        "required": true,
        "content": {"application/json": {"schema": schema}}
    });
    operation
}

fn public(mut operation: Value) -> Value {
    operation["security"] = json!([]);
    operation
}

fn text_ok() -> (&'static str, &'static str, Value) {
    ("200", "text/plain", json!({"type": "string"}))
}

/// The paths, each operation built from its handler's types.
fn paths(s: &mut Schemas) -> Value {
    let entity = || {
        path_param(
            "entity",
            false,
            "An entity: `sku:SKU-1`, `order:O-9`, `customer:C-3`, `run:flash-1`, …",
        )
    };
    let with_at = |mut params: Vec<Value>| {
        params.extend(Schemas::query::<AtQuery>());
        params
    };
    let command = s.req::<CommandLine>();
    let batch = json!({"type": "array", "minItems": 1, "maxItems": super::writes::BATCH_MAX, "items": command.clone()});
    json!({
        "/healthz": {"get": public(op("Liveness", "healthz", vec![], text_ok()))},
        "/readyz": {"get": public(op("Readiness: the ledger is open and serving", "readyz", vec![], text_ok()))},
        "/metrics": {"get": op("Prometheus metrics", "metrics", vec![], text_ok())},
        "/v1/openapi.json": {"get": public(op("This document", "openapi", vec![], json_ok(json!({"type": "object"}))))},
        "/v1/commands": {"post": with_body(op("Append one command; answered once durable, with its decision", "postCommand", vec![], json_ok(s.res::<CommandAnswer>())), command)},
        "/v1/commands/batch": {"post": with_body(op("Append up to 256 commands, each answered on its own", "postBatch", vec![], json_ok(s.res::<Vec<BatchItem>>())), batch)},
        "/v1/intentions/{seq}": {"get": op("An intention and its decisions; `wait_ms` long-polls for the next", "getIntention",
            [vec![path_param("seq", true, "The intention's seq")], Schemas::query::<IntentionQuery>()].concat(), json_ok(s.res::<IntentionAnswer>()))},
        "/v1/decisions/{seq}": {"get": op("A decision explained: its rule, each trace step and the values it read, in sentences", "explainDecision",
            vec![path_param("seq", true, "The decision's seq")], json_ok(s.res::<Explanation>()))},
        "/v1/whoami": {"get": op("The identity and role of the token", "whoAmI", vec![], json_ok(s.res::<WhoAmI>()))},
        "/v1/cluster": {"get": op("This node's role in its cluster, the writer's lease and the head", "cluster", vec![], json_ok(s.res::<crate::server::cluster::ClusterView>()))},
        "/v1/state": {"get": op("The shared context, now or as of a seq", "getState", with_at(vec![]), json_ok(s.res::<StateView>()))},
        "/v1/entities/{entity}": {"get": op("One entity of the shared context, now or as of a seq", "getEntity", with_at(vec![entity()]), json_ok(s.res::<EntityView>()))},
        "/v1/entities/{entity}/audit": {"get": op("Every change of an entity's fields, newest first, with the decisions behind them", "auditEntity",
            [vec![entity()], Schemas::query::<AuditQuery>()].concat(), json_ok(s.res::<AuditReport>()))},
        "/v1/records": {"get": op("Records from a seq, filtered, one page at a time", "getRecords", Schemas::query::<RecordsQuery>(), json_ok(s.res::<RecordsPage>()))},
        "/v1/stream": {"get": op("Server-Sent Events: records from a seq, then live (event id = seq)", "stream", Schemas::query::<StreamQuery>(),
            ("200", "text/event-stream", json!({"type": "string"})))},
        "/v1/escalations": {"get": op("Escalations, oldest first: the open ones, or a page of those in the log (a `Link: <…>; rel=\"next\"` header names the next page)", "getEscalations", Schemas::query::<EscalationsQuery>(), json_ok(s.res::<Vec<EscalationView>>()))},
        "/v1/escalations/{id}": {"get": op("The escalations of one intention, oldest first", "getEscalation",
            vec![path_param("id", true, "The escalated intention's seq")], json_ok(s.res::<Vec<EscalationView>>()))},
        "/v1/workflows": {"get": op("Workflow definitions and runs", "getWorkflows", vec![], json_ok(s.res::<WorkflowsView>()))},
        "/v1/rules": {
            "get": op("The rule set in force", "getRules", vec![], json_ok(s.res::<RulesView>())),
            "post": with_body(op("Install a rule set with its rationale (admins)", "installRules", vec![], json_ok(s.res::<CommandAnswer>())), s.req::<super::rules::Install>()),
        },
        "/v1/rules/check": {"post": with_body(op("Check a draft rule set and what it would change", "checkRules", vec![], json_ok(s.res::<super::rules::DraftCheck>())), s.req::<super::rules::Draft>())},
        "/v1/rules/history": {"get": op("The rule sets installed: who, when, why, what changed", "rulesHistory", vec![], json_ok(s.res::<Vec<crate::rules::history::Installation>>()))},
        "/v1/whatif": {"post": with_body(op("Replay decisions under another rule set or resolver", "whatIf", vec![], json_ok(s.res::<WhatIfReport>())), s.req::<WhatIfRequest>())},
        "/v1/scorecard": {
            "get": op("What followed the decisions: realized outcomes per day, decision, agent, rule and precedent", "getScorecard",
                Schemas::query::<super::scorecard::ScorecardQuery>(), json_ok(s.res::<crate::scorecard::Report>())),
            "post": with_body(op("The scorecard, and what other rule sets would have changed (estimated)", "compareScorecard", vec![],
                json_ok(s.res::<crate::scorecard::Report>())), s.req::<super::scorecard::ScorecardRequest>()),
        },
        "/v1/suggestions": {"get": op("Proposed rule changes with their evidence and a what-if preview", "getSuggestions", vec![],
            json_ok(s.res::<crate::scorecard::suggest::SuggestReport>()))},
        "/v1/tokens": {"post": with_body(op("Grant a credential (admins); the token is shown once", "createToken", vec![],
            ("201", "application/json", s.res::<TokenAnswer>())), s.req::<TokenRequest>())},
        "/v1/webhooks/{platform}": {"post": webhook(s)},
        "/.well-known/agent-card.json": {"get": public(op("The A2A agent card: parley as the store's coordination agent", "agentCard", vec![],
            json_ok(json!({"type": "object"}))))},
        "/a2a": {"post": a2a()},
    })
}

/// `POST /a2a`: A2A 1.0's JSON-RPC binding. Errors are JSON-RPC error
/// objects (HTTP 200); the streaming methods answer Server-Sent Events.
fn a2a() -> Value {
    let version = json!({"name": "A2A-Version", "in": "header", "required": false,
        "schema": {"type": "string", "example": "1.0"},
        "description": "The A2A protocol version: 1.x. Missing or another is answered with JSON-RPC error -32009 (HTTP 200), as the specification says"});
    let mut operation = op(
        "A2A 1.0 JSON-RPC: SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask",
        "a2aJsonRpc",
        vec![version],
        json_ok(json!({"type": "object", "description": "A JSON-RPC 2.0 response: `result` or `error` (`code`, `message`)"})),
    );
    operation["responses"]["200"]["content"]["text/event-stream"] =
        json!({"schema": {"type": "string"}});
    let error = json!({"schema": {"type": "object"}});
    operation["responses"]["400"] = json!({"description": "Not a JSON-RPC request at all: the JSON-RPC error object (-32700, -32600)",
        "content": {"application/json": error}});
    operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object",
        "required": ["jsonrpc", "id", "method"],
        "properties": {"jsonrpc": {"const": "2.0"}, "id": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": i64::MIN, "maximum": u64::MAX}]}, "method": {"type": "string"}, "params": {"description": "An object; anything else is answered with JSON-RPC error -32602 (HTTP 200)"}}}}}});
    operation
}

/// `POST /v1/webhooks/{platform}`: signed by the platform, not by a token.
fn webhook(s: &mut Schemas) -> Value {
    let platform = json!({"name": "platform", "in": "path", "required": true,
        "schema": {"type": "string", "enum": ["shopify", "woocommerce"]},
        "description": "The store platform sending the delivery"});
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": false, "schema": {"type": "string"}, "description": description});
    let params = vec![
        platform,
        header("X-Shopify-Hmac-Sha256", "Shopify: base64 HMAC-SHA256 of the raw body (or X-WC-Webhook-Signature for WooCommerce)"),
        header("X-Shopify-Topic", "Shopify: the topic (or X-WC-Webhook-Topic)"),
        header("X-Shopify-Webhook-Id", "Shopify: the delivery id, the idempotency key (or X-WC-Webhook-Delivery-ID)"),
    ];
    let mut operation = public(op(
        "A store platform's signed webhook delivery, recorded as a `synced` record (202 when the topic is not mapped)",
        "receiveWebhook",
        params,
        json_ok(s.res::<super::webhooks::WebhookAnswer>()),
    ));
    operation["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    operation
}

/// The whole document.
pub fn document() -> Value {
    let mut s = Schemas {
        request: settings().for_deserialize().into_generator(),
        response: settings().for_serialize().into_generator(),
    };
    // Problems are referenced by every operation's default response.
    s.res::<Problem>();
    let mut paths = paths(&mut s);
    let schemas = s.components(&mut paths);
    let mut document = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "parley",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A coordination ledger for the AI agents that run an online store. Every request but the health checks and this document carries `Authorization: Bearer <token>` (`parley token create`, or `POST /v1/tokens` as an admin).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    });
    crate::bounds::schema::bound_integers(&mut document);
    document
}
