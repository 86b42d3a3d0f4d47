//! Store platforms' webhooks and exports, read into parley's records: the
//! shell's side of `synced` records (`crate::vocab::synced`).
//!
//! - [`signature`]: a delivery's HMAC-SHA256 over its raw body, checked in
//!   constant time before anything is parsed;
//! - [`shopify`], [`woocommerce`]: each topic's payload mapped to one
//!   platform object (or answered as not mapped);
//! - [`money`]: the platforms' decimal strings read exactly into minor units;
//! - [`catalog`]: the platforms' product CSV exports read into `catalog`
//!   records, row by row.
//!
//! Nothing here reads a clock or writes: the server and the CLI do.

pub mod catalog;
pub mod money;
pub mod shopify;
pub mod signature;
pub mod woocommerce;

pub use money::{Currency, MoneyError};

use crate::vocab::{Platform, Synced};

/// What a delivery maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// One platform object to record.
    Object(Box<Synced>),
    /// Nothing to record: the topic is not one parley maps, or the payload
    /// names nothing parley keeps (say which).
    NotMapped(String),
}

/// Why a delivery's payload cannot be mapped (the platform gets 400 or 422
/// and may retry; nothing is appended).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("the payload is not the {topic} JSON parley reads: {detail}")]
    Payload { topic: String, detail: String },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("the payload is in {got}; this ledger keeps money in {ledger}, and parley does not convert currencies")]
    Currency { got: String, ledger: String },
    #[error("`{field}` is `{text}`, not an RFC 3339 time")]
    Time { field: String, text: String },
    #[error("the mapped record is out of bounds: {0}")]
    Invalid(String),
}

/// Reads `body` as the JSON of `topic`.
pub(crate) fn payload<T: serde::de::DeserializeOwned>(
    topic: &str,
    body: &[u8],
) -> Result<T, MapError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| MapError::Payload {
        topic: topic.to_owned(),
        detail: format!("at {}: {}", e.path(), e.inner()),
    })
}

/// An RFC 3339 time (a time without an offset is read as UTC, as
/// WooCommerce's `*_gmt` fields are written) in ms since the Unix epoch.
pub(crate) fn time_ms(field: &str, text: &str) -> Result<u64, MapError> {
    let bad = || MapError::Time {
        field: field.to_owned(),
        text: text.to_owned(),
    };
    let t = text.trim();
    let has_offset = t.ends_with('Z')
        || t.ends_with('z')
        || t.get(t.len().saturating_sub(6)..)
            .is_some_and(|tail| tail.starts_with('+') || tail.starts_with('-'));
    let full = if has_offset {
        t.to_owned()
    } else {
        format!("{t}Z")
    };
    crate::time::parse_rfc3339(&full)
        .ok()
        .filter(|m| *m <= crate::bounds::TIME_MAX_MS)
        .ok_or_else(bad)
}

/// Checks the mapped record as a command would be checked.
pub(crate) fn checked(synced: Synced) -> Result<Mapped, MapError> {
    synced
        .validate()
        .map_err(|e| MapError::Invalid(e.to_string()))?;
    Ok(Mapped::Object(Box::new(synced)))
}

/// Maps one delivery of `platform`'s `topic`.
pub fn map(
    platform: Platform,
    topic: &str,
    body: &[u8],
    currency: Currency,
) -> Result<Mapped, MapError> {
    match platform {
        Platform::Shopify => shopify::map(topic, body, currency),
        Platform::Woocommerce => woocommerce::map(topic, body, currency),
    }
}

/// A category id from a platform's label: trimmed, `uncategorised` when
/// blank, control characters dropped, at most 256 characters.
pub(crate) fn category(label: &str) -> String {
    let clean: String = label
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::bounds::ID_CHARS_MAX)
        .collect();
    let t = clean.trim();
    if t.is_empty() {
        "uncategorised".into()
    } else {
        t.to_owned()
    }
}

/// Units as the platform counts them, clamped into the stock bounds (a
/// platform may count oversold stock below zero; parley's stock starts at 0).
pub(crate) fn units(n: i64) -> i64 {
    n.clamp(0, crate::bounds::COUNT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_and_without_offsets() {
        assert_eq!(time_ms("t", "1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(time_ms("t", "1970-01-01T00:00:01"), Ok(1000));
        assert_eq!(time_ms("t", "1970-01-01T01:00:01+01:00"), Ok(1000));
        assert_eq!(
            time_ms("t", "2021-12-31T19:00:00-05:00"),
            Ok(1_640_995_200_000)
        );
        assert!(time_ms("t", "yesterday").is_err());
        assert!(time_ms("t", "1969-12-31T23:59:59Z").is_err());
    }
}
