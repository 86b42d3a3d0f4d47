//! MCP resources: the rule set in force, the workflow definitions and runs,
//! the shared context and the open escalations, and entity state as
//! templates (`parley://sku/{id}`, …). Each is an API read. Inside `parley
//! serve`, a session may subscribe to an entity's resource: every committed
//! batch that names the entity sends `notifications/resources/updated`.

use std::collections::BTreeMap;

use rmcp::model::{
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::Peer;
use rmcp::RoleServer;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::tools::encode;
use crate::entity::EntityRef;

const JSON: &str = "application/json";

/// The fixed resources: (uri, name, description, API path).
const FIXED: [(&str, &str, &str, &str); 4] = [
    (
        "parley://rules",
        "rules",
        "The rule set and resolver version in force",
        "/v1/rules",
    ),
    (
        "parley://workflows",
        "workflows",
        "Workflow definitions and runs with their steps",
        "/v1/workflows",
    ),
    (
        "parley://context",
        "context",
        "The whole shared context at the durable head",
        "/v1/state",
    ),
    (
        "parley://escalations",
        "escalations",
        "Escalations waiting for a person",
        "/v1/escalations?open=true",
    ),
];

/// The templates: (uri template, name, description).
const TEMPLATES: [(&str, &str, &str); 5] = [
    (
        "parley://sku/{id}",
        "sku",
        "A sku: price, cost, stock, promotions, open intentions",
    ),
    (
        "parley://order/{id}",
        "order",
        "An order and what was decided about it",
    ),
    (
        "parley://customer/{id}",
        "customer",
        "A customer: the notifications sent",
    ),
    (
        "parley://entity/{entity}",
        "entity",
        "Any entity by its `kind:id` (category:earbuds, run:sale-1, intention:42)",
    ),
    (
        "parley://escalation/{id}",
        "escalation",
        "One intention's escalations and how each was closed",
    ),
];

pub(crate) fn list() -> Vec<Resource> {
    FIXED
        .iter()
        .map(|(uri, name, description, _)| {
            Resource::new(*uri, *name)
                .with_description(*description)
                .with_mime_type(JSON)
        })
        .collect()
}

pub(crate) fn templates() -> Vec<ResourceTemplate> {
    TEMPLATES
        .iter()
        .map(|(uri, name, description)| {
            ResourceTemplate::new(*uri, *name)
                .with_description(*description)
                .with_mime_type(JSON)
        })
        .collect()
}

/// A resource URI or subscription parley cannot serve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResourceError {
    #[error("`{0}` is not a parley:// resource")]
    NotParley(String),
    #[error("`{0}` names no entity")]
    NoEntity(String),
    #[error("`{uri}`: {error}")]
    BadEntity {
        uri: String,
        error: crate::entity::EntityError,
    },
    #[error("`{0}`: an escalation's id is a seq")]
    EscalationId(String),
    #[error("{0}; resources are {fixed} and the templates {templates}", fixed = fixed_uris(), templates = template_uris())]
    Unknown(Box<ResourceError>),
    #[error("a session follows at most {SUBSCRIPTIONS_MAX} resources")]
    TooManySubscriptions,
    #[error("this ledger does not publish a feed")]
    NoFeed,
}

/// The entity a resource URI names (for entity templates).
pub(crate) fn entity_of(uri: &str) -> Result<EntityRef, ResourceError> {
    let rest = uri
        .strip_prefix("parley://")
        .ok_or_else(|| ResourceError::NotParley(uri.to_owned()))?;
    let no_entity = || ResourceError::NoEntity(uri.to_owned());
    let (kind, id) = rest.split_once('/').ok_or_else(no_entity)?;
    let text = match kind {
        "sku" | "order" | "customer" => format!("{kind}:{id}"),
        "entity" => id.to_owned(),
        _ => return Err(no_entity()),
    };
    EntityRef::parse(&text).map_err(|error| ResourceError::BadEntity {
        uri: uri.to_owned(),
        error,
    })
}

/// The API path that reads `uri`.
pub(crate) fn api_path(uri: &str) -> Result<String, ResourceError> {
    if let Some((_, _, _, path)) = FIXED.iter().find(|f| f.0 == uri) {
        return Ok((*path).to_owned());
    }
    if let Some(id) = uri.strip_prefix("parley://escalation/") {
        let id: u64 = id
            .parse()
            .map_err(|_| ResourceError::EscalationId(uri.to_owned()))?;
        return Ok(format!("/v1/escalations/{id}"));
    }
    let entity = entity_of(uri).map_err(|e| ResourceError::Unknown(Box::new(e)))?;
    Ok(format!("/v1/entities/{}", encode(&entity.to_string())))
}

fn fixed_uris() -> String {
    FIXED.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
}

fn template_uris() -> String {
    TEMPLATES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
}

/// A read's answer as resource contents (JSON text).
pub(crate) fn contents(uri: &str, body: &Value) -> ReadResourceResult {
    let text = serde_json::to_string_pretty(body).unwrap_or_default();
    let mut c = ResourceContents::text(text, uri);
    if let ResourceContents::TextResourceContents { mime_type, .. } = &mut c {
        *mime_type = Some(JSON.to_owned());
    }
    ReadResourceResult::new(vec![c])
}

/// The most resources one session may follow.
const SUBSCRIPTIONS_MAX: usize = 64;

/// A session's subscriptions: one task each, following the ledger's feed.
#[derive(Default)]
pub(crate) struct Subscriptions {
    tasks: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

impl Subscriptions {
    pub(crate) fn add(
        &mut self,
        app: &crate::server::App,
        uri: String,
        entity: EntityRef,
        peer: Peer<RoleServer>,
    ) -> Result<(), ResourceError> {
        if self.tasks.contains_key(&uri) {
            return Ok(());
        }
        if self.tasks.len() >= SUBSCRIPTIONS_MAX {
            return Err(ResourceError::TooManySubscriptions);
        }
        let mut rx = app.ledger.subscribe().ok_or(ResourceError::NoFeed)?;
        let mut closing = app.closing.clone();
        let watched = uri.clone();
        let task = tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    b = rx.recv() => b,
                    _ = closing.wait_for(|c| *c) => return,
                };
                let changed = match batch {
                    Ok(b) => b
                        .records
                        .iter()
                        .any(|r| r.record.index_entities().contains(&entity)),
                    // Missed batches may have touched it.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                };
                if changed {
                    let note = ResourceUpdatedNotificationParam::new(watched.clone());
                    if peer.notify_resource_updated(note).await.is_err() {
                        return; // the session is gone
                    }
                }
            }
        });
        self.tasks.insert(uri, task);
        Ok(())
    }

    pub(crate) fn remove(&mut self, uri: &str) {
        if let Some(t) = self.tasks.remove(uri) {
            t.abort();
        }
    }
}
