//! The public command format: one JSON object per line, as read by `parley run`.
//!
//! A command is a flat object: the envelope fields below plus a `kind` and that
//! kind's fields. Unknown fields are refused, naming the field.
//! `schemas/command.schema.json` is generated from these types (`parley schema`),
//! and a test fails when the committed file drifts from the code.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::{check_id, Body};

/// Longest command line `parley run` accepts, in bytes.
pub const MAX_COMMAND_BYTES: usize = 2 << 20;
/// The producer id parley uses for the records it writes itself.
pub const SYSTEM_PRODUCER: &str = "parley";

/// Envelope fields a command may set. The sequencer assigns seq and hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandEnvelope {
    /// The agent or human sending the command.
    pub producer: String,
    /// Time of the command in ms since the Unix epoch, for scripted and simulated
    /// runs. Must not be earlier than the ledger's last record. Omitted: wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// Retrying a command with the same (producer, key) appends nothing and
    /// returns the original seq, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Seq of the record that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation: Option<u64>,
    /// Grouping id, e.g. a workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

const ENVELOPE_KEYS: [&str; 5] = [
    "producer",
    "at_ms",
    "idempotency_key",
    "causation",
    "correlation",
];

/// A parsed, validated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub envelope: CommandEnvelope,
    /// Any record kind except those parley writes itself (genesis, decision, clock).
    pub body: Body,
}

/// The shape of one command line, for the JSON Schema only.
#[derive(Serialize, JsonSchema)]
pub struct CommandLine {
    #[serde(flatten)]
    pub envelope: CommandEnvelope,
    #[serde(flatten)]
    pub body: Body,
}

/// Why a line is not a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("command is {0} bytes; the limit is {MAX_COMMAND_BYTES}")]
    TooLong(usize),
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
}

impl Command {
    /// Parses and validates one JSON command.
    pub fn parse(text: &str) -> Result<Command, CommandError> {
        if text.len() > MAX_COMMAND_BYTES {
            return Err(CommandError::TooLong(text.len()));
        }
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| CommandError::NotJson(e.to_string()))?;
        let mut envelope_fields = serde_json::Map::new();
        for key in ENVELOPE_KEYS {
            if let Some(v) = fields.remove(key) {
                envelope_fields.insert(key.to_owned(), v);
            }
        }
        if !fields.contains_key("kind") {
            return Err(CommandError::Invalid(
                "missing field `kind` (e.g. `fact`, `broadcast`, `catalog`, `intend`; see schemas/command.schema.json)".into(),
            ));
        }
        let envelope: CommandEnvelope =
            serde_json::from_value(serde_json::Value::Object(envelope_fields))
                .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let body: Body = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let command = Command { envelope, body };
        command.validate().map_err(CommandError::Invalid)?;
        Ok(command)
    }

    /// The JSON line for this command (the inverse of [`Command::parse`]).
    pub fn to_json(&self) -> String {
        let line = CommandLine {
            envelope: self.envelope.clone(),
            body: self.body.clone(),
        };
        // Serializing plain structs of strings, integers and maps cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Checks identifiers and reserved names.
    pub fn validate(&self) -> Result<(), String> {
        let env = &self.envelope;
        check_id("producer", &env.producer)?;
        if env.producer == SYSTEM_PRODUCER {
            return Err(format!(
                "producer `{SYSTEM_PRODUCER}` is reserved for parley itself"
            ));
        }
        if let Some(key) = &env.idempotency_key {
            check_id("idempotency_key", key)?;
        }
        if let Some(c) = &env.correlation {
            check_id("correlation", c)?;
        }
        if env.causation == Some(0) {
            return Err("`causation` is a seq and seqs start at 1".into());
        }
        if self.body.is_system() {
            return Err(format!(
                "kind `{}` is written by parley itself, not by producers",
                self.body.kind()
            ));
        }
        self.body
            .ids()
            .into_iter()
            .try_for_each(|(field, value)| check_id(field, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_fact_and_round_trips() {
        let text = r#"{"producer":"inventory","at_ms":5,"kind":"fact","entity":"sku:SKU-1","attribute":"stock","value":50}"#;
        let cmd = Command::parse(text).unwrap();
        assert_eq!(cmd.envelope.at_ms, Some(5));
        assert_eq!(Command::parse(&cmd.to_json()).unwrap(), cmd);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (
                r#"{"producer":"a","kind":"fact","entity":"e","attribute":"x","valu":1}"#,
                "valu",
            ),
            (r#"{"producer":"a","kind":"fax"}"#, "fax"),
            (r#"{"producer":"a","entity":"e"}"#, "kind"),
            (
                r#"{"kind":"fact","entity":"e","attribute":"x","value":1}"#,
                "producer",
            ),
            (
                r#"{"producer":"","kind":"fact","entity":"e","attribute":"x","value":1}"#,
                "producer",
            ),
            (
                r#"{"producer":"parley","kind":"fact","entity":"e","attribute":"x","value":1}"#,
                "reserved",
            ),
            (
                r#"{"producer":"a","kind":"fact","entity":"e","attribute":"x","value":1.5}"#,
                "minor units",
            ),
            (r#"[1,2]"#, "JSON object"),
            (
                r#"{"producer":"a","at_ms":-1,"kind":"fact","entity":"e","attribute":"x","value":1}"#,
                "-1",
            ),
        ];
        for (text, needle) in cases {
            let err = Command::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
