//! `parley verify`: recompute the whole chain, read-only, without opening the
//! ledger (so a damaged store can be inspected, never "repaired" by looking).

use std::path::Path;

use serde::Serialize;

use crate::log::scan::scan_dir;
use crate::log::LogError;
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl VerifyReport {
    fn bad(seq: u64, reason: String) -> VerifyReport {
        VerifyReport {
            ok: false,
            records: None,
            head_seq: None,
            head_hash: None,
            first_bad_seq: Some(seq),
            reason: Some(reason),
        }
    }
}

/// Verifies every segment, frame, hash, link, seq, the genesis record and the
/// order of time in the ledger at `data_dir`. Damage is a report, not an error;
/// an error means the directory could not be read at all.
pub fn verify_dir(data_dir: &Path) -> Result<VerifyReport, LogError> {
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Err(LogError::Layout(format!(
            "{} holds no ledger (no log/ directory)",
            data_dir.display()
        )));
    }
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
    match scan_dir(&log_dir, 1, u64::MAX, &mut check) {
        Ok(Some(head)) => Ok(VerifyReport {
            ok: true,
            records: Some(records),
            head_seq: Some(head.seq),
            head_hash: Some(to_hex(&head.hash)),
            first_bad_seq: None,
            reason: None,
        }),
        Ok(None) => Ok(VerifyReport::bad(1, "the log holds no records".into())),
        Err(LogError::Corrupt { seq, reason }) => Ok(VerifyReport::bad(seq, reason)),
        Err(e) => Err(e),
    }
}
