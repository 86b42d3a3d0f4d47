//! Recovery analysis: what the end of the log is, and whether damage there is
//! a torn write (never acknowledged: a writer may cut it off) or corruption
//! of acknowledged data (refused by every command, never cut off).
//!
//! The argument (ARCHITECTURE.md, "Recovery"):
//! 1. Only the write in flight at a crash can be torn: one write unit of the
//!    last segment, at most [`WRITE_UNIT_BYTES`] plus one frame (and its unit
//!    header and trailer) past the end of the valid data.
//! 2. A command is acknowledged only after its batch's fdatasync, and the
//!    next batch is written only after the previous batch's acknowledgements.
//!    Every frame names the first seq of its batch, so a valid frame of a
//!    batch starting at B proves every seq below B was acknowledged.
//! 3. Evidence ([`Proof`]), the same for a writer's open and for every read
//!    command: `log/head`'s fsynced evidence (at open, about every second,
//!    at a clean close) and its live head (after every batch, before its
//!    acknowledgements), and the derived store's applied marker file. Each
//!    names a (seq, hash) that was durable when it was written and must be
//!    the log's; every seq up to it was acknowledged. A clean close means
//!    nothing was written after it.
//! 4. Damage at seq S is a torn write only if the last writer did not close
//!    cleanly, S is above every piece of evidence, nothing lies past the
//!    reach of one write unit, and the unit itself shows it was never written
//!    whole (`units`: its redundant header and trailer; `legacy` for segments
//!    of older builds). After a process crash in the same boot (the evidence
//!    names the kernel's boot id) only the prefix a killed `pwrite` leaves is
//!    torn. Anything else is corruption.
//!
//! This module only reads. Cutting a torn write off is the writer's job
//! (`segment::SegmentLog::open`), and `parley repair`'s.

mod closed;
pub(crate) mod legacy;
mod proof;
pub mod units;
mod walk;

pub use closed::closed_head;
pub use proof::{genesis_hash, Proof};

use crate::log::fault::Fault;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame;
use super::scan::{list_segments, open_segment, scan_dir, Opened};
use super::unit::{TRAILER_FIXED_BYTES, UNIT_HEADER_BYTES};
use super::{Head, LogError};
use crate::record::{Hash, Record, RECORD_BYTES_MAX};

/// Most bytes of frames one write (and its fdatasync) carries.
pub const WRITE_UNIT_BYTES: usize = 8 << 20;
/// How far past the end of valid data a torn write can reach: one unit of
/// at most [`WRITE_UNIT_BYTES`] plus one record, with its header and trailer.
pub const TAIL_WINDOW_BYTES: usize = UNIT_HEADER_BYTES
    + WRITE_UNIT_BYTES
    + RECORD_BYTES_MAX
    + frame::OVERHEAD_BYTES
    + TRAILER_FIXED_BYTES
    + 4 * ((WRITE_UNIT_BYTES + RECORD_BYTES_MAX + frame::OVERHEAD_BYTES) / 512 + 2);

/// A torn final write: never acknowledged; a writer cuts it off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The seq its first damaged frame would have had.
    pub seq: u64,
    pub segment: PathBuf,
    pub offset: u64,
    /// Bytes from `offset` to the last non-zero byte of the damage.
    pub bytes: u64,
    pub reason: String,
}

/// The last segment as recovery sees it.
#[derive(Clone, Debug)]
pub struct LastSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Its preallocated size (from its header).
    pub capacity: u64,
    /// Its format version: a writer appends only to version 2.
    pub version: u32,
    /// Where its valid data ends.
    pub end: u64,
    /// Where the last whole write unit before `end` begins (version 2).
    pub last_unit: Option<u64>,
    /// The offset of each valid frame.
    pub offsets: Vec<u64>,
    /// The link (prev hash) of its first valid frame.
    pub first_prev: Option<Hash>,
}

/// What the end of the log is.
#[derive(Clone, Debug, Default)]
pub struct Tail {
    /// The last valid record (`None`: an empty log).
    pub head: Option<Head>,
    pub last: Option<LastSegment>,
    /// A torn final write past `head`, if any.
    pub torn: Option<TornTail>,
    /// The segment file was cut short in its preallocated zeros; evidence
    /// shows nothing acknowledged was in the part cut off.
    pub short_segment: bool,
}

/// The last record of the walk, decoded for its time. A self-valid frame
/// whose payload does not decode was written by a broken writer, not torn
/// by a crash: refuse rather than guess.
fn last_head(
    path: &Path,
    file: &File,
    (seq, hash, offset): (u64, Hash, u64),
) -> Result<Head, LogError> {
    let mut head = [0u8; frame::HEADER_BYTES];
    file.read_exact_at(&mut head, offset)
        .map_err(|e| LogError::io("read", path, e))?;
    let len = frame::parse_header(&head)
        .ok()
        .flatten()
        .map_or(0, |h| h.payload_len);
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, offset + frame::HEADER_BYTES as u64 + 32)
        .map_err(|e| LogError::io("read", path, e))?;
    let record = Record::decode(&payload).map_err(|e| LogError::Corrupt {
        seq,
        reason: format!("{}: {e}", path.display()),
    })?;
    if record.envelope.seq != seq {
        return Err(LogError::Corrupt {
            seq,
            reason: format!(
                "{}: record says seq {}, its position is seq {seq}",
                path.display(),
                record.envelope.seq,
            ),
        });
    }
    Ok(Head {
        seq,
        hash,
        recorded_at_ms: record.envelope.recorded_at_ms,
    })
}

/// Bytes of `file` from `from`, at most the tail window.
fn tail_window(file: &File, path: &Path, from: u64, file_len: u64) -> Result<Vec<u8>, LogError> {
    let len = usize::try_from(file_len.saturating_sub(from))
        .map_or(TAIL_WINDOW_BYTES, |l| l.min(TAIL_WINDOW_BYTES));
    let mut window = vec![0u8; len];
    file.read_exact_at(&mut window, from)
        .map_err(|e| LogError::io("read", path, e))?;
    Ok(window)
}

/// Whether anything but zeros lies in `file` from `from` on.
fn data_from(file: &File, path: &Path, from: u64, file_len: u64) -> Result<bool, LogError> {
    let mut offset = from;
    let mut buf = vec![0u8; 1 << 16];
    while offset < file_len {
        let n = file
            .read_at(&mut buf, offset)
            .map_err(|e| LogError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(true);
        }
        offset += n as u64;
    }
    Ok(false)
}

pub(crate) fn corrupt(seq: u64, reason: String) -> LogError {
    LogError::Corrupt { seq, reason }
}

/// The facts at the end of the log, before any judgement: what the walk of
/// the last segment found and what lies past it.
#[derive(Clone, Debug)]
pub struct Examined {
    /// The log up to the end of its valid data (`torn` is `None`).
    pub tail: Tail,
    /// What stopped the walk past the valid data, if anything.
    pub damage: Option<units::Damage>,
    /// The bytes from the end of the valid data on (at most the tail window).
    pub window: Vec<u8>,
    /// Bytes from the end of the valid data to the window's last non-zero byte.
    extent: u64,
    /// Anything but zeros lies past the window (looked at only when there is
    /// damage: with only zeros after the valid data, nothing there matters).
    pub beyond: bool,
    /// The last segment is shorter than it was created.
    pub truncated: bool,
    /// The last segment's length now.
    pub file_len: u64,
}

impl Examined {
    /// Bytes from the end of the valid data to the last non-zero byte of the window.
    pub fn extent(&self) -> u64 {
        self.extent
    }
}

/// Walks the last segment of the log in `dir` and reads what lies past its
/// valid data; checks that the evidence's hashes are the log's. Reads only.
pub fn examine(dir: &Path, proof: &Proof) -> Result<Examined, LogError> {
    let segments = list_segments(dir)?;
    let acked = proof.acknowledged();
    let Some((last_first, last_path)) = segments.last().cloned() else {
        if acked > 0 {
            return Err(corrupt(
                1,
                format!(
                    "{} holds no segment, but records up to seq {acked} were acknowledged (log/head)",
                    dir.display()
                ),
            ));
        }
        return Ok(Examined {
            tail: Tail::default(),
            damage: None,
            window: Vec::new(),
            extent: 0,
            beyond: false,
            truncated: false,
            file_len: 0,
        });
    };
    if segments[0].0 != 1 {
        return Err(corrupt(
            1,
            format!(
                "the first segment in {} starts at seq {}: the segments before it are missing",
                dir.display(),
                segments[0].0
            ),
        ));
    }
    let seg = open_segment(&last_path, last_first)?;
    let wanted: Vec<u64> = proof.claims().iter().map(|c| c.0).collect();
    let w = walk::walk(&last_path, &seg, last_first, &wanted)?;
    let head = match w.last {
        Some(l) => Some(last_head(&last_path, &seg.file, l)?),
        None => head_before(dir, &segments, last_first, &last_path)?,
    };
    let head_seq = head.map_or(0, |h| h.seq);
    check_claims(dir, proof, head_seq, &w.found)?;
    let past = past_end(&seg, &last_path, w.end, w.damage, head_seq + 1)?;
    let (window, extent, beyond, damage) = past;
    Ok(Examined {
        tail: Tail {
            head,
            last: Some(LastSegment {
                first_seq: last_first,
                path: last_path,
                capacity: seg.capacity,
                version: seg.version,
                end: w.end,
                last_unit: w.last_unit,
                offsets: w.offsets,
                first_prev: w.first_prev,
            }),
            torn: None,
            short_segment: false,
        },
        damage,
        window,
        extent,
        beyond,
        truncated: seg.len < seg.capacity,
        file_len: seg.len,
    })
}

/// What lies past the valid data ending at `end` (where seq `next` would
/// begin): the tail window, its extent, whether data lies past it, and the
/// damage (the walk's, or data after zeros where the next unit begins).
fn past_end(
    seg: &Opened,
    path: &Path,
    end: u64,
    damage: Option<units::Damage>,
    next: u64,
) -> Result<(Vec<u8>, u64, bool, Option<units::Damage>), LogError> {
    let window = tail_window(&seg.file, path, end, seg.len)?;
    let extent = window
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1);
    let beyond = if damage.is_some() || extent > 0 {
        data_from(&seg.file, path, end + window.len() as u64, seg.len)?
    } else {
        false
    };
    let damage = damage.or_else(|| {
        (extent > 0).then_some(units::Damage {
            seq: next,
            at: end,
            len: None,
            reason: Fault::ZerosBeforeData,
            trailer: false,
        })
    });
    Ok((window, extent, beyond, damage))
}

/// Analyzes the end of the log in `dir` against `proof`. Reads only.
pub fn analyze(dir: &Path, proof: Proof) -> Result<Tail, LogError> {
    let ex = examine(dir, &proof)?;
    let acked = proof.acknowledged();
    let extent = ex.extent();
    let mut tail = ex.tail;
    let Some(last) = &tail.last else {
        return Ok(tail);
    };
    let head_seq = tail.head.map_or(0, |h| h.seq);
    let truncated_error = || LogError::Truncated {
        path: last.path.clone(),
        len: ex.file_len,
        capacity: last.capacity,
        last_seq: head_seq,
    };
    let damage = match ex.damage {
        None if !ex.truncated => return finish(tail, acked, dir),
        None => {
            // The preallocated zeros were cut off. Only a clean close proves
            // that nothing acknowledged stood in the part that is gone.
            if proof.clean() && acked <= head_seq {
                tail.short_segment = true;
                return finish(tail, acked, dir);
            }
            return Err(truncated_error());
        }
        // A torn write never shrinks a preallocated file: something cut it.
        Some(_) if ex.truncated => return Err(truncated_error()),
        Some(d) => d,
    };
    let seq = head_seq + 1;
    let at = format!("{} offset {}", last.path.display(), damage.at);
    judge_damage(
        &at,
        last.version,
        (last.end, &ex.window),
        ex.beyond,
        &proof,
        seq,
        &damage,
    )?;
    tail.torn = Some(TornTail {
        seq,
        segment: last.path.clone(),
        offset: last.end,
        bytes: extent,
        reason: damage.reason.to_string(),
    });
    finish(tail, acked, dir)
}

/// Damage past `end` (the end of the valid data, where the record `first`
/// would begin) may be cut only if it was never acknowledged: the evidence,
/// what lies past the window, and the unit's own bytes decide. `Err` is the
/// corruption to report, named at the damaged record.
fn judge_damage(
    at: &str,
    version: u32,
    (end, window): (u64, &[u8]),
    beyond: bool,
    proof: &Proof,
    first: u64,
    damage: &units::Damage,
) -> Result<(), LogError> {
    let (problem, seq) = (&damage.reason, damage.seq);
    let acked = proof.acknowledged();
    if proof.clean() {
        let closed = proof.head_file.map_or(0, |e| e.seq);
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (the last writer closed cleanly at seq {closed}, so nothing here is a torn write; `parley repair` shows what it could remove)"),
        ));
    }
    if acked >= first {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (records up to seq {acked} were acknowledged)"),
        ));
    }
    if beyond {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (data lies beyond the reach of one torn write; `parley repair` shows what it could remove)"),
        ));
    }
    if version >= 2 {
        units::judge(at, end, window, proof, damage)
    } else {
        legacy::judge(at, window, proof, damage)
    }
}

/// The head must reach every acknowledged seq.
fn finish(tail: Tail, acked: u64, dir: &Path) -> Result<Tail, LogError> {
    let head_seq = tail.head.map_or(0, |h| h.seq);
    if head_seq < acked {
        return Err(corrupt(
            head_seq + 1,
            format!(
                "records up to seq {acked} were acknowledged but the log in {} ends at seq {head_seq}: a segment was deleted, renamed or cut",
                dir.display()
            ),
        ));
    }
    Ok(tail)
}

/// Every (seq, hash) the evidence names, up to the head, must be the log's:
/// another ledger's head file or marker, or an altered log, is refused.
fn check_claims(
    dir: &Path,
    proof: &Proof,
    head_seq: u64,
    found: &[(u64, Hash)],
) -> Result<(), LogError> {
    for (seq, hash, source) in proof.claims() {
        if seq == 0 || seq > head_seq {
            continue;
        }
        let log_hash = match found.iter().find(|f| f.0 == seq) {
            Some(f) => Some(f.1),
            None => {
                let mut h = None;
                scan_dir(dir, seq, seq, &mut |r| {
                    h = Some(r.hash);
                    Ok(())
                })?;
                h
            }
        };
        if log_hash != Some(hash) {
            return Err(corrupt(
                seq,
                format!("{source} names this seq with another hash: it belongs to another ledger, or the record was altered"),
            ));
        }
    }
    Ok(())
}

/// The head when the last segment holds no valid frame: the end of the one
/// before (which must end right before it).
fn head_before(
    dir: &Path,
    segments: &[(u64, PathBuf)],
    last_first: u64,
    last_path: &Path,
) -> Result<Option<Head>, LogError> {
    if segments.len() < 2 {
        if last_first == 1 {
            return Ok(None);
        }
        return Err(corrupt(
            1,
            format!("the only segment starts at seq {last_first}"),
        ));
    }
    let (prev_first, _) = segments[segments.len() - 2];
    let head = scan_dir(dir, prev_first, last_first - 1, &mut |_| Ok(()))?;
    if head.map(|h| h.seq) != Some(last_first - 1) {
        return Err(corrupt(
            head.map_or(prev_first, |h| h.seq + 1),
            format!(
                "segment {} holds no record and the one before does not end at seq {}",
                last_path.display(),
                last_first - 1
            ),
        ));
    }
    Ok(head)
}
