//! Money as the platforms write it ("19.99", "-0.50", "1200"), read exactly
//! into integer minor units of the ledger's currency: never through a float.

use crate::bounds::MONEY_MAX_MINOR;

/// A currency: its ISO 4217 code and how many digits its minor unit has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: [u8; 3],
    exponent: u32,
}

/// ISO 4217 currencies without a minor unit.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
/// ISO 4217 currencies with three decimals.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Why a currency or an amount is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code (three capital letters, like GBP)")]
    NotACurrency(String),
    #[error("`{field}` is `{text}`, not a decimal amount like 19.99")]
    NotAnAmount { field: String, text: String },
    #[error("`{field}` is `{text}`: {currency} has {exponent} decimal places")]
    TooPrecise {
        field: String,
        text: String,
        currency: String,
        exponent: u32,
    },
    #[error("`{field}` is `{text}`: amounts run from 0 to {MONEY_MAX_MINOR} minor units")]
    OutOfRange { field: String, text: String },
}

impl Currency {
    /// Parses a code ("GBP", "gbp").
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        let bytes: [u8; 3] = upper
            .as_bytes()
            .try_into()
            .ok()
            .filter(|b: &[u8; 3]| b.iter().all(u8::is_ascii_uppercase))
            .ok_or_else(|| MoneyError::NotACurrency(code.to_owned()))?;
        let exponent = if ZERO_DECIMALS.contains(&upper.as_str()) {
            0
        } else if THREE_DECIMALS.contains(&upper.as_str()) {
            3
        } else {
            2
        };
        Ok(Currency {
            code: bytes,
            exponent,
        })
    }

    pub fn code(&self) -> &str {
        // Three ASCII capitals, checked in `parse`.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Whether `code` names this currency (case-insensitive).
    pub fn is(&self, code: &str) -> bool {
        code.trim().eq_ignore_ascii_case(self.code())
    }

    /// `text` in minor units: digits, an optional point and at most the
    /// currency's decimals (trailing zeros beyond them are accepted), no
    /// sign, no exponent, within the money bounds.
    pub fn minor(&self, field: &str, text: &str) -> Result<i64, MoneyError> {
        let not = || MoneyError::NotAnAmount {
            field: field.to_owned(),
            text: text.to_owned(),
        };
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(frac)
            || (t.contains('.') && frac.is_empty())
        {
            return Err(not());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > self.exponent as usize {
            return Err(MoneyError::TooPrecise {
                field: field.to_owned(),
                text: text.to_owned(),
                currency: self.code().to_owned(),
                exponent: self.exponent,
            });
        }
        let out = || MoneyError::OutOfRange {
            field: field.to_owned(),
            text: text.to_owned(),
        };
        let whole = whole.trim_start_matches('0');
        // Longer than 13 digits cannot be inside the bounds (10¹² minor).
        if whole.len() > 13 {
            return Err(out());
        }
        let w: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| out())?
        };
        let f: i64 = format!("{frac:0<width$}", width = self.exponent as usize)
            .parse()
            .unwrap_or(0);
        let minor = w
            .checked_mul(10_i64.pow(self.exponent))
            .and_then(|m| m.checked_add(f))
            .filter(|m| (0..=MONEY_MAX_MINOR).contains(m))
            .ok_or_else(out)?;
        debug_assert!(minor >= 0);
        Ok(minor)
    }

    /// A signed amount (refund transactions are written "-10.00" by some).
    pub fn minor_abs(&self, field: &str, text: &str) -> Result<i64, MoneyError> {
        let t = text.trim();
        self.minor(field, t.strip_prefix('-').unwrap_or(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly() {
        let gbp = Currency::parse("gbp").unwrap();
        assert_eq!(gbp.minor("p", "19.99"), Ok(1999));
        assert_eq!(gbp.minor("p", "19.9"), Ok(1990));
        assert_eq!(gbp.minor("p", "19"), Ok(1900));
        assert_eq!(gbp.minor("p", "0.10"), Ok(10));
        assert_eq!(gbp.minor("p", "19.990000"), Ok(1999));
        // A float would give 1000000000000.0001 or lose the last cent.
        assert_eq!(gbp.minor("p", "9999999999.99"), Ok(999_999_999_999));
        for bad in [
            "", ".5", "5.", "1e3", "-1", "1,000.00", "abc", "+1", "0x10", "1.2.3",
        ] {
            assert!(
                matches!(gbp.minor("p", bad), Err(MoneyError::NotAnAmount { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            gbp.minor("p", "1.999"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            gbp.minor("p", "10000000000.01"),
            Err(MoneyError::OutOfRange { .. })
        ));
        assert!(matches!(
            gbp.minor("p", "99999999999999999999999"),
            Err(MoneyError::OutOfRange { .. })
        ));
        assert_eq!(gbp.minor_abs("p", "-10.00"), Ok(1000));
    }

    #[test]
    fn each_currency_has_its_exponent() {
        assert_eq!(Currency::parse("JPY").unwrap().minor("p", "1200"), Ok(1200));
        assert!(Currency::parse("JPY").unwrap().minor("p", "1.5").is_err());
        assert_eq!(
            Currency::parse("KWD").unwrap().minor("p", "1.234"),
            Ok(1234)
        );
        assert!(Currency::parse("pounds").is_err());
        assert!(Currency::parse("G1P").is_err());
        assert!(Currency::parse("GBP").unwrap().is("gbp"));
    }
}
