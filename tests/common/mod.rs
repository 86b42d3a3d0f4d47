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
            entity: entity.into(),
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
