//! `cargo bench --bench replay`
//!
//! Replay throughput (decode + verify the chain + fold the context + re-derive
//! every decision, in memory) against a plain blake3 chain check over the same
//! bytes, measured in the same run with interleaved rounds. Prints events/s and
//! the ratio. PARLEY_BENCH_EVENTS (default 1,000,000), PARLEY_BENCH_ROUNDS (3),
//! PARLEY_BENCH_ESCALATING_PCT (default 1): the share of price changes that
//! escalate (and, unanswered, stay live rivals).

// Benchmarks measure elapsed wall time: that is their job.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use parley::audit::LedgerRead;
use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::record::{chain_hash, Hash, Record, StoredRecord, ZERO_HASH};
use parley::replay::Replayer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Projected revenue of the i-th intention. PARLEY_BENCH_ESCALATING_PCT
/// (default 1) percent exceed the GBP 5,000 threshold and escalate; nobody
/// resolves them in the bench, so they stay live rivals until the end.
fn revenue(i: u64) -> i64 {
    let pct = env_or("PARLEY_BENCH_ESCALATING_PCT", 1);
    if (i / 5) % 100 < pct {
        600_000
    } else {
        ((i % 900) * 100) as i64
    }
}

/// A store's day at scale: stock moves, competitor prices, notifications and
/// price intentions (with their decisions) over 1,000 skus.
fn generate(events: u64) -> Vec<(Hash, Vec<u8>, Hash)> {
    let t0 = 1_764_147_600_000u64;
    let opts = Options {
        genesis_at_ms: Some(t0),
        timeline: parley::record::Timeline::Scripted,
        first_admin: "ops".into(),
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let mut lines = vec![
        format!(
            r#"{{"producer":"ops","at_ms":{t0},"kind":"agent_registered","profile":{{"agent":"pricing","domain":"pricing","priority":50}}}}"#
        ),
        format!(
            r#"{{"producer":"ops","at_ms":{t0},"kind":"agent_registered","profile":{{"agent":"merchandising","domain":"merchandising","priority":40}}}}"#
        ),
        format!(
            r#"{{"producer":"ops","at_ms":{t0},"kind":"agent_registered","profile":{{"agent":"customer-service","domain":"customer-service","priority":30}}}}"#
        ),
    ];
    for s in 0..1000 {
        lines.push(format!(r#"{{"producer":"merchandising","at_ms":{t0},"kind":"catalog","sku":"S{s}","category":"c{}","cost_minor":{},"price_minor":{},"stock":100,"lifecycle":"active"}}"#, s % 20, 2000 + s, 4000 + 2 * s));
    }
    let mut tickets = std::collections::VecDeque::new();
    let mut i = 0u64;
    while ledger.head().map_or(0, |h| h.seq) + tickets.len() as u64 * 2 < events {
        let at = t0 + 1000 + i * 1000;
        let s = (i * 7919) % 1000;
        let line = match i % 10 {
            0 | 5 => {
                let (agent, objective) = if i % 20 == 0 {
                    ("pricing", "margin-protection")
                } else {
                    ("merchandising", "sales-growth")
                };
                format!(
                    r#"{{"producer":"{agent}","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":{},"margin_minor":1}},"objective":"{objective}"}}}}"#,
                    2100 + (i % 3000),
                    revenue(i)
                )
            }
            1 => format!(
                r#"{{"producer":"customer-service","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"notify_customer","customer":"C{}","order":"O{}","topic":"delay"}},"reasoning":"r","impact":{{"revenue_minor":0,"margin_minor":0}},"objective":"customer-experience"}}}}"#,
                i % 5000,
                i % 7000
            ),
            2 | 3 => format!(
                r#"{{"producer":"competitor-tracking","at_ms":{at},"kind":"competitor_price","sku":"S{s}","competitor":"rival","price_minor":{}}}"#,
                3000 + i % 999
            ),
            _ => format!(
                r#"{{"producer":"inventory","at_ms":{at},"kind":"stock_changed","sku":"S{s}","stock":{}}}"#,
                i % 500
            ),
        };
        lines.push(line);
        for l in lines.drain(..) {
            tickets.push_back(ledger.submit(Command::parse(&l).unwrap()).unwrap());
            if tickets.len() >= 4096 {
                tickets.pop_front().unwrap().wait().unwrap();
            }
        }
        i += 1;
    }
    for t in tickets {
        t.wait().unwrap();
    }
    let mut out = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r: StoredRecord| {
            out.push((r.prev_hash, r.record.canonical_bytes().unwrap(), r.hash));
            Ok(())
        })
        .unwrap();
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let events = env_or("PARLEY_BENCH_EVENTS", 1_000_000);
    let rounds = env_or("PARLEY_BENCH_ROUNDS", 3);
    let t = Instant::now();
    let log = generate(events);
    let decisions = log.len();
    println!(
        "generated {} records through the sequencer in {:.1} s",
        log.len(),
        t.elapsed().as_secs_f64()
    );
    let (mut chain, mut decode, mut fold, mut replay) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut replayed_decisions = 0;
    let rate = |start: Instant| log.len() as f64 / start.elapsed().as_secs_f64();
    for _ in 0..rounds {
        let start = Instant::now();
        let mut prev = ZERO_HASH;
        for (p, payload, h) in &log {
            assert!(*p == prev && chain_hash(p, payload) == *h);
            prev = *h;
        }
        chain.push(rate(start));

        let start = Instant::now();
        let mut prev = ZERO_HASH;
        for (p, payload, h) in &log {
            assert!(*p == prev && chain_hash(p, payload) == *h);
            prev = *h;
            std::hint::black_box(Record::decode(payload).unwrap());
        }
        decode.push(rate(start));

        let start = Instant::now();
        let mut prev = ZERO_HASH;
        let mut ctx = parley::context::Context::default();
        for (p, payload, h) in &log {
            assert!(*p == prev && chain_hash(p, payload) == *h);
            prev = *h;
            let record = Record::decode(payload).unwrap();
            ctx.apply(&StoredRecord {
                prev_hash: *p,
                hash: *h,
                record,
            })
            .unwrap();
        }
        fold.push(rate(start));

        let start = Instant::now();
        let mut prev = ZERO_HASH;
        let mut replayer = Replayer::default();
        for (p, payload, h) in &log {
            assert!(*p == prev && chain_hash(p, payload) == *h);
            prev = *h;
            let record = Record::decode(payload).unwrap();
            replayer
                .feed(&StoredRecord {
                    prev_hash: *p,
                    hash: *h,
                    record,
                })
                .unwrap();
        }
        replayer.finish().unwrap();
        replayed_decisions = replayer.decisions();
        replay.push(rate(start));
    }
    let c = median(chain);
    println!("{decisions} events, {replayed_decisions} decisions re-derived, median of {rounds} interleaved rounds:");
    println!(
        "  {:<52} {:>12.0} events/s",
        "blake3 chain only (baseline)", c
    );
    for (name, v) in [
        ("chain + decode", median(decode)),
        ("chain + decode + fold the context", median(fold)),
        (
            "replay: chain + decode + fold + re-derive decisions",
            median(replay),
        ),
    ] {
        println!("  {name:<52} {v:>12.0} events/s   {:.2}x the chain", v / c);
    }
}
