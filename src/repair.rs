//! `parley repair`: the way out of a refused ledger, for the damage that can
//! be removed without losing an acknowledged record.
//!
//! [`plan`] reads only and says what it would do and why:
//! - bytes past the last whole write unit that no evidence shows were
//!   acknowledged (a write torn by a crash, a flipped bit in the zeros after
//!   the data, a damaged last unit nothing shows was acknowledged) are cut:
//!   zeroed in place, the file keeping its length;
//! - a damaged unit trailer whose frames all check is written again from
//!   those frames (no record is touched);
//! - damage inside records that evidence shows were acknowledged is refused:
//!   only a replica can restore them.
//!
//! [`apply`] takes the writer's lock, makes the same plan again (it must not
//! have changed), keeps a copy of every byte it replaces under
//! `DIR/repair/` (fsynced before anything changes), then writes and syncs.
//!
//! Architecture invariant: repair never removes or changes a byte of a
//! record that any evidence (log/head, its live head, the derived store's
//! marker, a later batch) shows was acknowledged.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::log::recovery::{examine, legacy, units, Examined, Proof};
use crate::log::scan::check_dir;
use crate::log::segment::{lock, LockError};
use crate::log::unit::append_trailer;
use crate::log::LogError;

/// What repair would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Plan {
    /// The log needs no repair.
    Nothing,
    /// Zero `bytes` bytes of `segment` from `offset`: the records from
    /// `first_seq` on that they held (if any) were never acknowledged, or
    /// nothing shows they were.
    Cut {
        segment: PathBuf,
        offset: u64,
        bytes: u64,
        first_seq: u64,
        /// The bytes show they were never written whole (so never
        /// acknowledged); `false`: written whole, and nothing shows they were
        /// acknowledged.
        never_written: bool,
        why: String,
    },
    /// Write the trailer of the unit at `unit_start` again, from its frames.
    RewriteTrailer {
        segment: PathBuf,
        unit_start: u64,
        offset: u64,
        records: u64,
        why: String,
    },
    /// Damage repair must not touch.
    Refuse { seq: u64, why: String },
}

/// Why repair could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepairError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{} holds no ledger (no log/ directory)", .0.display())]
    NoLedger(PathBuf),
    #[error("the log changed since the plan was shown; run `parley repair` again")]
    Changed,
    #[error("repair refuses: {0}")]
    Refused(String),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What repair would do to the ledger in `dir`. Reads only.
pub(crate) fn plan(dir: &Path) -> Result<Plan, RepairError> {
    let log = dir.join("log");
    if !log.is_dir() {
        return Err(RepairError::NoLedger(dir.to_path_buf()));
    }
    let proof = Proof::gather(&log, &dir.join("derived"))?;
    let ex = match examine(&log, &proof) {
        Ok(ex) => ex,
        Err(e) => return refuse_for(e),
    };
    let head_seq = ex.tail.head.map_or(0, |h| h.seq);
    // Damage before the last whole unit has later units after it: those
    // records were acknowledged.
    if let Err(e) = check_dir(&log, 1, head_seq) {
        return refuse_for(e);
    }
    let Some(damage) = &ex.damage else {
        return Ok(match (&ex.tail.last, ex.truncated) {
            (Some(_), true) if !(proof.clean() && proof.acknowledged() <= head_seq) => {
                Plan::Refuse {
                    seq: head_seq + 1,
                    why: "the last segment file was cut short and records after it may be gone"
                        .into(),
                }
            }
            _ => Plan::Nothing,
        });
    };
    judge(&ex, damage, &proof, head_seq)
}

fn refuse_for(e: LogError) -> Result<Plan, RepairError> {
    match e.corrupt_seq() {
        Some(seq) => Ok(Plan::Refuse {
            seq,
            why: format!("{e}; this is inside records that were acknowledged, and only a replica can restore them"),
        }),
        None => Err(e.into()),
    }
}

fn judge(
    ex: &Examined,
    damage: &units::Damage,
    proof: &Proof,
    head_seq: u64,
) -> Result<Plan, RepairError> {
    let Some(last) = &ex.tail.last else {
        return Ok(Plan::Nothing);
    };
    let first = head_seq + 1;
    if ex.truncated {
        return Ok(Plan::Refuse {
            seq: damage.seq,
            why: "the last segment file was cut short: what stood after its end is gone".into(),
        });
    }
    if damage.trailer && last.version >= 2 {
        return Ok(Plan::RewriteTrailer {
            segment: last.path.clone(),
            unit_start: last.end,
            offset: damage.at,
            records: damage.seq + 1 - first,
            why: format!(
                "the trailer of the write unit holding seqs {first} to {} is damaged ({}); every record in it checks",
                damage.seq, damage.reason
            ),
        });
    }
    let acked = proof
        .acknowledged()
        .max(legacy::proven_by_later_batches(&ex.window));
    if acked >= first {
        return Ok(Plan::Refuse {
            seq: damage.seq,
            why: format!(
                "{} at {} offset {}: records up to seq {acked} were acknowledged, and the damage is inside them; only a replica can restore them",
                damage.reason,
                last.path.display(),
                damage.at
            ),
        });
    }
    let (never_written, why) = if proof.clean() {
        (
            true,
            format!(
                "{}: the last writer closed cleanly at seq {head_seq}, so nothing here was acknowledged",
                damage.reason
            ),
        )
    } else if last.version >= 2 {
        match units::classify(last.end, &ex.window) {
            units::Verdict::NeverWritten(w) => (true, format!("{}: {w}", damage.reason)),
            units::Verdict::Damaged(w) => (
                false,
                format!(
                    "{}: {w}; no evidence shows it was acknowledged, but it may have been: if so, those records are lost unless a replica has them",
                    damage.reason
                ),
            ),
        }
    } else {
        (
            false,
            format!(
                "{}: no evidence shows these records were acknowledged",
                damage.reason
            ),
        )
    };
    let bytes = extent_to_end(&last.path, last.end)?;
    Ok(Plan::Cut {
        segment: last.path.clone(),
        offset: last.end,
        bytes,
        first_seq: first,
        never_written,
        why,
    })
}

/// Bytes from `from` to the last non-zero byte of the file.
fn extent_to_end(path: &Path, from: u64) -> Result<u64, RepairError> {
    let file = std::fs::File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| LogError::io("stat", path, e))?
        .len();
    let mut last = from;
    let mut offset = from;
    let mut buf = vec![0u8; 1 << 16];
    while offset < len {
        let n = file
            .read_at(&mut buf, offset)
            .map_err(|e| LogError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if let Some(p) = buf[..n].iter().rposition(|b| *b != 0) {
            last = offset + p as u64 + 1;
        }
        offset += n as u64;
    }
    Ok(last - from)
}

/// What [`apply`] did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Applied {
    pub plan: Plan,
    /// Where the replaced bytes were kept.
    pub saved: Option<PathBuf>,
}

/// Carries out `shown` (what [`plan`] returned and the user agreed to) on
/// the ledger in `dir`, holding the writer's lock.
pub(crate) fn apply(dir: &Path, shown: &Plan) -> Result<Applied, RepairError> {
    let log = dir.join("log");
    let _lock = lock(&log)?;
    let now = plan(dir)?;
    if &now != shown {
        return Err(RepairError::Changed);
    }
    let saved = match &now {
        Plan::Nothing => None,
        Plan::Refuse { why, .. } => return Err(RepairError::Refused(why.clone())),
        Plan::Cut {
            segment,
            offset,
            bytes,
            ..
        } => {
            let len = usize::try_from(*bytes).map_err(|_| LogError::SegmentTooLarge(*bytes))?;
            let saved = save(dir, segment, *offset, len, &now)?;
            write_synced(segment, *offset, &vec![0u8; len])?;
            Some(saved)
        }
        Plan::RewriteTrailer {
            segment,
            unit_start,
            offset,
            records,
            ..
        } => {
            let file =
                std::fs::File::open(segment).map_err(|e| LogError::io("open", segment, e))?;
            let mut unit = vec![0u8; usize::try_from(offset - unit_start).unwrap_or(0)];
            file.read_exact_at(&mut unit, *unit_start)
                .map_err(|e| LogError::io("read", segment, e))?;
            let mut trailer = Vec::new();
            let n = u32::try_from(*records).map_err(|_| LogError::UnitTooLarge(unit.len()))?;
            append_trailer(&mut trailer, *unit_start, &unit, n);
            let saved = save(dir, segment, *offset, trailer.len(), &now)?;
            write_synced(segment, *offset, &trailer)?;
            Some(saved)
        }
    };
    Ok(Applied { plan: now, saved })
}

/// Keeps the bytes about to be replaced, and the plan, under `DIR/repair/`
/// (outside `log/`), durably, before anything changes.
fn save(
    dir: &Path,
    segment: &Path,
    offset: u64,
    len: usize,
    plan: &Plan,
) -> Result<PathBuf, RepairError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| RepairError::Io { op, path, source }
    };
    let out = dir.join("repair");
    std::fs::create_dir_all(&out).map_err(io("create directory", &out))?;
    let name = segment
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    let file = std::fs::File::open(segment).map_err(io("open", segment))?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, offset)
        .map_err(io("read", segment))?;
    let base = out.join(format!("{name}@{offset}"));
    let data = base.with_extension("bin");
    let note = base.with_extension("json");
    let text = serde_json::to_vec_pretty(plan).unwrap_or_default();
    for (path, content) in [(&data, &bytes), (&note, &text)] {
        let f = std::fs::File::create(path).map_err(io("create", path))?;
        f.write_all_at(content, 0).map_err(io("write", path))?;
        f.sync_all().map_err(io("fsync", path))?;
    }
    std::fs::File::open(&out)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", &out))?;
    Ok(data)
}

fn write_synced(path: &Path, offset: u64, bytes: &[u8]) -> Result<(), RepairError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io("open", path, e))?;
    file.write_all_at(bytes, offset)
        .map_err(|e| LogError::io("write", path, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fdatasync", path, e))?;
    Ok(())
}
