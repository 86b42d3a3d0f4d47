//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use parley::command::{Command, CommandEnvelope};
use parley::log::frame::{parse_frame, Parsed};
use parley::log::scan::{list_segments, SEGMENT_HEADER_BYTES};
use parley::record::Body;
use parley::value::Value;

/// A fact command with an explicit time and optional idempotency key.
pub fn fact(
    producer: &str,
    at_ms: u64,
    key: Option<&str>,
    entity: &str,
    attr: &str,
    value: i64,
) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: producer.into(),
            at_ms: Some(at_ms),
            idempotency_key: key.map(Into::into),
            causation: None,
            correlation: None,
        },
        body: Body::Fact {
            entity: parley::entity::EntityRef::parse(entity).unwrap(),
            attribute: attr.into(),
            value: Value::Int(value),
        },
    }
}

/// Where each record's frame lies: (seq, segment path, offset, length).
pub fn frame_map(log_dir: &Path) -> Vec<(u64, PathBuf, usize, usize)> {
    let mut out = Vec::new();
    for (first_seq, path) in list_segments(log_dir).unwrap() {
        let data = std::fs::read(&path).unwrap();
        let mut at = SEGMENT_HEADER_BYTES;
        let mut seq = first_seq;
        while let Parsed::Frame(f) = parse_frame(&data[at..]) {
            out.push((seq, path.clone(), at, f.len));
            at += f.len;
            seq += 1;
        }
    }
    out
}

/// Flips the bits of one byte of a file.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0xff;
    std::fs::write(path, data).unwrap();
}

/// The `parley` binary built for these tests.
pub fn parley_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parley"))
}

/// Makes `log/head` say a writer was running (no clean close) with records
/// up to `seq` acknowledged: the state a crash leaves behind.
pub fn unclean(dir: &Path, seq: u64, hash: [u8; 32]) {
    use parley::log::head::{self, HeadWriter, State};
    let log = dir.join("log");
    let last = head::read(&log).unwrap().evidence;
    let mut w = HeadWriter::open(&log, last).unwrap();
    w.record(State::Open, seq, hash).unwrap();
}

/// The hash of seq 1.
pub fn genesis_hash(dir: &Path) -> [u8; 32] {
    let data = std::fs::read(dir.join("log").join("00000000000000000001.seg")).unwrap();
    match parse_frame(&data[SEGMENT_HEADER_BYTES..]) {
        Parsed::Frame(f) => f.hash,
        _ => panic!("no genesis frame"),
    }
}

/// Writes, after the last record, the frames of a batch the writer never
/// finished: the first cut in half, the second complete (pages reach the disk
/// out of order). Returns the torn seq and the offset where it starts.
pub fn write_torn_batch(dir: &Path) -> (u64, usize) {
    use parley::log::encode_record;
    use parley::log::frame::write_frame;
    use parley::record::{Envelope, Record, FORMAT_VERSION};
    let frames = frame_map(&dir.join("log"));
    let (seq, path, at, len) = frames.last().unwrap().clone();
    let mut data = std::fs::read(&path).unwrap();
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&data[at + len - 32..at + len]);
    let mut buf = Vec::new();
    for s in [seq + 1, seq + 2] {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: s,
                recorded_at_ms: 5_000,
                producer: "a".into(),
                idempotency_key: None,
                causation: None,
                correlation: None,
                credential: None,
            },
            body: Body::Fact {
                entity: parley::entity::EntityRef::parse("shelf:T").unwrap(),
                attribute: "n".into(),
                value: Value::Int(1),
            },
        };
        let enc = encode_record(&record, &prev).unwrap();
        prev = enc.hash;
        write_frame(&mut buf, seq + 1, &enc);
    }
    let first_len = buf.len() / 2;
    buf[first_len / 2..first_len].fill(0); // the first frame is torn
    let torn_at = at + len;
    assert!(
        torn_at + buf.len() <= data.len(),
        "room in the segment for the torn batch"
    );
    data[torn_at..torn_at + buf.len()].copy_from_slice(&buf);
    std::fs::write(&path, &data).unwrap();
    (seq + 1, torn_at)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes (to prove a command wrote nothing).
pub fn snapshot_files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot_files(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}
pub mod server;
