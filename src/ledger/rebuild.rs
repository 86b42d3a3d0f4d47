//! `parley rebuild`: the derived state (index files, derived store) made
//! again from the log, under the writer's lock, writing nothing under `log/`.

use std::path::Path;

use super::open::genesis_hash;
use super::LedgerError;
use crate::derived::Derived;
use crate::log::read::LogFiles;
use crate::log::recovery::Proof;
use crate::log::segment;
use crate::record::ZERO_HASH;

/// What `parley rebuild` did.
#[derive(Clone, Debug, Default)]
pub struct RebuildReport {
    pub records: u64,
    pub index_files: u32,
    /// A torn final write past the last valid record, left for a writer.
    pub torn_tail: Option<crate::log::recovery::TornTail>,
}

/// Rebuilds the derived state of `dir` (index files, derived store) from its
/// log, holding the writer lock so no writer runs meanwhile. Writes nothing
/// under `log/`: a torn final write is left for the next writer to cut off,
/// and corruption is refused.
pub fn rebuild(dir: &Path) -> Result<RebuildReport, LedgerError> {
    let log_dir = dir.join("log");
    if !log_dir.is_dir() {
        return Err(LedgerError::NoLedger(dir.to_path_buf()));
    }
    let _lock = segment::lock(&log_dir)?;
    let proof = Proof::gather(&log_dir, &dir.join("derived"))?;
    let tail = crate::log::recovery::analyze(&log_dir, proof)?;
    let index_dir = dir.join("index");
    for sub in [&index_dir, &dir.join("derived")] {
        match std::fs::remove_dir_all(sub) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LedgerError::Io {
                    op: "remove",
                    path: sub.clone(),
                    source,
                })
            }
        }
    }
    let files = LogFiles::new(&log_dir, &index_dir);
    let (derived, _) = Derived::open(&dir.join("derived"))?;
    let genesis = genesis_hash(&files, tail.head)?.unwrap_or(ZERO_HASH);
    derived.catch_up(&files, tail.head, genesis)?;
    let (active, written) = crate::reader::build_indexes(&files, tail.head, true, None)?;
    if !active.offsets.is_empty() {
        active
            .write(&index_dir, true)
            .map_err(|source| LedgerError::Io {
                op: "write",
                path: index_dir.clone(),
                source,
            })?;
    }
    let head = tail.head.map_or(0, |h| h.seq);
    if let Some(d) = derived.differences(&files, head)? {
        return Err(LedgerError::DerivedFailed(format!(
            "the rebuilt store disagrees with the log: {d}"
        )));
    }
    derived.flush()?;
    Ok(RebuildReport {
        records: head,
        index_files: written + u32::from(!active.offsets.is_empty()),
        torn_tail: tail.torn,
    })
}
