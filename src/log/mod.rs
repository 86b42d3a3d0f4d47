//! The log: the only truth. An append-only, blake3 hash-chained sequence of records
//! behind a small trait, with two engines beside it: segment files (default,
//! durable) and in-memory (tests, what-if).
//!
//! Architecture invariant: an engine's `append` returns only when the batch is
//! durable (for segment files: one write, one fdatasync). Nothing is acknowledged
//! before that, and nothing ever rewrites a record.

pub mod frame;
pub mod memory;
pub mod offsets;
pub mod scan;
pub mod segment;

use std::path::PathBuf;

pub use frame::EncodedRecord;

use crate::record::{chain_hash, Hash, Record, RecordError, StoredRecord};

/// The last record of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
    pub recorded_at_ms: u64,
}

/// What went wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Acknowledged data is damaged at `seq`.
    #[error("log is damaged at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("log layout: {0}")]
    Layout(String),
    #[error("append out of order: {0}")]
    OutOfOrder(String),
    #[error("record: {0}")]
    Record(#[from] RecordError),
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The seq named by a corruption error.
    pub fn corrupt_seq(&self) -> Option<u64> {
        match self {
            LogError::Corrupt { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Visitor of scanned records.
pub type Visit<'a> = dyn FnMut(StoredRecord) -> Result<(), LogError> + 'a;

/// Reads the log from any thread.
pub trait LogReader: Send + Sync {
    /// Visits records `from..=to` in order, checking every hash and link on the way.
    /// `to` must not exceed the durable head the caller was given.
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError>;

    /// The records at `seqs` (ascending, each at most the durable head), using a
    /// seq → offset index where the engine has one.
    fn read_indexed(
        &self,
        seqs: &[u64],
        _store: &dyn offsets::OffsetStore,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.read_seqs(seqs)
    }

    /// The records at `seqs` (ascending, each at most the durable head).
    fn read_seqs(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError> {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(seqs.len());
        let mut wanted = seqs.iter().peekable();
        self.scan(first, last, &mut |r| {
            if wanted.peek() == Some(&&r.record.envelope.seq) {
                wanted.next();
                out.push(r);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// A log engine, owned by the single writer.
pub trait LogEngine: Send {
    /// The last durable record, `None` for an empty log.
    fn head(&self) -> Option<Head>;
    /// Appends a batch durably; returns only once it is on stable storage.
    /// After an error the engine's state on disk is unknown: the writer stops.
    fn append(&mut self, batch: &[EncodedRecord]) -> Result<(), LogError>;
    /// A reader for other threads.
    fn reader(&self) -> std::sync::Arc<dyn LogReader>;
    /// Frame offsets of segments sealed since the last call: (first seq, offsets).
    fn take_sealed_offsets(&mut self) -> Vec<(u64, Vec<u64>)> {
        Vec::new()
    }
}

/// Encodes and hashes a record that follows `prev_hash`.
pub fn encode_record(record: &Record, prev_hash: &Hash) -> Result<EncodedRecord, RecordError> {
    let payload = record.canonical_bytes()?;
    Ok(EncodedRecord {
        seq: record.envelope.seq,
        recorded_at_ms: record.envelope.recorded_at_ms,
        prev_hash: *prev_hash,
        hash: chain_hash(prev_hash, &payload),
        payload,
    })
}

/// Checks that `batch` continues `head`: gapless seqs, linked hashes, time not
/// going backwards. Engines call it before writing (a precondition, not a guess).
pub fn check_continues(head: Option<Head>, batch: &[EncodedRecord]) -> Result<(), LogError> {
    let (mut seq, mut hash, mut at) = match head {
        Some(h) => (h.seq, h.hash, h.recorded_at_ms),
        None => (0, crate::record::ZERO_HASH, 0),
    };
    for r in batch {
        if r.seq != seq + 1 || r.prev_hash != hash || r.recorded_at_ms < at {
            return Err(LogError::OutOfOrder(format!(
                "record seq {} does not continue seq {seq}",
                r.seq
            )));
        }
        seq = r.seq;
        hash = r.hash;
        at = r.recorded_at_ms;
    }
    Ok(())
}
