//! RFC 3339 timestamps <-> ms since the Unix epoch, UTC, integers only.
//! (Civil-date arithmetic after Howard Hinnant's `days_from_civil`.)

const MS_PER_DAY: i64 = 86_400_000;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2025-11-26T09:00:00.000Z` for ms since the epoch.
pub fn format_rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, rem) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` into ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 time like 2025-11-26T09:00:00Z");
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        text.get(r)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut milli = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = text
            .get(start..i)
            .filter(|f| !f.is_empty())
            .ok_or_else(bad)?;
        milli = format!("{frac:0<3}")[..3]
            .parse::<i64>()
            .map_err(|_| bad())?;
    }
    let offset_min = match text.get(i..) {
        Some("Z" | "z") => 0,
        Some(o) if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let hh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = o[4..6].parse().map_err(|_| bad())?;
            let sign = if &o[..1] == "-" { -1 } else { 1 };
            sign * (hh * 60 + mm)
        }
        _ => return Err(bad()),
    };
    let ms = days_from_civil(y, mo, d) * MS_PER_DAY
        + ((h * 60 + mi - offset_min) * 60 + s) * 1000
        + milli;
    u64::try_from(ms).map_err(|_| format!("`{text}` is before 1970"))
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
            "yesterday",
            "2025-11-26T09:00:00+1",
        ] {
            assert!(
                parse_rfc3339(bad).unwrap_err().contains("RFC 3339"),
                "{bad}"
            );
        }
    }
}
