//! Attribution: a sales record's period split into pieces, one per regime
//! of terms and UTC day, each attributed to the decision in force.

use super::{Piece, SkuTerms, DAY_MS};
use crate::vocab::Observed;

/// The decision in force on a sku at `t`: of the last price change at or
/// before `t` and the promotions running at `t`, the one that started last
/// (on a tie, the later intention). `None`: the store's own terms.
pub fn in_force(terms: &SkuTerms, t: u64) -> Option<u64> {
    let price = terms
        .prices
        .iter()
        .rev()
        .find(|p| p.at_ms <= t)
        .map(|p| (p.at_ms, p.intention));
    let promotion = terms
        .promotions
        .iter()
        .filter(|p| p.starts_at_ms <= t && t < p.ends_at_ms)
        .map(|p| (p.starts_at_ms, Some(p.intention)))
        .max();
    match (price, promotion) {
        (None, None) => None,
        (Some((_, i)), None) | (None, Some((_, i))) => i,
        (Some(a), Some(b)) => a.max(b).1,
    }
}

/// The instants inside `(from, to)` where the decision in force may change
/// or a day begins, ascending, without repeats.
fn breakpoints(terms: &SkuTerms, from: u64, to: u64) -> Vec<u64> {
    let inside = |t: &u64| from < *t && *t < to;
    let mut points: Vec<u64> = terms
        .prices
        .iter()
        .map(|p| p.at_ms)
        .filter(inside)
        .collect();
    for p in &terms.promotions {
        points.extend([p.starts_at_ms, p.ends_at_ms].into_iter().filter(inside));
    }
    let first_day = from / DAY_MS + 1;
    let last_day = (to - 1) / DAY_MS;
    points.extend((first_day..=last_day).map(|d| d * DAY_MS).filter(inside));
    points.sort_unstable();
    points.dedup();
    points
}

/// `x · part / whole`, truncated toward zero (`whole` > 0, `part` ≤ `whole`).
pub(crate) fn share(x: i64, part: u64, whole: u64) -> i64 {
    debug_assert!(whole > 0 && part <= whole);
    let v = i128::from(x) * i128::from(part) / i128::from(whole);
    // |v| ≤ |x| because part ≤ whole: it fits.
    i64::try_from(v).unwrap_or(x)
}

/// A sales record as one piece under no decision (`None` for other outcomes).
fn whole(seq: u64, o: &Observed) -> Option<Piece> {
    let Observed::Sales {
        from_ms,
        to_ms,
        units,
        revenue_minor,
        margin_minor,
        ..
    } = o
    else {
        return None;
    };
    Some(Piece {
        seq,
        from_ms: *from_ms,
        to_ms: *to_ms,
        intention: None,
        units: *units,
        revenue_minor: *revenue_minor,
        margin_minor: *margin_minor,
    })
}

/// A sales record split into pieces under `terms`: one per stretch of one
/// day under one decision, in time order. Units, revenue and margin are
/// shared in proportion to time; the last piece takes what truncation left,
/// so each sums to the record's figure exactly. Anything else: no pieces.
pub fn split(seq: u64, o: &Observed, terms: &SkuTerms) -> Vec<Piece> {
    let Some(w) = whole(seq, o) else {
        return Vec::new();
    };
    let (from, to) = (w.from_ms, w.to_ms);
    // Commands are validated (a period ends after it starts); a forged but
    // chain-valid log may still hold an empty period: it attributes nothing.
    if from >= to {
        return Vec::new();
    }
    let mut stretches: Vec<(u64, u64, Option<u64>)> = Vec::new();
    let mut start = from;
    for end in breakpoints(terms, from, to).into_iter().chain([to]) {
        let who = in_force(terms, start);
        let same_day = |s: u64| s / DAY_MS == start / DAY_MS;
        match stretches.last_mut() {
            Some(last) if last.2 == who && same_day(last.0) => last.1 = end,
            _ => stretches.push((start, end, who)),
        }
        start = end;
    }
    let span = to - from;
    let n = stretches.len();
    let mut left = (w.units, w.revenue_minor, w.margin_minor);
    let mut pieces = Vec::with_capacity(n);
    for (i, (a, b, who)) in stretches.into_iter().enumerate() {
        let part = b - a;
        let (u, r, m) = if i + 1 == n {
            left
        } else {
            (
                share(w.units, part, span),
                share(w.revenue_minor, part, span),
                share(w.margin_minor, part, span),
            )
        };
        left = (left.0 - u, left.1 - r, left.2 - m);
        pieces.push(Piece {
            seq,
            from_ms: a,
            to_ms: b,
            intention: who,
            units: u,
            revenue_minor: r,
            margin_minor: m,
        });
    }
    pieces
}

/// The pieces cover the record's period without gaps or overlaps and sum to
/// its figures.
pub fn adds_up(o: &Observed, pieces: &[Piece]) -> bool {
    let Some(w) = whole(0, o) else {
        return pieces.is_empty();
    };
    let contiguous = pieces.windows(2).all(|x| x[0].to_ms == x[1].from_ms);
    let ends = pieces.first().map(|p| p.from_ms) == Some(w.from_ms)
        && pieces.last().map(|p| p.to_ms) == Some(w.to_ms);
    let sum = |f: fn(&Piece) -> i64| pieces.iter().map(f).sum::<i64>();
    contiguous
        && ends
        && sum(|p| p.units) == w.units
        && sum(|p| p.revenue_minor) == w.revenue_minor
        && sum(|p| p.margin_minor) == w.margin_minor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::{PriceChange, PromotionSpan};

    fn sales(from_ms: u64, to_ms: u64, units: i64, revenue: i64, margin: i64) -> Observed {
        Observed::Sales {
            sku: "s".into(),
            from_ms,
            to_ms,
            units,
            revenue_minor: revenue,
            margin_minor: margin,
        }
    }

    fn terms(prices: &[(u64, Option<u64>)], promos: &[(u64, u64, u64)]) -> SkuTerms {
        SkuTerms {
            prices: prices
                .iter()
                .map(|(at_ms, intention)| PriceChange {
                    at_ms: *at_ms,
                    price_minor: 100,
                    intention: *intention,
                })
                .collect(),
            promotions: promos
                .iter()
                .map(|(s, e, i)| PromotionSpan {
                    starts_at_ms: *s,
                    ends_at_ms: *e,
                    intention: *i,
                })
                .collect(),
            pieces: Default::default(),
            acted: Default::default(),
        }
    }

    #[test]
    fn a_price_change_mid_period_splits_the_sales_by_time() {
        let t = terms(&[(0, None), (3_000, Some(7))], &[]);
        let o = sales(1_000, 5_000, 10, 1_001, -7);
        let p = split(9, &o, &t);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].intention, p[0].units, p[0].revenue_minor),
            (None, 5, 500)
        );
        assert_eq!(
            (p[1].intention, p[1].units, p[1].revenue_minor),
            (Some(7), 5, 501)
        );
        assert_eq!(p[0].margin_minor + p[1].margin_minor, -7);
        assert!(adds_up(&o, &p));
    }

    #[test]
    fn a_promotion_rules_while_it_runs_then_the_price_decision_again() {
        let t = terms(&[(0, Some(2))], &[(2_000, 4_000, 5)]);
        let o = sales(1_000, 6_000, 5, 500, 100);
        let who: Vec<_> = split(1, &o, &t).iter().map(|p| p.intention).collect();
        assert_eq!(who, [Some(2), Some(5), Some(2)]);
        // A price set during the promotion outranks it from then on.
        let t = terms(&[(0, Some(2)), (3_000, Some(8))], &[(2_000, 4_000, 5)]);
        let who: Vec<_> = split(1, &o, &t).iter().map(|p| p.intention).collect();
        assert_eq!(who, [Some(2), Some(5), Some(8)]);
    }

    #[test]
    fn an_empty_period_from_a_forged_log_attributes_nothing() {
        let t = terms(&[(0, Some(3))], &[]);
        for (from, to) in [(5_000, 5_000), (6_000, 5_000)] {
            assert!(split(1, &sales(from, to, 4, 400, 40), &t).is_empty());
        }
        let mut o = crate::outcomes::Outcomes::default();
        o.observe(1, 9_000, &sales(6_000, 5_000, 4, 400, 40));
        assert_eq!((o.totals.sales_records, o.totals.units), (1, 0));
    }

    #[test]
    fn midnight_splits_a_period_under_one_decision() {
        let t = terms(&[(0, Some(3))], &[]);
        let o = sales(DAY_MS - 1_000, DAY_MS + 3_000, 4, 400, 40);
        let p = split(1, &o, &t);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].to_ms, p[0].units, p[1].units), (DAY_MS, 1, 3));
        assert!(adds_up(&o, &p));
    }
}
