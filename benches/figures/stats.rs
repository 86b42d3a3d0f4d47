//! Medians, spreads, percentiles and process facts for the figures.

/// A figure measured over interleaved rounds: the median and the spread.
#[derive(Clone, Debug)]
pub struct Rounds {
    pub values: Vec<f64>,
}

impl Rounds {
    pub fn new(values: Vec<f64>) -> Rounds {
        assert!(!values.is_empty(), "a figure needs at least one round");
        Rounds { values }
    }

    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// (max - min) / median, as a fraction.
    pub fn spread(&self) -> f64 {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let m = self.median();
        if m == 0.0 {
            0.0
        } else {
            (max - min) / m
        }
    }
}

/// The ratio of two figures measured round by round (a[i] / b[i]).
pub fn ratios(a: &Rounds, b: &Rounds) -> Rounds {
    assert_eq!(a.values.len(), b.values.len(), "interleaved rounds pair up");
    Rounds::new(a.values.iter().zip(&b.values).map(|(x, y)| x / y).collect())
}

/// The value at quantile `q` (0..=1) of unsorted samples.
pub fn percentile(samples: &mut [u64], q: f64) -> u64 {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// A line of /proc/self/status in KiB (VmRSS, VmHWM).
pub fn proc_status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
