//! Figures 4 and 5: full replay of the first `to` records of a benchmark
//! ledger (read, verify the chain, decode, fold, re-derive every decision)
//! against a bare blake3 chain over the same record bytes, and what-if with
//! another rule set over the same records.

use std::path::Path;
use std::time::Instant;

use parley::reader::LedgerRead;
use parley::reader::LogView;
use parley::record::{chain_hash, Hash, StoredRecord, ZERO_HASH};
use parley::replay::Replayer;
use parley::resolver::Resolvers;
use parley::rules::{RuleSet, DEFAULT_RULES};
use parley::whatif::{Alternative, WhatIf};

use crate::stats::Rounds;

pub struct Replay {
    pub replay_per_s: Rounds,
    pub chain_per_s: Rounds,
    pub records: u64,
    pub decisions: u64,
    pub divergent: u64,
}

pub struct WhatIfFigure {
    pub seconds: Rounds,
    /// A replay of the same records in each round (seconds).
    pub replay_seconds: Rounds,
    pub changed: usize,
    pub intentions: u64,
    /// Changed decisions of a what-if with the recorded rules (must be 0).
    pub same_rules_changed: usize,
}

/// The records' canonical bytes and hashes, for the chain baseline.
fn payloads(view: &LogView, to: u64) -> Vec<(Hash, Vec<u8>, Hash)> {
    let mut out = Vec::with_capacity(to as usize);
    view.scan(1, to, &mut |r: StoredRecord| {
        out.push((
            r.prev_hash,
            r.record.canonical_bytes().expect("encode"),
            r.hash,
        ));
        Ok(())
    })
    .expect("scan");
    out
}

fn chain(log: &[(Hash, Vec<u8>, Hash)]) -> f64 {
    let start = Instant::now();
    let mut prev = ZERO_HASH;
    for (p, payload, h) in log {
        assert!(*p == prev && chain_hash(p, payload) == *h, "chain broken");
        prev = *h;
    }
    log.len() as f64 / start.elapsed().as_secs_f64()
}

/// One replay as `parley replay` runs it; (records/s, decisions, divergent).
fn replay_once(dir: &Path, to: u64) -> (f64, u64, u64) {
    let start = Instant::now();
    let (view, _) = LogView::open(dir).expect("open view");
    let mut replayer = Replayer::new(Resolvers::released());
    let mut divergent = 0;
    view.scan(1, to, &mut |r| {
        if replayer.feed(&r).is_err() {
            divergent += 1;
        }
        Ok(())
    })
    .expect("scan");
    if to == view.head_seq() && replayer.finish().is_err() {
        divergent += 1;
    }
    (
        to as f64 / start.elapsed().as_secs_f64(),
        replayer.decisions(),
        divergent,
    )
}

pub fn figure(dir: &Path, to: u64, rounds: usize) -> Replay {
    let (view, _) = LogView::open(dir).expect("open view");
    assert!(
        view.head_seq() >= to,
        "the ledger holds fewer than {to} records"
    );
    let log = payloads(&view, to);
    let (mut rep, mut ch) = (Vec::new(), Vec::new());
    let (mut decisions, mut divergent) = (0, 0);
    for _ in 0..rounds {
        ch.push(chain(&log));
        let (rate, d, div) = replay_once(dir, to);
        rep.push(rate);
        (decisions, divergent) = (d, divergent + div);
    }
    Replay {
        replay_per_s: Rounds::new(rep),
        chain_per_s: Rounds::new(ch),
        records: to,
        decisions,
        divergent,
    }
}

/// The alternative: a tighter escalation threshold and margin guard.
pub fn alternative_rules() -> String {
    DEFAULT_RULES
        .replace(
            "escalate_above_minor = 500000",
            "escalate_above_minor = 100000",
        )
        .replace("min_margin_bp = 500", "min_margin_bp = 1500")
}

fn whatif_once(dir: &Path, to: u64, text: String) -> (f64, usize, u64) {
    let start = Instant::now();
    let (view, _) = LogView::open(dir).expect("open view");
    let rules = RuleSet::parse(&text).expect("rules");
    let alt = Alternative {
        rules: Some((text, rules)),
        resolver: None,
    };
    let mut run = WhatIf::new(alt, 1, to, Resolvers::released());
    view.scan(1, to, &mut |r| {
        run.feed(&r);
        Ok(())
    })
    .expect("scan");
    parley::reader::feed_follow_ups(&view, &mut run).expect("read the follow-ups");
    let report = run.finish();
    (
        start.elapsed().as_secs_f64(),
        report.changed.len(),
        report.summary.intentions,
    )
}

pub fn whatif(dir: &Path, to: u64, rounds: usize) -> WhatIfFigure {
    let alt = alternative_rules();
    assert_ne!(alt, DEFAULT_RULES, "the alternative differs");
    let (mut secs, mut replays) = (Vec::new(), Vec::new());
    let (mut changed, mut intentions) = (0, 0);
    for _ in 0..rounds {
        let (rate, _, divergent) = replay_once(dir, to);
        assert_eq!(divergent, 0, "the replay beside the what-if diverged");
        replays.push(to as f64 / rate);
        let (s, c, i) = whatif_once(dir, to, alt.clone());
        secs.push(s);
        (changed, intentions) = (c, i);
    }
    let (_, same_rules_changed, _) = whatif_once(dir, to, DEFAULT_RULES.to_owned());
    WhatIfFigure {
        seconds: Rounds::new(secs),
        replay_seconds: Rounds::new(replays),
        changed,
        intentions,
        same_rules_changed,
    }
}
