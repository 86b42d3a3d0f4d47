//! The public JSON formats as JSON Schema, generated from the Rust types.
//! `schemas/` holds the committed copies; `tests/schemas.rs` fails on drift.

use crate::command::CommandLine;
use crate::export::ExportedRecord;

/// States the range of every sized integer (`format: uint32`, `int64`, …)
/// as `minimum` and `maximum`: a format is only an annotation to JSON
/// Schema validators and generators, so without them a schema-valid value
/// (a `u32` field given 2^40) is one parley refuses.
pub fn bound_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let range: Option<(i128, i128)> = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0, u8::MAX.into())),
                Some("uint16") => Some((0, u16::MAX.into())),
                Some("uint32") => Some((0, u32::MAX.into())),
                Some("uint64" | "uint") => Some((0, u64::MAX.into())),
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64" | "int") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((low, high)) = range {
                let number = |n: i128| {
                    u64::try_from(n)
                        .map(Value::from)
                        .unwrap_or_else(|_| i64::try_from(n).map_or(Value::Null, Value::from))
                };
                map.entry("minimum").or_insert_with(|| number(low));
                map.entry("maximum").or_insert_with(|| number(high));
            }
            for child in map.values_mut() {
                bound_integers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// (file name, schema text) for every published format.
pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |mut s: schemars::Schema| {
        // In place, so the schema keeps its own order of keys when printed.
        if let Some(object) = s.as_object_mut() {
            object.values_mut().for_each(bound_integers);
        }
        // A Schema is a JSON value; pretty-printing it cannot fail.
        let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        (
            "command.schema.json",
            pretty(schemars::schema_for!(CommandLine)),
        ),
        (
            "export-record.schema.json",
            pretty(schemars::schema_for!(ExportedRecord)),
        ),
        (
            "rules.schema.json",
            pretty(schemars::schema_for!(crate::rules::RuleSet)),
        ),
        (
            "workflow.schema.json",
            pretty(schemars::schema_for!(crate::workflow::Definition)),
        ),
        (
            "state.schema.json",
            pretty(schemars::schema_for!(crate::context::view::StateView)),
        ),
        (
            "entity.schema.json",
            pretty(schemars::schema_for!(crate::context::view::EntityView)),
        ),
        (
            "answer.schema.json",
            pretty(schemars::schema_for!(crate::answer::CommandAnswer)),
        ),
        ("openapi.json", {
            // A JSON value; pretty-printing it cannot fail.
            let mut text = serde_json::to_string_pretty(&crate::server::openapi::document())
                .unwrap_or_default();
            text.push('\n');
            text
        }),
    ]
}
