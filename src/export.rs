//! Export and import: the log as JSON Lines, one record per line, with its hashes.
//! Import re-encodes every record, recomputes every hash and refuses the file at
//! the first record that does not verify, so it is also the tamper check.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, LedgerError, Options};
use crate::log::recovery::Proof;
use crate::log::segment::{self, SegmentLog};
use crate::log::{EncodedRecord, LogEngine, LogError};
use crate::reader::LedgerRead;
use crate::record::{
    chain_hash, hash_from_hex, to_hex, Body, Envelope, Record, StoredRecord, ZERO_HASH,
};

/// Records written per batch during import.
const IMPORT_BATCH: usize = 1024;

/// One line of an export: a record, its hashes in hex, its envelope and body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedRecord {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub format: u16,
    pub recorded_at_ms: u64,
    pub producer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<u64>,
    pub body: Body,
}

impl From<&StoredRecord> for ExportedRecord {
    fn from(r: &StoredRecord) -> ExportedRecord {
        let env = &r.record.envelope;
        ExportedRecord {
            seq: env.seq,
            prev_hash: to_hex(&r.prev_hash),
            hash: to_hex(&r.hash),
            format: env.format,
            recorded_at_ms: env.recorded_at_ms,
            producer: env.producer.clone(),
            idempotency_key: env.idempotency_key.clone(),
            causation: env.causation,
            correlation: env.correlation.clone(),
            credential: env.credential,
            body: r.record.body.clone(),
        }
    }
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("record seq {seq} does not verify: {reason}")]
    BadRecord { seq: u64, reason: String },
    #[error("{} already holds a ledger; import into a new directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("the export holds no records")]
    Empty,
    #[error("the ledger already holds records (up to seq {0}); import into a new ledger")]
    Occupied(u64),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Writes every durable record of `ledger` as JSON Lines; returns the count.
pub fn export(ledger: &dyn LedgerRead, out: &mut dyn Write) -> Result<u64, LedgerError> {
    let mut count = 0;
    let mut io_error = None;
    ledger
        .scan(1, u64::MAX, &mut |r| {
            // serde_json's errors while writing are the output's (I/O) errors.
            let written = serde_json::to_writer(&mut *out, &ExportedRecord::from(&r))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written {
                io_error = Some(e);
                return Err(LogError::Stopped);
            }
            count += 1;
            Ok(())
        })
        .map_err(|e| match io_error.take() {
            Some(source) => LedgerError::Io {
                op: "write",
                path: PathBuf::from("export output"),
                source,
            },
            None => LedgerError::Log(e),
        })?;
    out.flush().map_err(|source| LedgerError::Io {
        op: "flush",
        path: PathBuf::from("export output"),
        source,
    })?;
    Ok(count)
}

/// What is wrong with one exported line.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("line holds seq {got}, expected seq {expected}")]
    Seq { got: u64, expected: u64 },
    #[error("{0} is not 64 hex digits")]
    NotHex(&'static str),
    #[error("prev_hash does not link to the previous record")]
    Unlinked,
    #[error("a genesis record after seq 1")]
    LateGenesis,
    #[error("seq 1 is not a genesis record")]
    NoGenesis,
    #[error("recorded_at_ms goes backwards")]
    TimeBackwards,
    #[error("unknown format version {0}")]
    Format(u16),
    #[error("{0}")]
    Encode(#[from] crate::record::RecordError),
    #[error("hash does not match the record's content (was it changed?)")]
    HashMismatch,
}

/// Checks one exported line against the chain so far and re-encodes it.
fn check_line(
    line: &str,
    expected_seq: u64,
    prev: &[u8; 32],
    last_at: u64,
) -> Result<(EncodedRecord, u64), LineError> {
    let ex: ExportedRecord = serde_json::from_str(line)?;
    if ex.seq != expected_seq {
        return Err(LineError::Seq {
            got: ex.seq,
            expected: expected_seq,
        });
    }
    let prev_hash = hash_from_hex(&ex.prev_hash).ok_or(LineError::NotHex("prev_hash"))?;
    let hash = hash_from_hex(&ex.hash).ok_or(LineError::NotHex("hash"))?;
    if prev_hash != *prev {
        return Err(LineError::Unlinked);
    }
    match (&ex.body, ex.seq) {
        (Body::Genesis { .. }, 1) => {}
        (Body::Genesis { .. }, _) => return Err(LineError::LateGenesis),
        (_, 1) => return Err(LineError::NoGenesis),
        _ => {}
    }
    if ex.recorded_at_ms < last_at {
        return Err(LineError::TimeBackwards);
    }
    let record = Record {
        envelope: Envelope {
            format: ex.format,
            seq: ex.seq,
            recorded_at_ms: ex.recorded_at_ms,
            producer: ex.producer,
            idempotency_key: ex.idempotency_key,
            causation: ex.causation,
            correlation: ex.correlation,
            credential: ex.credential,
        },
        body: ex.body,
    };
    if record.envelope.format != crate::record::FORMAT_VERSION {
        return Err(LineError::Format(record.envelope.format));
    }
    let payload = record.canonical_bytes()?;
    if chain_hash(&prev_hash, &payload) != hash {
        return Err(LineError::HashMismatch);
    }
    let at = record.envelope.recorded_at_ms;
    let enc = EncodedRecord {
        seq: ex.seq,
        recorded_at_ms: at,
        prev_hash,
        hash,
        payload,
    };
    Ok((enc, at))
}

/// Rebuilds a ledger in `dir` (which must hold none) from an export, only if
/// every record verifies. The log is written beside its final place and moved
/// there once complete, so a refused import leaves no ledger behind.
pub fn import(dir: &Path, file: &Path, opts: Options) -> Result<(Ledger, u64), ImportError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { op, path, source }
    };
    let log_dir = dir.join("log");
    if log_dir.exists() {
        return Err(ImportError::NotEmpty(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let staging = dir.join("log.importing");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    }
    let result = import_into(&staging, file, opts.segment_bytes);
    match result {
        Ok(count) => {
            std::fs::rename(&staging, &log_dir).map_err(io("rename", &staging))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync directory", dir))?;
            let (ledger, _) = Ledger::open(dir, opts)?;
            Ok((ledger, count))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn import_into(staging: &Path, file: &Path, segment_bytes: u64) -> Result<u64, ImportError> {
    std::fs::create_dir_all(staging).map_err(|source| ImportError::Io {
        op: "create directory",
        path: staging.to_path_buf(),
        source,
    })?;
    let _lock = segment::lock(staging).map_err(|e| ImportError::Io {
        op: "lock",
        path: staging.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let index_dir = staging.join("..").join("index");
    let (mut engine, _) = SegmentLog::open(
        staging,
        segment_bytes,
        Proof::default(),
        &index_dir,
        None,
        crate::log::disk::OsDisk::shared(),
    )?;
    engine.begin()?;
    let seq = append_export(&mut engine, file)?;
    // The import is complete and durable: a clean close for the new ledger.
    engine.record_evidence(true)?;
    Ok(seq)
}

/// Reads the export at `file`, checking every record (seq, hash, link, time),
/// and hands each one to `each`; returns the count (an empty export is an error).
fn read_export(
    file: &Path,
    each: &mut dyn FnMut(EncodedRecord) -> Result<(), ImportError>,
) -> Result<u64, ImportError> {
    let input = File::open(file).map_err(|source| ImportError::Io {
        op: "open",
        path: file.to_path_buf(),
        source,
    })?;
    let (mut prev, mut last_at, mut seq) = (ZERO_HASH, 0u64, 0u64);
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let line = line.map_err(|source| ImportError::Io {
            op: "read",
            path: file.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let (enc, at) = check_line(&line, seq + 1, &prev, last_at).map_err(|reason| {
            ImportError::BadRecord {
                seq: seq + 1,
                reason: format!("line {}: {reason}", index + 1),
            }
        })?;
        seq += 1;
        prev = enc.hash;
        last_at = at;
        each(enc)?;
    }
    if seq == 0 {
        return Err(ImportError::Empty);
    }
    Ok(seq)
}

/// Appends every record of the export at `file` to `engine`, in batches.
fn append_export(engine: &mut dyn LogEngine, file: &Path) -> Result<u64, ImportError> {
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let count = read_export(file, &mut |enc| {
        batch.push(enc);
        if batch.len() == IMPORT_BATCH {
            engine.append(&batch, &mut Vec::new())?;
            batch.clear();
        }
        Ok(())
    })?;
    engine.append(&batch, &mut Vec::new())?;
    Ok(count)
}

/// Rebuilds a ledger on another engine (PostgreSQL) from an export: the whole
/// export is checked first, so a refused import writes nothing; then the
/// engine, which must hold no ledger, gets every record, and the ledger opens.
pub fn import_engine<E: LogEngine + 'static>(
    open: impl FnOnce() -> Result<E, LogError>,
    file: &Path,
    opts: Options,
) -> Result<(Ledger, u64), ImportError> {
    read_export(file, &mut |_| Ok(()))?;
    let mut engine = open()?;
    if let Some(h) = engine.head() {
        return Err(ImportError::Occupied(h.seq));
    }
    let count = append_export(&mut engine, file)?;
    let ledger = Ledger::with_engine(Box::new(engine), opts)?;
    Ok((ledger, count))
}
