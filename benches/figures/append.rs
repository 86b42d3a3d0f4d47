//! Figure 1: durable append through the ledger against a raw preallocated
//! file written with the same frame bytes, batch sizes and one fdatasync per
//! batch.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use parley::command::{Command, CommandEnvelope};
use parley::entity::EntityRef;
use parley::ledger::{Ledger, Options};
use parley::log::encode_record;
use parley::record::{Body, Envelope, Record, FORMAT_VERSION, ZERO_HASH};
use parley::value::Value;

use crate::stats::Rounds;
use crate::store::Pipeline;

/// Target size of a record's canonical encoding, in bytes.
pub const RECORD_BYTES: usize = 256;

fn fact(seq: u64, text: String) -> Body {
    Body::Fact {
        entity: EntityRef::Other(format!("shelf-{}", seq % 1000)),
        attribute: "note".into(),
        value: Value::Text(text),
    }
}

/// A 256-byte fact record, and the text that pads it to that size.
pub fn sample() -> (Record, String) {
    let mut r = Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq: 42,
            recorded_at_ms: 1_764_000_000_042,
            producer: "pricing".into(),
            idempotency_key: None,
            causation: None,
            correlation: None,
            credential: None,
        },
        body: fact(42, String::new()),
    };
    let pad = RECORD_BYTES.saturating_sub(r.canonical_bytes().expect("encode").len());
    let text = "x".repeat(pad);
    r.body = fact(42, text.clone());
    (r, text)
}

pub fn command(producer: &str, i: u64, text: &str) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: producer.into(),
            at_ms: None,
            idempotency_key: None,
            causation: None,
            correlation: None,
        },
        body: fact(i, text.to_owned()),
    }
}

/// A new file of `bytes` preallocated (posix_fallocate) and synced: the
/// raw baselines write into it.
pub fn preallocated(path: &Path, bytes: u64) -> std::fs::File {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .expect("raw file");
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the fd is open for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
        assert_eq!(rc, 0, "posix_fallocate");
    }
    file.sync_all().expect("sync");
    file
}

/// Raw baseline: preallocated file, one pwrite + fdatasync per batch.
pub fn raw_round(dir: &Path, frame_bytes: usize, batch: usize, batches: usize) -> Duration {
    let total = (frame_bytes * batch * batches) as u64 + 4096;
    let file = preallocated(&dir.join("raw.bin"), total);
    let buf = vec![0x5au8; frame_bytes * batch];
    let start = Instant::now();
    let mut offset = 64u64;
    for _ in 0..batches {
        file.write_all_at(&buf, offset).expect("pwrite");
        file.sync_data().expect("fdatasync");
        offset += buf.len() as u64;
    }
    start.elapsed()
}

/// The ledger: one producer keeps the queue full; the time from the first
/// submit to the last acknowledgement.
pub fn ledger_round(dir: &Path, text: &str, batch: usize, batches: usize) -> Duration {
    let data = dir.join("ledger");
    let _ = std::fs::remove_dir_all(&data);
    let opts = Options {
        max_batch: batch,
        queue_capacity: batch * 8,
        ..Options::default()
    };
    let (ledger, _) = Ledger::open(&data, opts).expect("open");
    let base = ledger.head().map_or(0, |h| h.seq);
    let n = (batch * batches) as u64;
    let start = Instant::now();
    let mut pipe = Pipeline::new(&ledger, batch * 8);
    for i in 0..n {
        pipe.submit(command("pricing", i, text));
    }
    pipe.drain();
    let elapsed = start.elapsed();
    assert_eq!(
        ledger.head().map(|h| h.seq),
        Some(base + n),
        "every command appended once"
    );
    ledger.close().expect("close");
    elapsed
}

/// (raw rec/s, ledger rec/s) per batch size, rounds interleaved.
pub fn figure(dir: &Path, rounds: usize, batches: usize) -> Vec<(usize, Rounds, Rounds)> {
    let (r, text) = sample();
    let frame_bytes = encode_record(&r, &ZERO_HASH).expect("encode").frame_len();
    let mut out = Vec::new();
    for batch in [256usize, 1024] {
        let (mut raw, mut led) = (Vec::new(), Vec::new());
        let n = (batch * batches) as f64;
        for _ in 0..rounds {
            raw.push(n / raw_round(dir, frame_bytes, batch, batches).as_secs_f64());
            led.push(n / ledger_round(dir, &text, batch, batches).as_secs_f64());
        }
        out.push((batch, Rounds::new(raw), Rounds::new(led)));
    }
    out
}
