//! From attributed pieces to what the ledger learns: each acted-on
//! decision's realized impact, each agent's forecast error, each
//! precedent's record.
//!
//! **The model** (documented in ARCHITECTURE.md, "Outcomes and learning"): a decision's
//! realized impact is measured over its window `[from, from + W)` (W: the
//! live window of the rules it was decided under) against the same sku's
//! sales over `[from − W, from)` under any other terms, as a rate per
//! millisecond covered by sales records: `delta = realized − baseline ·
//! covered / baseline_covered`. It is measured once the window has closed
//! and both stretches have sales; before that it is "not yet measured",
//! never a guess. Integers throughout (i128 inside, truncated toward zero).

use super::{Acted, Outcomes, Piece};
use crate::vocab::Impact;

/// Sales summed over a stretch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    schemars::JsonSchema,
)]
pub struct Realized {
    pub units: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
    /// Milliseconds covered by sales records.
    pub covered_ms: u64,
    /// The newest `outcome` record summed (0: none).
    #[serde(skip)]
    pub last_seq: u64,
}

impl Realized {
    /// Adds the part of `p` inside `[from, to)`, in proportion to time.
    pub fn add(&mut self, p: &Piece, from: u64, to: u64) {
        let (a, b) = (p.from_ms.max(from), p.to_ms.min(to));
        if a >= b {
            return;
        }
        let (part, whole) = (b - a, p.to_ms - p.from_ms);
        let share = |x: i64| super::attribute::share(x, part, whole);
        self.units = self.units.saturating_add(share(p.units));
        self.revenue_minor = self.revenue_minor.saturating_add(share(p.revenue_minor));
        self.margin_minor = self.margin_minor.saturating_add(share(p.margin_minor));
        self.covered_ms = self.covered_ms.saturating_add(part);
        self.last_seq = self.last_seq.max(p.seq);
    }
}

/// One acted-on decision's measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement<'a> {
    pub acted: &'a Acted,
    /// Under this decision, inside its window.
    pub realized: Realized,
    /// Under other terms, in the window before it.
    pub baseline: Realized,
    /// `realized − baseline` at the same coverage, once measurable.
    pub delta: Option<Impact>,
}

impl Measurement<'_> {
    /// The newest `outcome` record either sum used (0: none).
    pub fn last_seq(&self) -> u64 {
        self.realized.last_seq.max(self.baseline.last_seq)
    }

    /// Realized margin per unit of projected impact, in basis points
    /// (precedents compare their cases by it).
    pub fn quality_bp(&self) -> Option<i64> {
        let delta = self.delta?;
        let p = self.acted.projected;
        let scale = p
            .revenue_minor
            .unsigned_abs()
            .max(p.margin_minor.unsigned_abs())
            .max(1);
        let q = i128::from(delta.margin_minor) * 10_000 / i128::from(scale);
        Some(saturate(q))
    }
}

/// An i128 result clamped into i64.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `x · num / den` in i128, saturated to i64 (`den` > 0).
fn ratio(x: i64, num: u64, den: u64) -> i64 {
    saturate(i128::from(x) * i128::from(num) / i128::from(den.max(1)))
}

/// Measures `a` as of `now_ms`, from the sums the fold keeps for it.
pub fn measure(a: &Acted, now_ms: u64) -> Measurement<'_> {
    let (realized, baseline) = (a.realized, a.baseline);
    let closed = now_ms >= a.from_ms.saturating_add(a.window_ms);
    let measurable =
        a.window_ms > 0 && closed && realized.covered_ms > 0 && baseline.covered_ms > 0;
    let at_coverage = |x: i64| ratio(x, realized.covered_ms, baseline.covered_ms);
    let delta = measurable.then(|| Impact {
        revenue_minor: realized
            .revenue_minor
            .saturating_sub(at_coverage(baseline.revenue_minor)),
        margin_minor: realized
            .margin_minor
            .saturating_sub(at_coverage(baseline.margin_minor)),
    });
    Measurement {
        acted: a,
        realized,
        baseline,
        delta,
    }
}

/// An agent's forecasts against what followed, over its measured decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Forecast {
    pub agent: String,
    /// Its acted-on decisions kept (at most `PER_KEY_MAX`, newest).
    pub decisions: u64,
    /// Of them, measured.
    pub measured: u64,
    pub projected_revenue_minor: i64,
    pub realized_revenue_minor: i64,
    /// Realized over projected revenue impact, in basis points (10,000:
    /// forecasts were right on average; `None` with nothing measured or
    /// nothing projected).
    pub bias_bp: Option<i64>,
    /// Mean |realized − projected| revenue impact per measured decision.
    pub mean_abs_error_minor: Option<i64>,
    /// The newest `outcome` record the figures use (0: none).
    pub last_outcome: u64,
}

/// `agent`'s forecast record as of `now_ms`.
pub fn forecast(o: &Outcomes, agent: &str, now_ms: u64) -> Forecast {
    let mut f = Forecast {
        agent: agent.to_owned(),
        ..Forecast::default()
    };
    let mut abs_error: i128 = 0;
    let kept = o.by_agent.get(agent).into_iter().flatten();
    for a in kept.filter_map(|i| o.acted.get(i)) {
        f.decisions += 1;
        let m = measure(a, now_ms);
        let Some(delta) = m.delta else { continue };
        f.measured += 1;
        f.projected_revenue_minor = f
            .projected_revenue_minor
            .saturating_add(a.projected.revenue_minor);
        f.realized_revenue_minor = f.realized_revenue_minor.saturating_add(delta.revenue_minor);
        abs_error +=
            (i128::from(delta.revenue_minor) - i128::from(a.projected.revenue_minor)).abs();
        f.last_outcome = f.last_outcome.max(m.last_seq());
    }
    if f.measured > 0 {
        let mean = abs_error / i128::from(f.measured);
        f.mean_abs_error_minor = Some(saturate(mean));
        if f.projected_revenue_minor != 0 {
            let bias = i128::from(f.realized_revenue_minor) * 10_000
                / i128::from(f.projected_revenue_minor);
            f.bias_bp = Some(saturate(bias));
        }
    }
    f
}

/// How a precedent's settled cases turned out against its original case.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PrecedentRecord {
    /// The human resolution.
    pub resolution: u64,
    /// The escalated intention it resolved.
    pub intention: u64,
    /// The original case's quality ([`Measurement::quality_bp`]), once measured.
    pub original_bp: Option<i64>,
    /// Cases it settled (kept: at most `PER_KEY_MAX`, newest).
    pub settled: u64,
    /// Of them, measured.
    pub measured: u64,
    /// Their mean quality, once any is measured.
    pub settled_bp: Option<i64>,
    /// The newest `outcome` record the figures use (0: none).
    pub last_outcome: u64,
}

impl PrecedentRecord {
    /// Did its settled cases do markedly worse than its original: at least
    /// `min_cases` measured, and their mean quality more than `worse_bp`
    /// below the original's?
    pub fn worse_by(&self, worse_bp: i64, min_cases: u64) -> bool {
        match (self.original_bp, self.settled_bp) {
            (Some(original), Some(settled)) => {
                self.measured >= min_cases
                    && i128::from(settled) < i128::from(original) - i128::from(worse_bp)
            }
            _ => false,
        }
    }
}

/// The record of the precedent set by `resolution` on `intention`.
pub fn precedent(o: &Outcomes, resolution: u64, intention: u64, now_ms: u64) -> PrecedentRecord {
    let mut r = PrecedentRecord {
        resolution,
        intention,
        ..PrecedentRecord::default()
    };
    if let Some(a) = o.acted.get(&intention) {
        let m = measure(a, now_ms);
        r.original_bp = m.quality_bp();
        r.last_outcome = m.last_seq();
    }
    let mut sum: i128 = 0;
    let cases = o.by_precedent.get(&resolution).into_iter().flatten();
    for a in cases.filter_map(|i| o.acted.get(i)) {
        r.settled += 1;
        let m = measure(a, now_ms);
        if let Some(q) = m.quality_bp() {
            r.measured += 1;
            sum += i128::from(q);
            r.last_outcome = r.last_outcome.max(m.last_seq());
        }
    }
    if r.measured > 0 {
        let mean = sum / i128::from(r.measured);
        r.settled_bp = Some(saturate(mean));
    }
    r
}
