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
use crate::log::scan::scan_dir;
use crate::log::segment::writer_running;
use crate::log::{head, LogError};
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
    match scan_dir(log_dir, 1, to, &mut check) {
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
