//! RFC 3339 timestamps ↔ ms since the Unix epoch, UTC, through the `time`
//! crate (which knows which dates exist and never slices text at byte offsets).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `2025-11-26T09:00:00.000Z` for ms since the epoch (times past year 9999,
/// which no command may carry, are shown as a number of ms).
pub(crate) fn format_rfc3339(ms: u64) -> String {
    let Some(t) = i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        .filter(|t| t.year() <= 9999)
    else {
        return format!("{ms} ms after the epoch");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `2025-11-26`: the UTC day of ms since the epoch.
pub(crate) fn day_text(ms: u64) -> String {
    let t = format_rfc3339(ms);
    t.get(..10)
        .filter(|_| t.ends_with('Z'))
        .unwrap_or(&t)
        .to_owned()
}

/// Parses an RFC 3339 time (`2025-11-26T09:00:00Z`, `…+01:00`, fractions)
/// into ms since the epoch; sub-millisecond digits are truncated.
pub(crate) fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    let ms = parse_ms(text)?;
    u64::try_from(ms).map_err(|_| TimeError::BeforeEpoch(text.to_owned()))
}

/// A UTC date (`2025-11-26`, its midnight) or an RFC 3339 time; before
/// 1970 is 0 (before every record).
pub(crate) fn parse_day_or_time(text: &str) -> Result<u64, TimeError> {
    let is_date = text.len() == 10 && text.bytes().filter(|b| *b == b'-').count() == 2;
    if is_date {
        parse_rfc3339_from_epoch(&format!("{text}T00:00:00Z"))
    } else {
        parse_rfc3339_from_epoch(text)
    }
}

/// As [`parse_rfc3339`], but a time before 1970 is 0 (before every record).
pub(crate) fn parse_rfc3339_from_epoch(text: &str) -> Result<u64, TimeError> {
    let ms = parse_ms(text)?;
    Ok(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

/// A time that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TimeError {
    #[error("`{text}` is not an RFC 3339 time like 2025-11-26T09:00:00Z ({why})")]
    NotRfc3339 { text: String, why: String },
    #[error("`{0}` is before 1970")]
    BeforeEpoch(String),
}

/// Milliseconds since the epoch (negative before 1970).
fn parse_ms(text: &str) -> Result<i128, TimeError> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| TimeError::NotRfc3339 {
        text: text.to_owned(),
        why: e.to_string(),
    })?;
    Ok(t.unix_timestamp_nanos().div_euclid(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        let ms = 1_764_147_600_123;
        assert_eq!(format_rfc3339(ms), "2025-11-26T09:00:00.123Z");
        assert_eq!(parse_rfc3339("2025-11-26T09:00:00.123Z"), Ok(ms));
        assert_eq!(parse_rfc3339("2025-11-26T10:00:00.123+01:00"), Ok(ms));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").map(format_rfc3339),
            Ok("2024-02-29T00:00:00.000Z".into())
        );
        for bad in [
            "2025-11-26",
            "2025-13-01T00:00:00Z",
            "2025-02-31T00:00:00Z",
            "yesterday",
            "2025-11-26T09:00:00+1",
            "2025-11-2€T09:00:00Z",
            "é",
        ] {
            assert!(
                matches!(parse_rfc3339(bad), Err(TimeError::NotRfc3339 { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(TimeError::BeforeEpoch("1969-12-31T23:59:59Z".into()))
        );
        assert!(format_rfc3339(u64::MAX).contains("ms"));
    }
}
