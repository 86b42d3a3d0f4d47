//! Which records a reader wants: the filters `GET /v1/records` and
//! `GET /v1/stream` share (record kind, entity, broadcast topic, producer),
//! checked when the request arrives so a typo is a 400, not an empty answer.

use super::problem::Problem;
use crate::entity::EntityRef;
use crate::record::{Body, StoredRecord};
use crate::vocab::ProblemCode;

/// The filters as they arrive in a query string (each query type names
/// them itself, so unknown parameters stay refused).
#[derive(Debug, Default)]
pub struct FilterQuery {
    /// A record kind, e.g. `decision` or `intend`.
    pub kind: Option<String>,
    /// An entity the record names, e.g. `sku:SKU-1`.
    pub entity: Option<String>,
    /// A broadcast's topic.
    pub topic: Option<String>,
    /// The producer (the identity that wrote the record).
    pub producer: Option<String>,
}

/// Checked filters.
#[derive(Debug, Default)]
pub struct RecordFilter {
    pub kind: Option<&'static str>,
    pub entity: Option<EntityRef>,
    pub topic: Option<String>,
    pub producer: Option<String>,
}

/// A filter names an identifier, as records hold them (`check_id`).
fn bounded(name: &str, v: Option<String>) -> Result<Option<String>, Problem> {
    if let Some(t) = &v {
        crate::bounds::check_id(name, t)
            .map_err(|m| Problem::bad_request(ProblemCode::BadFilter, m.to_string()))?;
    }
    Ok(v)
}

impl RecordFilter {
    /// Checks a query's filters.
    pub fn parse(q: FilterQuery) -> Result<RecordFilter, Problem> {
        let kind = match q.kind.as_deref() {
            None => None,
            Some(k) => Some(
                Body::KINDS
                    .iter()
                    .copied()
                    .find(|known| *known == k)
                    .ok_or_else(|| {
                        Problem::bad_request(
                            ProblemCode::BadFilter,
                            format!(
                                "`{k}` is not a record kind; kinds: {}",
                                Body::KINDS.join(", ")
                            ),
                        )
                    })?,
            ),
        };
        let entity = bounded("entity", q.entity)?
            .as_deref()
            .map(EntityRef::parse)
            .transpose()
            .map_err(|e| Problem::bad_request(ProblemCode::BadEntity, format!("entity: {e}")))?;
        Ok(RecordFilter {
            kind,
            entity,
            topic: bounded("topic", q.topic)?,
            producer: bounded("producer", q.producer)?,
        })
    }

    /// Whether `r` passes every filter given.
    pub fn wants(&self, r: &StoredRecord) -> bool {
        let rec = &r.record;
        let topic_ok = self
            .topic
            .as_deref()
            .is_none_or(|t| matches!(&rec.body, Body::Broadcast { topic, .. } if topic == t));
        self.kind.is_none_or(|k| rec.body.kind() == k)
            && topic_ok
            && self
                .producer
                .as_deref()
                .is_none_or(|p| rec.envelope.producer == p)
            && self
                .entity
                .as_ref()
                .is_none_or(|e| rec.index_entities().contains(e))
    }
}
