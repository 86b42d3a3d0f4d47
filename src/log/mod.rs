//! The log: the only truth. An append-only, blake3 hash-chained sequence of records
//! behind a small trait, with two engines beside it: segment files (default,
//! durable) and in-memory (tests, what-if).
//!
//! Architecture invariant: an engine's `append` returns only when the batch is
//! durable (for segment files: one write, one fdatasync). Nothing is acknowledged
//! before that, and nothing ever rewrites a record.

pub mod crash_states;
pub mod disk;
pub mod fault;
pub mod frame;
pub mod head;
pub mod index;
pub mod marker;
pub mod memory;
pub mod open_check;
pub mod postgres;
pub mod read;
pub mod recovery;
pub mod scan;
pub mod seal;
pub mod segment;
pub mod trace;
pub mod unit;

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
    /// A segment file is shorter than it was created: data after `last_seq`
    /// may be gone.
    #[error("{} is {len} bytes but was created with {capacity}: the file was cut short after seq {last_seq}, and whatever was written after it is gone", path.display())]
    Truncated {
        path: PathBuf,
        len: u64,
        capacity: u64,
        last_seq: u64,
    },
    #[error("seq {seq} is beyond the log, which ends at seq {head}")]
    BeyondHead { seq: u64, head: u64 },
    #[error("seq {0} is not in the log")]
    NotInLog(u64),
    #[error("unexpected segment file name {0} in the log directory (segments are named <20-digit first seq>.seg)")]
    BadSegmentName(String),
    #[error("{} holds data; it is not a leftover of an interrupted segment creation (rename it back to .seg, or move it away)", .0.display())]
    StrayTemp(PathBuf),
    #[error("segment size {bytes} is below the minimum of {min} bytes")]
    SegmentTooSmall { bytes: u64, min: u64 },
    #[error("segment size {0} is too large for this system")]
    SegmentTooLarge(u64),
    #[error("a write unit of {0} bytes of frames is too large to frame")]
    UnitTooLarge(usize),
    /// An earlier write or fdatasync on this log failed: nothing more is
    /// written or synced until the ledger is reopened (and recovered).
    #[error("an earlier write to the log failed ({0}); nothing more is written or acknowledged until the ledger is reopened, which recovers it")]
    WriteFailed(String),
    #[error("the writer has no active segment to append to")]
    NoActiveSegment,
    /// The writer's `log/` directory was moved, replaced or deleted while it ran.
    #[error("{} is no longer the directory this writer locked (it was moved, replaced or deleted): the writer stops, and nothing more is acknowledged", .0.display())]
    Replaced(PathBuf),
    #[error("{} holds no ledger (no log/ directory)", .0.display())]
    NoLedger(PathBuf),
    #[error("the writer's log is empty")]
    EmptyWriterLog,
    #[error("the {0} lock was poisoned by a panicked thread")]
    Poisoned(&'static str),
    /// The projector that indexes the active segment stopped short of the
    /// head: an answer from its index could miss records.
    #[error("the entity index stopped at seq {indexed} of {head} (the projector failed; reopen the ledger)")]
    IndexBehind { indexed: u64, head: u64 },
    #[error("{0} panicked")]
    ThreadPanicked(&'static str),
    /// The entity index a node keeps in its derived store (for an engine
    /// without index files) could not be read.
    #[error("the entity index could not be read: {0}")]
    EntityIndex(String),
    /// PostgreSQL refused or could not be reached (`store` has no password).
    #[error("PostgreSQL at {store}: {op}: {source}")]
    Postgres {
        op: &'static str,
        store: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error("the store is not a valid PostgreSQL connection string (postgres://user@host:port/dbname?options or host=… dbname=…)")]
    StoreAddress,
    #[error("bad ledger name: {0}")]
    BadLedgerName(String),
    #[error("a writer's lease of {0} ms is outside 300..=60000 ms")]
    BadLease(u64),
    /// Another node writes this ledger and its lease is live.
    #[error("ledger {ledger} is written by {holder} (lease epoch {epoch}, {remaining_ms} ms left by the database's clock); this node does not write it")]
    LeaseHeld {
        ledger: String,
        holder: String,
        epoch: i64,
        remaining_ms: i64,
    },
    /// This writer may no longer append: its lease was taken or ran out.
    #[error("this writer's lease on ledger {ledger} (epoch {epoch}) is no longer valid: {why}; it appends nothing more")]
    Fenced {
        ledger: String,
        epoch: i64,
        why: String,
    },
    #[error("append out of order: {0}")]
    OutOfOrder(String),
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// A pipelined scan's reading thread stopped because the visitor did
    /// (the visitor's own error is the one returned).
    #[error("the scan stopped: its visitor returned early")]
    Stopped,
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The seq named by a corruption error (for a cut segment: the first
    /// seq that may be missing).
    pub fn corrupt_seq(&self) -> Option<u64> {
        match self {
            LogError::Corrupt { seq, .. } => Some(*seq),
            LogError::Truncated { last_seq, .. } => Some(last_seq + 1),
            _ => None,
        }
    }
}

/// Visitor of scanned records.
pub type Visit<'a> = dyn FnMut(StoredRecord) -> Result<(), LogError> + 'a;

/// Visitor of scanned records that may stop the scan.
pub type Until<'a> = dyn FnMut(StoredRecord) -> std::ops::ControlFlow<()> + 'a;

/// Runs `scan` with a visitor that stops it, by [`LogError::Stopped`], where
/// `visit` breaks; that stop is the caller's and not an error.
pub fn until(
    visit: &mut Until<'_>,
    scan: impl FnOnce(&mut Visit<'_>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut broke = false;
    let result = scan(&mut |r| {
        if visit(r).is_break() {
            broke = true;
            return Err(LogError::Stopped);
        }
        Ok(())
    });
    match result {
        Err(LogError::Stopped) if broke => Ok(()),
        other => other,
    }
}

/// Where a record's frame stands: (the first seq of its segment, offset).
/// The in-memory engine has one "segment" (0) and uses the index as offset.
pub type Location = (u64, u64);

/// Reads the log from any thread; every record returned is checked (hash,
/// link or seq). Callers never ask beyond the durable head they were given.
pub trait LogReader: Send + Sync {
    /// Visits records `from..=to` in order, checking every hash and link.
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError>;
    /// Checks records `from..=to` (every hash, link and frame) without
    /// handing them out; engines may skip decoding them.
    fn check(&self, from: u64, to: u64) -> Result<(), LogError> {
        self.scan(from, to, &mut |_| Ok(()))
    }
    /// The writer's check at open of records `1..=to` (every hash, link and
    /// frame; damage reported at the lowest seq). Engines may use what they
    /// know of their own files (segment seals) to check faster, and the
    /// writer's open may leave such derived files behind; nothing else calls it.
    fn check_opening(&self, to: u64) -> Result<(), LogError> {
        split_check(self, to)
    }
    /// Visits records `from..=to` in order until `visit` breaks (then `Ok`):
    /// a reader that found what it looked for reads no further.
    fn scan_until(&self, from: u64, to: u64, visit: &mut Until<'_>) -> Result<(), LogError> {
        until(visit, |v| self.scan(from, to, v))
    }
    /// The records at `seqs` (ascending, each at most `head`).
    fn read(&self, seqs: &[u64], head: u64) -> Result<Vec<StoredRecord>, LogError>;
    /// Every seq up to `head` whose record names `entity` (its text form), ascending.
    fn entity_seqs(&self, entity: &str, head: u64) -> Result<Vec<u64>, LogError>;
}

/// Records below which `split_check` does not split its work.
const CHECK_SPLIT_MIN: u64 = 256;

/// Checks records `1..=to` (every hash, link and frame, without decoding),
/// on two threads for a long log: `1..mid` and `mid..=to`. A check covers
/// every frame from the start of the segment it starts in, so the two ranges
/// together check every record and every link; when both find damage, the
/// lower seq is reported (the first range's).
pub fn split_check<R: LogReader + ?Sized>(reader: &R, to: u64) -> Result<(), LogError> {
    if to == 0 {
        return Ok(());
    }
    if to < CHECK_SPLIT_MIN {
        return reader.check(1, to);
    }
    let mid = to / 2;
    debug_assert!(1 < mid && mid < to);
    let (low, high) = std::thread::scope(|s| {
        let high = s.spawn(|| reader.check(mid, to));
        let low = reader.check(1, mid - 1);
        // A panicked check is a bug; report it as a failure to read.
        let high = high.join().unwrap_or(Err(LogError::ThreadPanicked(
            "the log check's second thread",
        )));
        (low, high)
    });
    low.and(high)
}

/// A log engine, owned by the single writer.
pub trait LogEngine: Send {
    /// The last durable record, `None` for an empty log.
    fn head(&self) -> Option<Head>;
    /// Appends a batch durably; returns only once it is on stable storage,
    /// pushing each record's location to `at`. After an error the engine's
    /// state on disk is unknown: the writer stops.
    fn append(&mut self, batch: &[EncodedRecord], at: &mut Vec<Location>) -> Result<(), LogError>;
    /// A reader for other threads.
    fn reader(&self) -> std::sync::Arc<dyn LogReader>;
    /// The writer takes over: records the durable head as evidence (state
    /// "open") and publishes it for readers. Called once every check at open passed.
    fn begin(&mut self) -> Result<(), LogError> {
        Ok(())
    }
    /// Records the durable head as evidence (`log/head`); `closed` at a clean close.
    fn record_evidence(&mut self, _closed: bool) -> Result<(), LogError> {
        Ok(())
    }
}

/// A visitor that collects the seqs of the records naming `entity` (its
/// text form): the scan engines without an entity index use.
pub fn entity_collector<'a>(
    entity: &'a str,
    out: &'a mut Vec<u64>,
) -> impl FnMut(StoredRecord) -> Result<(), LogError> + 'a {
    move |r| {
        if r.record
            .index_entities()
            .iter()
            .any(|e| e.to_string() == entity)
        {
            out.push(r.record.envelope.seq);
        }
        Ok(())
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
