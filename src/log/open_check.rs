//! The writer's check of the log at open: every record up to a seq, each
//! sealed segment by its seal (one wide blake3 pass over its file, `seal`)
//! where the seal matches, every other segment frame by frame; segments on
//! several threads, joined in order.
//!
//! The last segment, when recovery's walk at the same open just checked
//! every frame of it through `to` (hash, link, framing: what the frame
//! check does), is taken from that walk instead of being read again.
//!
//! Architecture invariant: this check refuses exactly what the frame-by-frame
//! check refuses, at the same seq. A seal only stands for bytes that were a
//! valid chain when it was made; a segment whose seal is missing, damaged or
//! does not match its file is checked frame by frame, which names the damage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::fault::Fault;
use super::scan::{check_segment, list_segments};
use super::seal::{digest_file, Seal};
use super::LogError;
use crate::record::Hash;

/// Most threads the check runs on.
const THREADS_MAX: usize = 8;

/// How the segments were checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenCheck {
    /// Segments whose seal matched their file.
    pub by_seal: u32,
    /// Segments checked frame by frame.
    pub by_frames: u32,
    /// The last segment, checked frame by frame by recovery's walk at this
    /// open (`Walked`).
    pub by_walk: u32,
    /// Seals written for sealed segments checked frame by frame.
    pub sealed_now: u32,
}

/// One segment's part of the chain.
#[derive(Clone, Copy, Debug)]
struct Part {
    first_prev: Option<Hash>,
    last_hash: Option<Hash>,
    next_seq: u64,
    by_seal: bool,
    by_walk: bool,
    sealed_now: bool,
}

/// A segment recovery's walk checked frame by frame at this open (every
/// hash, link and frame): its first seq, its first frame's link and its last
/// record (seq, hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walked {
    pub first_seq: u64,
    pub first_prev: Hash,
    pub last: (u64, Hash),
}

/// Checks records `1..=to` of the log in `log_dir` (with the seals in
/// `seal_dir`); with `write_seals`, writes the seal of each sealed segment
/// it had to check frame by frame. `walked`: the segment recovery's walk
/// just checked, used when it ends exactly at `to`. Damage is reported at
/// the lowest seq.
pub fn check_through(
    log_dir: &Path,
    seal_dir: &Path,
    to: u64,
    write_seals: bool,
    walked: Option<Walked>,
) -> Result<OpenCheck, LogError> {
    if to == 0 {
        return Ok(OpenCheck::default());
    }
    let segments = list_segments(log_dir)?;
    let jobs = segments
        .iter()
        .take_while(|(first, _)| *first <= to)
        .count();
    let next = AtomicUsize::new(0);
    let parts: Mutex<Vec<Option<Result<Part, LogError>>>> =
        Mutex::new((0..jobs).map(|_| None).collect());
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, THREADS_MAX)
        .min(jobs.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                // Names are distinct and sorted: the next first seq is at least 1.
                let sealed_end = segments
                    .get(i + 1)
                    .map(|n| n.0.saturating_sub(1))
                    .filter(|e| *e <= to);
                let (first, path) = &segments[i];
                let part = match walked.filter(|w| w.first_seq == *first && w.last.0 == to) {
                    Some(w) => Ok(Part {
                        first_prev: Some(w.first_prev),
                        last_hash: Some(w.last.1),
                        next_seq: to + 1,
                        by_seal: false,
                        by_walk: true,
                        sealed_now: false,
                    }),
                    None => check_one(path, *first, to, sealed_end, seal_dir, write_seals),
                };
                if let Ok(mut p) = parts.lock() {
                    p[i] = Some(part);
                }
            });
        }
    });
    let parts = parts
        .into_inner()
        .map_err(|_| LogError::ThreadPanicked("the log check"))?;
    join(&segments, parts)
}

/// The segments' parts joined in order: each must start where the one
/// before ended and link to its last hash.
fn join(
    segments: &[(u64, PathBuf)],
    parts: Vec<Option<Result<Part, LogError>>>,
) -> Result<OpenCheck, LogError> {
    let mut report = OpenCheck::default();
    let (mut expected, mut last_hash) = (1u64, None);
    for ((first, path), part) in segments.iter().zip(parts) {
        if *first != expected {
            let reason = if expected == 1 {
                format!("the first segment starts at seq {first}")
            } else {
                format!(
                    "segment {} starts at seq {first}, expected seq {expected}",
                    path.display()
                )
            };
            return Err(LogError::Corrupt {
                seq: expected,
                reason,
            });
        }
        let part = part.ok_or(LogError::ThreadPanicked("the log check"))??;
        if let (Some(prev), Some(link)) = (last_hash, part.first_prev) {
            if prev != link {
                return Err(LogError::Corrupt {
                    seq: *first,
                    reason: format!("{}: {}", path.display(), Fault::Unlinked),
                });
            }
        }
        report.by_seal += u32::from(part.by_seal);
        report.by_walk += u32::from(part.by_walk);
        report.by_frames += u32::from(!part.by_seal && !part.by_walk);
        report.sealed_now += u32::from(part.sealed_now);
        expected = part.next_seq;
        last_hash = part.last_hash.or(last_hash);
    }
    Ok(report)
}

/// One segment: by its seal when it is sealed (`sealed_end` is its last
/// seq) and the seal matches its file, else frame by frame through `to`.
fn check_one(
    path: &Path,
    first: u64,
    to: u64,
    sealed_end: Option<u64>,
    seal_dir: &Path,
    write_seals: bool,
) -> Result<Part, LogError> {
    let seal = sealed_end.and_then(|end| Seal::read(seal_dir, first).filter(|s| s.last_seq == end));
    if let Some(seal) = seal {
        let digest = digest_file(path).map_err(|e| LogError::io("read", path, e))?;
        if digest == (seal.file_bytes, seal.digest) {
            return Ok(Part {
                first_prev: Some(seal.prev_hash),
                last_hash: Some(seal.last_hash),
                next_seq: seal.last_seq + 1,
                by_seal: true,
                by_walk: false,
                sealed_now: false,
            });
        }
        tracing::warn!(segment = %path.display(), "the segment's seal does not match its file; checking it frame by frame");
    }
    let c = check_segment(path, first, to)?;
    let mut part = Part {
        first_prev: c.first_prev,
        last_hash: c.last_hash,
        next_seq: c.next_seq,
        by_seal: false,
        by_walk: false,
        sealed_now: false,
    };
    if let (true, Some(end), Some(prev_hash), Some(last_hash)) =
        (write_seals, sealed_end, c.first_prev, c.last_hash)
    {
        if c.next_seq == end + 1 {
            part.sealed_now = seal_checked(path, first, end, prev_hash, last_hash, seal_dir);
        }
    }
    Ok(part)
}

/// Writes the seal of a segment whose frames were just checked; a failure
/// only costs the next open this segment's frame check.
fn seal_checked(
    path: &Path,
    first_seq: u64,
    last_seq: u64,
    prev_hash: Hash,
    last_hash: Hash,
    seal_dir: &Path,
) -> bool {
    let written = digest_file(path).and_then(|(file_bytes, digest)| {
        Seal {
            first_seq,
            last_seq,
            file_bytes,
            prev_hash,
            last_hash,
            digest,
        }
        .write(seal_dir)
    });
    if let Err(e) = &written {
        tracing::warn!(segment = %path.display(), error = %e, "could not write the segment's seal");
    }
    written.is_ok()
}
