//! `cargo bench --bench append`
//!
//! 1. criterion: the sequencer's CPU work per record (encode + chain hash).
//! 2. Durable append throughput through the ledger (submit → encode, hash, write,
//!    fdatasync → acknowledge) against a raw preallocated append-only file
//!    written with the same frame bytes and batch sizes and one fdatasync per
//!    batch, measured in the same run, rounds interleaved; prints the ratio.
//! 3. Full-log read + verify throughput (records/s).
//!
//! Environment: PARLEY_BENCH_ROUNDS (default 5), PARLEY_BENCH_BATCHES (per round,
//! default 48), PARLEY_BENCH_VERIFY_RECORDS (default 200000).

// Benchmarks measure elapsed wall time: that is their job.
#![allow(clippy::disallowed_methods)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use parley::command::{Command, CommandEnvelope};
use parley::entity::EntityRef;
use parley::ledger::{Ledger, Options};
use parley::log::encode_record;
use parley::record::{Body, Envelope, Record, FORMAT_VERSION, ZERO_HASH};
use parley::value::Value;

/// Target size of a record's canonical encoding, in bytes.
const RECORD_BYTES: usize = 256;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(seq: u64) -> Record {
    let mut r = Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq,
            recorded_at_ms: 1_764_000_000_000 + seq,
            producer: "pricing".into(),
            idempotency_key: None,
            causation: None,
            correlation: None,
            credential: None,
        },
        body: Body::Fact {
            entity: EntityRef::Other(format!("shelf-{}", seq % 1000)),
            attribute: "note".into(),
            value: Value::Text(String::new()),
        },
    };
    let pad = RECORD_BYTES.saturating_sub(r.canonical_bytes().unwrap().len());
    r.body = Body::Fact {
        entity: EntityRef::Other(format!("shelf-{}", seq % 1000)),
        attribute: "note".into(),
        value: Value::Text("x".repeat(pad)),
    };
    r
}

fn command(i: u64, text: &str) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: "pricing".into(),
            at_ms: None,
            idempotency_key: None,
            causation: None,
            correlation: None,
        },
        body: Body::Fact {
            entity: EntityRef::Other(format!("shelf-{}", i % 1000)),
            attribute: "note".into(),
            value: Value::Text(text.into()),
        },
    }
}

/// Raw baseline: preallocated file, one pwrite + fdatasync per batch.
fn raw_round(dir: &std::path::Path, frame_bytes: usize, batch: usize, batches: usize) -> Duration {
    let path = dir.join("raw.bin");
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let total = (frame_bytes * batch * batches) as u64 + 4096;
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the fd is open for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, total as libc::off_t) };
        assert_eq!(rc, 0, "posix_fallocate");
    }
    file.sync_all().unwrap();
    let buf = vec![0x5au8; frame_bytes * batch];
    let start = Instant::now();
    let mut offset = 64u64;
    for _ in 0..batches {
        file.write_all_at(&buf, offset).unwrap();
        file.sync_data().unwrap();
        offset += buf.len() as u64;
    }
    start.elapsed()
}

/// The ledger: one producer keeps the queue full; returns the time from the
/// first submit to the last acknowledgement.
fn ledger_round(dir: &std::path::Path, text: &str, batch: usize, batches: usize) -> Duration {
    let data = dir.join("ledger");
    let _ = std::fs::remove_dir_all(&data);
    let opts = Options {
        max_batch: batch,
        queue_capacity: batch * 8,
        ..Options::default()
    };
    let (ledger, _) = Ledger::open(&data, opts).unwrap();
    // A new ledger starts with its genesis, default rules and workflows.
    let base = ledger.head().map_or(0, |h| h.seq);
    let n = (batch * batches) as u64;
    let start = Instant::now();
    let mut tickets = std::collections::VecDeque::with_capacity(batch * 8);
    for i in 0..n {
        tickets.push_back(ledger.submit(command(i, text)).unwrap());
        if tickets.len() >= batch * 8 {
            tickets.pop_front().unwrap().wait().unwrap();
        }
    }
    for t in tickets {
        t.wait().unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(
        ledger.head().unwrap().seq,
        base + n,
        "the new ledger's own records, then the commands"
    );
    ledger.close().unwrap();
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let r = record(42);
    c.bench_function(
        "sequencer CPU per record (encode + blake3 chain hash, 256 B)",
        |b| b.iter(|| black_box(encode_record(black_box(&r), &ZERO_HASH).unwrap())),
    );

    let rounds = env_or("PARLEY_BENCH_ROUNDS", 5) as usize;
    let batches = env_or("PARLEY_BENCH_BATCHES", 48) as usize;
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let frame_bytes = encode_record(&r, &ZERO_HASH).unwrap().frame_len();
    let text = match &r.body {
        Body::Fact {
            value: Value::Text(t),
            ..
        } => t.clone(),
        _ => unreachable!(),
    };
    println!("\ndurable append, {RECORD_BYTES}-byte records ({frame_bytes}-byte frames), {rounds} interleaved rounds, median:");
    println!(
        "{:>6} {:>14} {:>14} {:>8}",
        "batch", "raw rec/s", "ledger rec/s", "ratio"
    );
    for batch in [256usize, 1024] {
        let (mut raw, mut led) = (Vec::new(), Vec::new());
        let n = (batch * batches) as f64;
        for _ in 0..rounds {
            raw.push(n / raw_round(dir.path(), frame_bytes, batch, batches).as_secs_f64());
            led.push(n / ledger_round(dir.path(), &text, batch, batches).as_secs_f64());
        }
        let (raw_m, led_m) = (median(raw), median(led));
        println!(
            "{batch:>6} {raw_m:>14.0} {led_m:>14.0} {:>7.2}x",
            led_m / raw_m
        );
    }

    // Read + verify the whole log.
    let records = env_or("PARLEY_BENCH_VERIFY_RECORDS", 200_000);
    let data = dir.path().join("verify");
    let (ledger, _) = Ledger::open(&data, Options::default()).unwrap();
    let mut tickets = std::collections::VecDeque::new();
    for i in 0..records {
        tickets.push_back(ledger.submit(command(i, &text)).unwrap());
        if tickets.len() >= 4096 {
            tickets.pop_front().unwrap().wait().unwrap();
        }
    }
    for t in tickets {
        t.wait().unwrap();
    }
    ledger.close().unwrap();
    let start = Instant::now();
    let report = parley::verify::verify_dir(&data).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(report.ok);
    println!(
        "\nread + verify (decode, blake3, links) of {} records: {:.0} records/s ({:.2} s)",
        report.records.unwrap(),
        report.records.unwrap() as f64 / secs,
        secs
    );
    c.final_summary();
}
