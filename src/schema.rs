//! The public JSON formats as JSON Schema, generated from the Rust types.
//! `schemas/` holds the committed copies; `tests/schemas.rs` fails on drift.

use crate::bounds::schema::bound_integers;
use crate::command::CommandLine;
use crate::export::ExportedRecord;

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
        (
            "scorecard.schema.json",
            pretty(schemars::schema_for!(crate::scorecard::Report)),
        ),
        (
            "suggest.schema.json",
            pretty(schemars::schema_for!(
                crate::scorecard::suggest::SuggestReport
            )),
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
