//! Schemas that state a bound the server checks, for fields whose Rust
//! type is wider (`#[schemars(with = "…")]`): the published documents say
//! every range and shape a command or request must have, so a request they
//! allow is never refused as malformed. Pure data.
use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::{
    COUNT_MAX, DAYS_MAX, ID_CHARS_MAX, IMPACT_MAX_MINOR, INCREASE_MAX_BP, MAP_ENTRIES_MAX,
    MONEY_MAX_MINOR, SKUS_MAX, TEXT_MAX_CHARS, TIME_MAX_MS,
};

/// An identifier: 1 to 256 characters, no control characters, no white
/// space at either end (`super::check_id`).
pub const ID_PATTERN: &str = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f](?:[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f])?$";

macro_rules! bound {
    ($(#[$m:meta])* $name:ident => $schema:tt) => {
        $(#[$m])*
        pub struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// An entity as `kind:id`: a typed kind needs an identifier after it,
/// an intention a seq; anything else is a generic entity's identifier.
pub fn entity_pattern() -> String {
    format!(
        "^(?!(?:sku|category|order|customer|campaign|agent|human|run):(?:$|\\s))(?!intention:(?![1-9][0-9]{{0,18}}$)){}",
        &ID_PATTERN[1..]
    )
}

bound!(Id => {
    "type": "string", "minLength": 1, "maxLength": ID_CHARS_MAX, "pattern": ID_PATTERN
});
bound!(
    /// Who writes a command: an identifier that is not `parley`.
    Producer => {
        "type": "string", "minLength": 1, "maxLength": ID_CHARS_MAX,
        "pattern": format!("^(?!parley$){}", &ID_PATTERN[1..])
    }
);
bound!(Money => { "type": "integer", "minimum": 0, "maximum": MONEY_MAX_MINOR });
bound!(SignedMoney => { "type": "integer", "minimum": -MONEY_MAX_MINOR, "maximum": MONEY_MAX_MINOR });
bound!(Price => { "type": "integer", "minimum": 1, "maximum": MONEY_MAX_MINOR });
bound!(Impact => { "type": "integer", "minimum": -IMPACT_MAX_MINOR, "maximum": IMPACT_MAX_MINOR });
bound!(Stock => { "type": "integer", "minimum": 0, "maximum": COUNT_MAX });
bound!(Quantity => { "type": "integer", "minimum": 1, "maximum": COUNT_MAX });
bound!(DiscountBp => { "type": "integer", "minimum": 1, "maximum": 10_000 });
bound!(IncreaseBp => { "type": "integer", "minimum": 0, "maximum": INCREASE_MAX_BP });
bound!(Days => { "type": "integer", "minimum": 0, "maximum": DAYS_MAX });
bound!(TimeMs => { "type": "integer", "minimum": 0, "maximum": TIME_MAX_MS });
bound!(OptionalTimeMs => { "type": ["integer", "null"], "minimum": 0, "maximum": TIME_MAX_MS });
bound!(Seq => { "type": "integer", "minimum": 1, "maximum": u64::MAX });
bound!(OptionalSeq => { "type": ["integer", "null"], "minimum": 1, "maximum": u64::MAX });
bound!(Text => { "type": "string", "maxLength": TEXT_MAX_CHARS });
bound!(
    /// Free text that must say something.
    Said => { "type": "string", "minLength": 1, "maxLength": TEXT_MAX_CHARS, "pattern": "\\S" }
);
bound!(OptionalId => {
    "type": ["string", "null"], "minLength": 1, "maxLength": ID_CHARS_MAX, "pattern": ID_PATTERN
});

bound!(
    /// A UTC date (`2025-11-26`) or an RFC 3339 time.
    DayOrTime => {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"}
        ]
    }
);
bound!(Version => { "type": "integer", "minimum": 1, "maximum": u32::MAX });
bound!(
    /// At most 64 entries, each named by an identifier.
    ValueMap => {
        "type": "object",
        "maxProperties": MAP_ENTRIES_MAX,
        "propertyNames": { "minLength": 1, "maxLength": ID_CHARS_MAX, "pattern": ID_PATTERN },
        "additionalProperties": {
            "type": ["null", "boolean", "integer", "string"],
            "minimum": i64::MIN, "maximum": i64::MAX
        }
    }
);
bound!(Skus => {
    "type": "array", "minItems": 1, "maxItems": SKUS_MAX, "uniqueItems": true,
    "items": { "type": "string", "minLength": 1, "maxLength": ID_CHARS_MAX, "pattern": ID_PATTERN }
});

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
