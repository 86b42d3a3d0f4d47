//! `cargo bench --bench replay`
//!
//! Replay throughput (decode + verify the chain + fold the context + re-derive
//! every decision, in memory) against a plain blake3 chain check over the same
//! bytes, measured in the same run with interleaved rounds. Prints events/s and
//! the ratio, phase by phase (figure 4 of `tools/bench` is the whole path
//! from disk). PARLEY_BENCH_EVENTS (default 1,000,000), PARLEY_BENCH_ROUNDS (3).

// Benchmarks measure elapsed wall time: that is their job.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use parley::command::Command;
use parley::ledger::Ledger;
use parley::reader::LedgerRead;
use parley::record::{chain_hash, Hash, Record, StoredRecord, ZERO_HASH};
use parley::replay::Replayer;

use stats::env_or;

#[path = "figures/stats.rs"]
#[allow(dead_code)]
mod stats;
#[path = "figures/store.rs"]
#[allow(dead_code)]
mod store;

/// The store's day of the figures (benches/figures/store.rs) over 1,000
/// skus, through an in-memory sequencer: the records' bytes and hashes.
fn generate(events: u64) -> Vec<(Hash, Vec<u8>, Hash)> {
    let ledger = Ledger::in_memory(store::options()).unwrap();
    let mut pipe = store::Pipeline::new(&ledger, 4096);
    for line in store::setup(1000) {
        pipe.submit(Command::parse(&line).unwrap());
    }
    let mut i = 0u64;
    while ledger.head().map_or(0, |h| h.seq) < events {
        for _ in 0..1024 {
            pipe.submit(Command::parse(&store::command(i, 1000)).unwrap());
            i += 1;
        }
    }
    pipe.drain();
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
