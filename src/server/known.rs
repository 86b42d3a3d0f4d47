//! Schemas of request fields whose values depend on this build: the record
//! kinds and the resolver versions it knows (for the OpenAPI document).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// A record kind's name, or none.
pub(crate) struct OptionalKind;
impl JsonSchema for OptionalKind {
    fn schema_name() -> Cow<'static, str> {
        "OptionalKind".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "null"], "enum": crate::record::Body::KINDS })
    }
}

/// A resolver version this build knows.
pub(crate) struct KnownResolver;
impl JsonSchema for KnownResolver {
    fn schema_name() -> Cow<'static, str> {
        "KnownResolver".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "enum": crate::resolver::Resolvers::released().known() })
    }
}
