//! `parley verify`: recompute the whole chain, read-only, without the
//! writer's lock (a damaged store is inspected, never "repaired" by looking).
//!
//! Next to a running writer it verifies up to the durable head the writer
//! published when verify started, so a batch being written is never taken
//! for damage. Alone, it applies recovery's analysis first, so whatever a
//! writer's open would refuse (corruption, a missing or cut segment, a log
//! behind its acknowledged head) is reported here too, and a torn final write
//! (never acknowledged, which the next writer cuts off) is reported as such.

use std::path::Path;

use serde::Serialize;

use crate::log::recovery::{analyze, Proof};
use crate::log::scan::{list_segments, scan_dir};
use crate::log::segment::writer_running;
use crate::log::{head, Head, LogError, LogReader, Visit};
use crate::reader::LedgerRead;
use crate::record::{to_hex, Body};

/// The outcome of a full verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// `corrupt` (acknowledged data is damaged or missing) or `torn` (a final
    /// write that was never acknowledged; the next writer cuts it off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A writer was running: verified up to the head it had published.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub writer_running: bool,
}

impl VerifyReport {
    fn bad(seq: u64, damage: &'static str, reason: String) -> VerifyReport {
        VerifyReport {
            ok: false,
            records: None,
            head_seq: None,
            head_hash: None,
            first_bad_seq: Some(seq),
            damage: Some(damage),
            reason: Some(reason),
            writer_running: false,
        }
    }
}

/// Verifies every segment, frame, hash, link, seq, the genesis record and the
/// order of time in the ledger at `data_dir`. Damage is a report, not an error;
/// an error means the directory could not be read at all.
pub fn verify_dir(data_dir: &Path) -> Result<VerifyReport, LogError> {
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Err(LogError::NoLedger(data_dir.to_path_buf()));
    }
    let file = head::read(&log_dir)?;
    let running = writer_running(&log_dir);
    let to = if running {
        match file.live {
            Some((seq, _)) => seq,
            None => {
                return Ok(VerifyReport::bad(
                    1,
                    "corrupt",
                    "a writer runs but has published no durable head".into(),
                ))
            }
        }
    } else {
        let proof = Proof::gather(&log_dir, &data_dir.join("derived"))?;
        match analyze(&log_dir, proof) {
            Ok(tail) => {
                if let Some(t) = tail.torn {
                    let reason = format!(
                        "{} offset {}: {} (a torn final write, never acknowledged; the next writer cuts it off)",
                        t.segment.display(),
                        t.offset,
                        t.reason
                    );
                    return Ok(VerifyReport::bad(t.seq, "torn", reason));
                }
                tail.head.map_or(0, |h| h.seq)
            }
            Err(e) => match e.corrupt_seq() {
                Some(seq) => return Ok(VerifyReport::bad(seq, "corrupt", e.to_string())),
                None => return Err(e),
            },
        }
    };
    let mut report = check_chain(&log_dir, to)?;
    report.writer_running = running;
    Ok(report)
}

fn check_chain(log_dir: &Path, to: u64) -> Result<VerifyReport, LogError> {
    chain_report(to, |visit| scan_dir(log_dir, 1, to, visit))
}

/// Verifies a ledger an engine's reader reads (PostgreSQL) up to the head
/// `last` reads: every frame,
/// hash, link and seq, the genesis record and the order of time. Damage is a report, not an error.
pub fn verify_reader(
    reader: &dyn LogReader,
    last: impl FnOnce() -> Result<Option<Head>, LogError>,
) -> Result<VerifyReport, LogError> {
    let head = match last() {
        Ok(h) => h,
        Err(e) => match e.corrupt_seq() {
            Some(seq) => return Ok(VerifyReport::bad(seq, "corrupt", e.to_string())),
            None => return Err(e),
        },
    };
    let to = head.map_or(0, |h| h.seq);
    chain_report(to, |visit| {
        let mut last = None;
        reader.scan(1, to, &mut |r| {
            last = Some(Head {
                seq: r.record.envelope.seq,
                hash: r.hash,
                recorded_at_ms: r.record.envelope.recorded_at_ms,
            });
            visit(r)
        })?;
        Ok(last)
    })
}

/// Checks records `1..=to` as `scan` hands them out (it returns the last).
fn chain_report(
    to: u64,
    scan: impl FnOnce(&mut Visit<'_>) -> Result<Option<Head>, LogError>,
) -> Result<VerifyReport, LogError> {
    let mut records = 0u64;
    let mut last_at = 0u64;
    let mut check = |r: crate::record::StoredRecord| {
        let env = &r.record.envelope;
        let bad = |reason: &str| LogError::Corrupt {
            seq: env.seq,
            reason: reason.to_owned(),
        };
        match (&r.record.body, env.seq) {
            (Body::Genesis { .. }, 1) => {}
            (Body::Genesis { .. }, _) => return Err(bad("a genesis record after seq 1")),
            (_, 1) => return Err(bad("seq 1 is not a genesis record")),
            _ => {}
        }
        if env.recorded_at_ms < last_at {
            return Err(bad("recorded_at_ms goes backwards"));
        }
        last_at = env.recorded_at_ms;
        records += 1;
        Ok(())
    };
    if to == 0 {
        return Ok(VerifyReport::bad(
            1,
            "corrupt",
            "the log holds no records".into(),
        ));
    }
    match scan(&mut check) {
        Ok(Some(head)) if head.seq == to => Ok(VerifyReport {
            ok: true,
            records: Some(records),
            head_seq: Some(head.seq),
            head_hash: Some(to_hex(&head.hash)),
            first_bad_seq: None,
            damage: None,
            reason: None,
            writer_running: false,
        }),
        Ok(head) => {
            let end = head.map_or(0, |h| h.seq);
            Ok(VerifyReport::bad(
                end + 1,
                "corrupt",
                format!("the log ends at seq {end}, before seq {to}: records are missing"),
            ))
        }
        Err(LogError::Corrupt { seq, reason }) => Ok(VerifyReport::bad(seq, "corrupt", reason)),
        Err(e) => Err(e),
    }
}

/// `verify --derived`: every sealed segment's index file must equal one
/// rebuilt from the log, and (when no writer holds it) the derived store must
/// equal a fresh fold. The store is compared through a copy, so nothing under
/// `dir` is written. `None` when all agree.
pub fn derived_differences(dir: &Path) -> Result<Option<String>, crate::ledger::LedgerError> {
    let (view, _) = crate::reader::LogView::open(dir)
        .map_err(|e| crate::ledger::LedgerError::Setup(e.to_string()))?;
    let Some(files) = view.files() else {
        // A view opened on a data directory reads its segment files.
        return Err(crate::ledger::LedgerError::NoLedger(dir.to_path_buf()));
    };
    let head = view.head_seq();
    let segments = list_segments(files.log_dir())?;
    for (i, (first, path)) in segments.iter().enumerate() {
        let Some((next, _)) = segments.get(i + 1) else {
            break;
        };
        let index_path = files
            .index_dir()
            .join(crate::log::index::file_name(*first, false));
        let Ok(on_disk) = std::fs::read(&index_path) else {
            return Ok(Some(format!(
                "the index file of segment {first} is missing ({})",
                index_path.display()
            )));
        };
        let rebuilt = crate::reader::segment_index(files, *first, path, next - 1)?;
        if on_disk != rebuilt.encode(false) {
            return Ok(Some(format!(
                "the index file of segment {first} differs from the log ({})",
                index_path.display()
            )));
        }
    }
    if writer_running(files.log_dir()) {
        return Ok(None);
    }
    let store = dir.join("derived");
    if !store.is_dir() {
        return Ok(Some(
            "the derived store is missing (the next writer, or `parley rebuild`, rebuilds it)"
                .into(),
        ));
    }
    // The copy is removed when `copy` drops, after the store that uses it.
    let copy = tempfile::Builder::new()
        .prefix("parley-verify-")
        .tempdir()
        .map_err(|source| crate::ledger::LedgerError::Io {
            op: "create a temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;
    copy_dir(&store, &copy.path().join("derived"))?;
    let (derived, rebuilt) = crate::derived::Derived::open(&copy.path().join("derived"))?;
    let result = match rebuilt {
        Some(why) => Some(format!("the derived store does not open: {why}")),
        None => derived.differences(files, head)?,
    };
    drop(derived);
    Ok(result)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), crate::ledger::LedgerError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::ledger::LedgerError::Io { op, path, source }
    };
    std::fs::create_dir_all(to).map_err(io("create directory", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read directory", from))? {
        let entry = entry.map_err(io("read directory", from))?;
        let target = to.join(entry.file_name());
        if entry
            .file_type()
            .map_err(io("stat", &entry.path()))?
            .is_dir()
        {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io("copy", &entry.path()))?;
        }
    }
    Ok(())
}
