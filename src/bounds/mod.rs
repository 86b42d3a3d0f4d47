//! The documented range of every amount a command may carry, checked when the
//! command is parsed (the error names the field). Inside these ranges every
//! product the resolver computes fits in `i128`, and every result it stores
//! fits in `i64`, so decision arithmetic cannot overflow.
//!
//! | amount | range |
//! |---|---|
//! | prices, costs, order totals, budgets (minor units) | 0 ..= [`MONEY_MAX_MINOR`] (10^12: ten billion in major units) |
//! | projected impact (minor units) | -[`IMPACT_MAX_MINOR`] ..= [`IMPACT_MAX_MINOR`] (10^13) |
//! | stock | 0 ..= [`COUNT_MAX`] (10^9) |
//! | reorder and reservation quantities | 1 ..= [`COUNT_MAX`] |
//! | promotion discounts (basis points) | 1 ..= 10,000 |
//! | perk discounts (basis points) | 1 ..= 10,000 |
//! | traffic increase (basis points) | 0 ..= [`INCREASE_MAX_BP`] (10^6, i.e. 100×) |
//! | days (supplier and order delays) | 0 ..= [`DAYS_MAX`] (3,650) |
//! | times (ms since the epoch) | 0 ..= [`TIME_MAX_MS`] (9999-12-31T23:59:59.999Z) |
//! | skus in one promotion, supplier delay | 1 ..= [`SKUS_MAX`] (1,000) |
//! | free text (reasoning, rationale, reasons, notes) | ..= [`TEXT_MAX_CHARS`] (4,096 characters) |
//!
//! Architecture invariant: pure; every check is a function of the value alone.

pub mod schema;

/// Basis points in 100 %.
pub const BP_PER_UNIT: i64 = 10_000;
/// Longest identifier (producer, entity, attribute, topic, key), in
/// characters (as JSON Schema's `maxLength` counts them).
pub const ID_CHARS_MAX: usize = 256;
/// Most entries of a broadcast's `detail` or a run's `params`.
pub const MAP_ENTRIES_MAX: usize = 64;
/// How far ahead of the wall clock a command's `at_ms` may be on a
/// wall-clock ledger.
pub const CLOCK_SKEW_MS_MAX: u64 = 5 * 60 * 1000;
/// How far past the last record one command may move a scripted ledger.
pub const SCRIPTED_STEP_MS_MAX: u64 = 366 * 24 * 3600 * 1000;

/// Largest price, cost, order total or budget, in minor units.
pub const MONEY_MAX_MINOR: i64 = 1_000_000_000_000;
/// Largest |projected impact|, in minor units.
pub const IMPACT_MAX_MINOR: i64 = 10_000_000_000_000;
/// Largest stock level or quantity.
pub const COUNT_MAX: i64 = 1_000_000_000;
/// Largest traffic increase, in basis points.
pub const INCREASE_MAX_BP: u32 = 1_000_000;
/// Largest delay, in days.
pub const DAYS_MAX: u32 = 3_650;
/// Latest time a command may name: 9999-12-31T23:59:59.999Z.
pub const TIME_MAX_MS: u64 = 253_402_300_799_999;
/// Most skus one promotion or supplier delay names.
pub const SKUS_MAX: usize = 1_000;
/// Longest free text, in characters (as JSON Schema's `maxLength` counts them).
pub const TEXT_MAX_CHARS: usize = 4_096;

/// An amount outside its documented range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is {value}; it must be from {min} to {max}{unit}")]
pub struct OutOfRange {
    pub field: String,
    pub value: i128,
    pub min: i128,
    pub max: i128,
    pub unit: &'static str,
}

/// Checks `min <= value <= max`.
pub fn check(
    field: &str,
    value: impl Into<i128>,
    min: impl Into<i128>,
    max: impl Into<i128>,
    unit: &'static str,
) -> Result<(), OutOfRange> {
    let (value, min, max) = (value.into(), min.into(), max.into());
    debug_assert!(min <= max, "a range holds at least one value");
    if value < min || value > max {
        return Err(OutOfRange {
            field: field.to_owned(),
            value,
            min,
            max,
            unit,
        });
    }
    Ok(())
}

pub fn money(field: &str, v: i64) -> Result<(), OutOfRange> {
    check(field, v, 0, MONEY_MAX_MINOR, " minor units")
}
/// An amount that may be negative (a margin): within ±[`MONEY_MAX_MINOR`].
pub fn signed_money(field: &str, v: i64) -> Result<(), OutOfRange> {
    check(field, v, -MONEY_MAX_MINOR, MONEY_MAX_MINOR, " minor units")
}
pub fn impact(field: &str, v: i64) -> Result<(), OutOfRange> {
    check(
        field,
        v,
        -IMPACT_MAX_MINOR,
        IMPACT_MAX_MINOR,
        " minor units",
    )
}
pub fn stock(field: &str, v: i64) -> Result<(), OutOfRange> {
    check(field, v, 0, COUNT_MAX, "")
}
pub fn quantity(field: &str, v: u32) -> Result<(), OutOfRange> {
    check(field, v, 1, COUNT_MAX, "")
}
pub fn discount_bp(field: &str, v: u32) -> Result<(), OutOfRange> {
    check(field, v, 1, BP_PER_UNIT, " basis points")
}
pub fn increase_bp(field: &str, v: u32) -> Result<(), OutOfRange> {
    check(field, v, 0, INCREASE_MAX_BP, " basis points")
}
pub fn days(field: &str, v: u32) -> Result<(), OutOfRange> {
    check(field, v, 0, DAYS_MAX, " days")
}
pub fn time_ms(field: &str, v: u64) -> Result<(), OutOfRange> {
    check(field, v, 0, TIME_MAX_MS, " ms since the epoch")
}
pub fn count(field: &str, n: usize, max: usize) -> Result<(), OutOfRange> {
    check(field, n as u64, 1u64, max as u64, " entries")
}
pub fn text(field: &str, t: &str) -> Result<(), OutOfRange> {
    let chars = t.chars().count() as u64;
    check(field, chars, 0u64, TEXT_MAX_CHARS as u64, " characters")
}

/// Why a text is not an identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{field}` must not be empty or blank")]
    Blank { field: String },
    #[error("`{field}` must not start or end with white space: `{value}`")]
    Padded { field: String, value: String },
    #[error("`{field}` is {chars} characters; the limit is {ID_CHARS_MAX}")]
    TooLong { field: String, chars: usize },
    #[error("`{field}` must not contain control characters")]
    Control { field: String },
}

/// Checks an identifier: non-empty, at most [`ID_CHARS_MAX`] characters, no
/// control characters (NUL separates key parts in the derived store), and no
/// white space at either end (`" pricing"` and `"pricing"` would look alike).
pub fn check_id(field: &str, value: &str) -> Result<(), IdError> {
    let field = || field.to_owned();
    if value.trim().is_empty() {
        return Err(IdError::Blank { field: field() });
    }
    if value.trim() != value {
        return Err(IdError::Padded {
            field: field(),
            value: value.to_owned(),
        });
    }
    let chars = value.chars().count();
    if chars > ID_CHARS_MAX {
        return Err(IdError::TooLong {
            field: field(),
            chars,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::Control { field: field() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_inside_the_bounds_fit() {
        // The widest product the resolver forms: an impact scaled by a limit.
        let p = i128::from(IMPACT_MAX_MINOR) * i128::from(IMPACT_MAX_MINOR);
        assert!(p < i128::MAX / 4);
        // An effective price times basis points fits in i64.
        assert!(MONEY_MAX_MINOR.checked_mul(BP_PER_UNIT).is_some());
    }

    #[test]
    fn errors_name_field_and_range() {
        let e = money("price_minor", -1).unwrap_err().to_string();
        assert!(e.contains("price_minor") && e.contains("-1"), "{e}");
        assert!(discount_bp("discount_bp", 10_001).is_err());
        assert!(discount_bp("discount_bp", 10_000).is_ok());
        assert!(quantity("quantity", 0).is_err());
    }
}
