//! The public command format: one JSON object per line, as read by `parley run`
//! and posted to `parley serve`.
//!
//! A command is a flat object: the envelope fields below plus a `kind` and that
//! kind's fields. Parsing is strict and every error names the field: unknown
//! fields, repeated keys, numbers that are not 64-bit integers, kinds parley
//! writes itself, identifiers with control characters or surrounding white
//! space, and amounts outside their documented range (`crate::bounds`).
//! `schemas/command.schema.json` is generated from these types (`parley
//! schema`), and a test fails when the committed file drifts from the code.

use schemars::JsonSchema;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::bounds::{self, OutOfRange};
use crate::bounds::{check_id, IdError, MAP_ENTRIES_MAX};
use crate::entity::typed_field;
use crate::record::Body;

/// Longest command line `parley run` accepts, in bytes.
pub const COMMAND_BYTES_MAX: usize = 2 << 20;
/// The producer id parley uses for the records it writes itself.
pub const SYSTEM_PRODUCER: &str = "parley";

/// Envelope fields a command may set. The sequencer assigns seq and hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandEnvelope {
    /// The agent or human sending the command.
    #[schemars(with = "crate::bounds::schema::Producer")]
    pub producer: String,
    /// Time of the command in ms since the Unix epoch. Required on a scripted
    /// ledger; on a wall-clock ledger it may not be ahead of the clock. Never
    /// earlier than the ledger's last record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::bounds::schema::OptionalTimeMs")]
    pub at_ms: Option<u64>,
    /// Retrying a command with the same (producer, key) appends nothing and
    /// returns the original result, also after a restart; the same key with
    /// different content is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub idempotency_key: Option<String>,
    /// Seq of the record that caused this one (it must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::bounds::schema::OptionalSeq")]
    pub causation: Option<u64>,
    /// Grouping id, e.g. a workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
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
    /// Any record kind except those parley writes itself.
    pub body: Body,
}

/// The shape of one command line, for the JSON Schema only: the kinds a
/// producer may send (parley's own, like `decision`, are left out).
#[derive(Serialize, JsonSchema)]
#[schemars(transform = producer_kinds_only)]
pub struct CommandLine {
    #[serde(flatten)]
    pub envelope: CommandEnvelope,
    #[serde(flatten)]
    pub body: Body,
}

/// Makes a command schema say exactly what the parser takes: one closed
/// object per kind a producer may send (the envelope's fields merged into
/// each, no other property), without the kinds parley writes itself.
fn producer_kinds_only(schema: &mut schemars::Schema) {
    let envelope = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    let required: Vec<serde_json::Value> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let Some(variants) = schema.get_mut("oneOf").and_then(|v| v.as_array_mut()) else {
        return;
    };
    let allowed = producer_kinds();
    variants.retain(|v| {
        v.pointer("/properties/kind/const")
            .and_then(|k| k.as_str())
            .is_none_or(|k| allowed.contains(&k))
    });
    for v in variants.iter_mut() {
        if let Some(props) = v.get_mut("properties").and_then(|p| p.as_object_mut()) {
            for (k, s) in &envelope {
                props.entry(k.clone()).or_insert_with(|| s.clone());
            }
        }
        if let Some(req) = v.get_mut("required").and_then(|r| r.as_array_mut()) {
            req.extend(required.iter().cloned());
        }
        v["additionalProperties"] = serde_json::Value::Bool(false);
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("properties");
        obj.remove("required");
    }
}

/// Why a line is not a command.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("the command is longer than {COMMAND_BYTES_MAX} bytes (at least {0} bytes)")]
    TooLong(usize),
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("a command is a JSON object, not {0}")]
    NotObject(&'static str),
    #[error("missing field `kind` (e.g. `fact`, `broadcast`, `catalog`, `intend`; see schemas/command.schema.json)")]
    MissingKind,
    #[error("unknown kind `{0}`; kinds: {kinds}", kinds = producer_kinds().join(", "))]
    UnknownKind(String),
    #[error("kind `{0}` is written by parley itself, not by producers")]
    SystemKind(String),
    #[error("{0}")]
    Invalid(String),
    /// Fields that each match the schema but not each other (a promotion
    /// ending before it starts, a generic fact under a typed field's name).
    #[error("{0}")]
    Inconsistent(String),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error(transparent)]
    Id(#[from] IdError),
}

/// The kinds a producer may send.
pub fn producer_kinds() -> Vec<&'static str> {
    Body::KINDS
        .iter()
        .copied()
        .filter(|k| !Body::is_system_kind(k))
        .collect()
}

/// serde_json ends messages with " at line 1 column N"; a command is one
/// line, so only the column says anything.
fn tidy(message: &str) -> String {
    match message.rsplit_once(" at line ") {
        Some((head, tail)) => match tail.split_once(" column ") {
            Some((_, col)) => format!("{head} (column {col})"),
            None => message.to_owned(),
        },
        None => message.to_owned(),
    }
}

/// A command that passed [`Command::validate`]: what the ledger's queue
/// takes without checking it again (a server request is parsed and checked
/// once).
#[derive(Clone, Debug, PartialEq)]
pub struct Checked(Command);

impl Checked {
    pub fn new(command: Command) -> Result<Checked, CommandError> {
        command.validate()?;
        Ok(Checked(command))
    }

    pub fn command(&self) -> &Command {
        &self.0
    }

    pub fn into_inner(self) -> Command {
        self.0
    }
}

impl Command {
    /// Parses and validates one JSON command.
    pub fn parse(text: &str) -> Result<Command, CommandError> {
        Command::parse_checked(text).map(Checked::into_inner)
    }

    /// Parses one JSON command (one strict parse) and validates it (once).
    pub fn parse_checked(text: &str) -> Result<Checked, CommandError> {
        if text.len() > COMMAND_BYTES_MAX {
            return Err(CommandError::TooLong(text.len()));
        }
        let value = strict_parse(text)?;
        let command = Command::from_value_unchecked(value)?;
        Checked::new(command)
    }

    /// Validates a command already read as JSON (the HTTP layer's form).
    pub fn from_value(value: serde_json::Value) -> Result<Command, CommandError> {
        let command = Command::from_value_unchecked(value)?;
        Checked::new(command).map(Checked::into_inner)
    }

    /// The command a JSON value states, its fields checked against the
    /// schema but its values not yet validated.
    fn from_value_unchecked(value: serde_json::Value) -> Result<Command, CommandError> {
        let mut fields = match value {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Array(_) => return Err(CommandError::NotObject("a list")),
            serde_json::Value::String(_) => return Err(CommandError::NotObject("a string")),
            serde_json::Value::Number(_) => return Err(CommandError::NotObject("a number")),
            serde_json::Value::Bool(_) => return Err(CommandError::NotObject("a boolean")),
            serde_json::Value::Null => return Err(CommandError::NotObject("null")),
        };
        let mut envelope_fields = serde_json::Map::new();
        for key in ENVELOPE_KEYS {
            if let Some(v) = fields.remove(key) {
                envelope_fields.insert(key.to_owned(), v);
            }
        }
        let kind = match fields.get("kind") {
            None => return Err(CommandError::MissingKind),
            Some(serde_json::Value::String(k)) => k.clone(),
            Some(_) => return Err(CommandError::Invalid("`kind` must be a string".into())),
        };
        if !Body::KINDS.contains(&kind.as_str()) {
            return Err(CommandError::UnknownKind(kind));
        }
        if !producer_kinds().contains(&kind.as_str()) {
            return Err(CommandError::SystemKind(kind));
        }
        let envelope: CommandEnvelope = from_json(serde_json::Value::Object(envelope_fields))?;
        // serde ignores extra fields next to the tag of a unit variant
        // (`clock`): refuse them as for every other kind.
        if kind == Body::Clock.kind() {
            if let Some(extra) = fields.keys().find(|k| k.as_str() != "kind") {
                return Err(CommandError::Invalid(format!(
                    "unknown field `{extra}`: `clock` has no fields"
                )));
            }
        }
        let body: Body = from_json(serde_json::Value::Object(fields))?;
        Ok(Command { envelope, body })
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

    /// Checks identifiers, reserved names and every amount's range.
    pub fn validate(&self) -> Result<(), CommandError> {
        let env = &self.envelope;
        let invalid = CommandError::Invalid;
        check_id("producer", &env.producer)?;
        if env.producer == SYSTEM_PRODUCER {
            return Err(invalid(format!(
                "producer `{SYSTEM_PRODUCER}` is reserved for parley itself"
            )));
        }
        if let Some(key) = &env.idempotency_key {
            check_id("idempotency_key", key)?;
        }
        if let Some(c) = &env.correlation {
            check_id("correlation", c)?;
        }
        if let Some(t) = env.at_ms {
            bounds::time_ms("at_ms", t)?;
        }
        if env.causation == Some(0) {
            return Err(invalid("`causation` is a seq and seqs start at 1".into()));
        }
        if self.body.is_system() {
            return Err(CommandError::SystemKind(self.body.kind().into()));
        }
        for (field, value) in self.body.ids() {
            check_id(field, value)?;
        }
        validate_body(&self.body)
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CommandError> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = tidy(&e.into_inner().to_string());
        if path.is_empty() || path == "." {
            // Inside an internally tagged enum serde loses the path; a bad
            // integer can still be found where it stands.
            path = integer_in(&inner)
                .and_then(|n| path_of_number(&v, n, ""))
                .unwrap_or_default();
        }
        if path.is_empty() {
            CommandError::Invalid(inner)
        } else {
            CommandError::Invalid(format!("`{path}`: {inner}"))
        }
    })
}

/// The integer an "invalid value: integer `N`" message names.
fn integer_in(message: &str) -> Option<i128> {
    let rest = message.split("integer `").nth(1)?;
    rest.split('`').next()?.parse().ok()
}

/// Where the number `n` stands in `v`, as a dotted path.
fn path_of_number(v: &serde_json::Value, n: i128, at: &str) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        serde_json::Value::Number(x) => {
            let here = x.as_i64().map(i128::from).or(x.as_u64().map(i128::from));
            (here == Some(n)).then(|| at.to_owned())
        }
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| path_of_number(x, n, &join(k))),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| path_of_number(x, n, &join(&i.to_string()))),
        _ => None,
    }
}

/// A map field holds at most `MAP_ENTRIES_MAX` entries.
fn entries(field: &str, n: usize) -> Result<(), bounds::OutOfRange> {
    bounds::check(field, n as u64, 0u64, MAP_ENTRIES_MAX as u64, " entries")
}

/// The ranges of each kind's amounts and texts.
fn validate_body(body: &Body) -> Result<(), CommandError> {
    let invalid = CommandError::Invalid;
    match body {
        Body::Catalog {
            cost_minor,
            price_minor,
            stock,
            ..
        } => {
            bounds::money("cost_minor", *cost_minor)?;
            bounds::money("price_minor", *price_minor)?;
            bounds::check(
                "price_minor",
                *price_minor,
                1,
                bounds::MONEY_MAX_MINOR,
                " minor units",
            )?;
            bounds::stock("stock", *stock)?;
        }
        Body::StockChanged { stock, .. } => bounds::stock("stock", *stock)?,
        Body::CompetitorPrice { price_minor, .. } => bounds::money("price_minor", *price_minor)?,
        Body::SupplierDelay { skus, days, .. } => {
            bounds::count("skus", skus.len(), bounds::SKUS_MAX)?;
            bounds::days("days", *days)?;
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = skus.iter().find(|s| !seen.insert(*s)) {
                return Err(invalid(format!("`skus` names sku `{dup}` twice")));
            }
        }
        Body::TrafficSpike { increase_bp, .. } => bounds::increase_bp("increase_bp", *increase_bp)?,
        Body::OrderPlaced { total_minor, .. } => bounds::money("total_minor", *total_minor)?,
        Body::OrderDelayed { days, .. } => bounds::days("days", *days)?,
        Body::OrderFlagged { reason, .. } => bounds::text("reason", reason)?,
        Body::Intend { intention } => intention.validate().map_err(|e| match e {
            crate::vocab::Invalid::Field(m) => CommandError::Invalid(m),
            crate::vocab::Invalid::Inconsistent(m) => CommandError::Inconsistent(m),
            crate::vocab::Invalid::Id(e) => CommandError::Id(e),
        })?,
        Body::Fact {
            entity, attribute, ..
        } => {
            if let Some(kind) = typed_field(entity, attribute) {
                return Err(CommandError::Inconsistent(format!(
                    "`attribute`: `{attribute}` of {entity} is written by `{kind}`, not by a generic fact"
                )));
            }
        }
        Body::Synced { synced } => synced.validate().map_err(|e| match e {
            crate::vocab::Invalid::Field(m) => CommandError::Invalid(m),
            crate::vocab::Invalid::Inconsistent(m) => CommandError::Inconsistent(m),
            crate::vocab::Invalid::Id(e) => CommandError::Id(e),
        })?,
        Body::Outcome { outcome } => outcome.validate().map_err(|e| match e {
            crate::vocab::Invalid::Field(m) => CommandError::Invalid(m),
            crate::vocab::Invalid::Inconsistent(m) => CommandError::Inconsistent(m),
            crate::vocab::Invalid::Id(e) => CommandError::Id(e),
        })?,
        Body::Broadcast { detail, .. } => entries("detail", detail.len())?,
        Body::WorkflowStarted { params, .. } => entries("params", params.len())?,
        Body::HumanResolution { rationale, .. } => {
            bounds::text("rationale", rationale)?;
            if rationale.trim().is_empty() {
                return Err(invalid(
                    "`rationale` must say why: a human resolution is an audit record".into(),
                ));
            }
        }
        Body::StepCompleted { note, .. } => bounds::text("note", note)?,
        Body::StepFailed { reason, .. } => bounds::text("reason", reason)?,
        Body::ResolverAdopted { version } if *version == 0 => {
            return Err(invalid("`version`: resolver versions start at 1".into()));
        }
        _ => {}
    }
    Ok(())
}

/// Parses JSON text into a value, refusing repeated keys and numbers that are
/// not 64-bit integers, and naming where each problem stands.
pub fn strict_parse(text: &str) -> Result<serde_json::Value, CommandError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict {
        path: String::new(),
    }
    .deserialize(&mut de)
    .map_err(|e| CommandError::NotJson(tidy(&e.to_string())))?;
    de.end()
        .map_err(|e| CommandError::NotJson(tidy(&e.to_string())))?;
    Ok(value)
}

/// The largest magnitude up to which every integer is exactly an `f64`.
const EXACT_INTEGER_MAX: f64 = 9_007_199_254_740_992.0;

/// A seed that builds a `serde_json::Value` strictly, knowing its path.
struct Strict {
    path: String,
}

impl Strict {
    fn at(&self) -> String {
        if self.path.is_empty() {
            "the command".into()
        } else {
            format!("`{}`", self.path)
        }
    }
    fn child(&self, key: &str) -> Strict {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Strict { path }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON Schema counts 2.0 and 2e3 as integers: so does the parser,
        // where the number is exactly that integer (within ±2^53, every
        // integer is exact). Any other fraction is refused.
        if v.fract() == 0.0 && v.abs() <= EXACT_INTEGER_MAX {
            // Within ±2^53 the conversion is exact.
            #[allow(clippy::cast_possible_truncation)]
            return Ok((v as i64).into());
        }
        Err(E::custom(format!(
            "{}: numbers are 64-bit integers (money in minor units, rates in basis points); a fraction, or a value written with a fraction or an exponent beyond ±2^53, is refused",
            self.at()
        )))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child(&out.len().to_string()))? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "{}: key `{key}` appears twice",
                    self.at()
                )));
            }
            let v = map.next_value_seed(self.child(&key))?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

#[cfg(test)]
mod tests;
