//! `GET /.well-known/agent-card.json`: parley as the store's coordination
//! agent, in A2A 1.0's shape. Public, like the OpenAPI document.

use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::rpc::PROTOCOL_VERSION;

/// The base URL clients reached this server at (the `Host` header; `https`
/// behind a proxy that says `X-Forwarded-Proto: https`).
fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host")
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ', '"', '\\']))
        .unwrap_or("127.0.0.1:7420");
    let scheme = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

fn skill(id: &str, name: &str, description: &str, example: Value) -> Value {
    json!({
        "id": id, "name": name, "description": description,
        "tags": ["commerce", "coordination"],
        "examples": [example.to_string()],
        "inputModes": ["application/json"],
        "outputModes": ["application/json", "text/plain"],
    })
}

pub(super) async fn agent_card(headers: HeaderMap) -> Json<Value> {
    let url = format!("{}/a2a", base_url(&headers));
    let intend = json!({"kind": "intend", "intention": {"action": {"type": "set_price", "sku": "E2", "price_minor": 5399},
        "reasoning": "match a rival's cut", "impact": {"revenue_minor": -4800, "margin_minor": -4800}, "objective": "sales-growth"}});
    let fact = json!({"kind": "fact", "entity": "sku:E2", "attribute": "rating_x10", "value": 42});
    let broadcast =
        json!({"kind": "broadcast", "topic": "weekend_planning", "entity": "category:earbuds"});
    Json(json!({
        "name": "parley",
        "description": "The store's coordination ledger: announce an intention before acting and get parley's decision (approved, deferred, rejected, or waiting for a person); publish facts and broadcasts the other agents see. A message carries one data part holding one command, the JSON of parley's POST /v1/commands (the producer defaults to the token's identity).",
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}],
        "provider": {"organization": "parley", "url": base_url(&headers)},
        "documentationUrl": format!("{}/v1/openapi.json", base_url(&headers)),
        "capabilities": {"streaming": true, "pushNotifications": false, "extendedAgentCard": false},
        "securitySchemes": {"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "parley token",
            "description": "A parley token (`parley token create`, or POST /v1/tokens by an admin): the same tokens, roles and quotas as the HTTP API"}}},
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json", "text/plain"],
        "skills": [
            skill("announce-intention", "Announce an intention", "Before acting, announce what you intend (a price, a promotion, a reorder, …); the task completes with the approved action as an artifact, is rejected with the rule and reason, keeps working while deferred, or waits for input while a person decides.", intend),
            skill("publish-fact", "Publish a fact", "Write a fact every agent's decisions can read; the task completes naming its seq.", fact),
            skill("broadcast", "Broadcast an event", "Tell every agent something happened; the task completes naming its seq.", broadcast),
            skill("explain-decision", "Explain a decision", "GetTask returns the decision with its trace (every rule step and the values it read, with their seqs); GET /v1/decisions/{seq} says it in sentences.", json!({"method": "GetTask", "params": {"id": "intention-42"}})),
            skill("audit-field", "Audit a field", "Every change of an entity's field with the decisions behind it: GET /v1/entities/{entity}/audit on the HTTP API.", json!({"entity": "sku:E2", "field": "price_minor"})),
        ],
    }))
}
