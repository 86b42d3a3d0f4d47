//! The end of a cleanly closed log, checked without walking its last
//! segment: what a read-only view needs at open.
//!
//! A clean close leaves evidence (`log/head`, state `Closed`) naming the
//! last record; nothing is written after it. When everything the full
//! analysis would look at near the end agrees with that evidence, the
//! view takes its head from it: the last record (found by the caller's
//! index file, its hash checked), the whole write unit it ends (header,
//! every piece's check, trailer) and the zeros after that unit. The
//! records before that unit are checked when they are read, as a sealed
//! segment's are. Anything else returns `None`, and the caller runs
//! [`super::analyze`], which judges it exactly as before.
//!
//! Architecture invariant: this only reads; on an undamaged log it answers
//! the head the full analysis answers, and it never judges damage itself
//! (ARCHITECTURE.md, Recovery, step 8).

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{tail_window, Proof, TAIL_WINDOW_BYTES};
use crate::log::frame::{self, HEADER_BYTES, OVERHEAD_BYTES};
use crate::log::head::State;
use crate::log::scan::{list_segments, open_segment, Opened};
use crate::log::unit::{self, PieceReport, UNIT_HEADER_BYTES};
use crate::log::{Head, LogError};
use crate::record::Record;

/// Segment format version with write units (header, frames, trailer).
const UNITS_VERSION: u32 = 2;

/// The head of the log in `dir` from its clean-close evidence, or `None`
/// (then the caller runs the full analysis). `offset_of(first, seq)`: the
/// file offset of record `seq` in the segment starting at `first`, as the
/// caller's index file says (it is checked here, never trusted).
pub fn closed_head(
    dir: &Path,
    proof: &Proof,
    offset_of: &dyn Fn(u64, u64) -> Option<u64>,
) -> Result<Option<Head>, LogError> {
    let Some(e) = proof
        .head_file
        .filter(|e| e.state == State::Closed && e.seq > 0)
    else {
        return Ok(None);
    };
    // Every claim of acknowledgement names that very record.
    if proof.claims().iter().any(|c| (c.0, c.1) != (e.seq, e.hash)) {
        return Ok(None);
    }
    let segments = list_segments(dir)?;
    let (Some((first, _)), Some((last_first, path))) = (segments.first(), segments.last()) else {
        return Ok(None);
    };
    if *first != 1 || *last_first > e.seq {
        return Ok(None);
    }
    let Some(at) = offset_of(*last_first, e.seq) else {
        return Ok(None);
    };
    let seg = open_segment(path, *last_first)?;
    if seg.version != UNITS_VERSION {
        return Ok(None);
    }
    let Some(record) = last_unit_record(&seg, path, at, e.seq)? else {
        return Ok(None);
    };
    if record.1 != e.hash {
        return Ok(None);
    }
    debug_assert_eq!(record.0.envelope.seq, e.seq);
    Ok(Some(Head {
        seq: e.seq,
        hash: e.hash,
        recorded_at_ms: record.0.envelope.recorded_at_ms,
    }))
}

/// Record `seq` at `at` and its hash, when it is the last record of a whole
/// write unit followed only by zeros (within the tail window).
fn last_unit_record(
    seg: &Opened,
    path: &Path,
    at: u64,
    seq: u64,
) -> Result<Option<(Record, crate::record::Hash)>, LogError> {
    let mut head = [0u8; HEADER_BYTES];
    if seg.file.read_exact_at(&mut head, at).is_err() {
        return Ok(None);
    }
    let Ok(Some(h)) = frame::parse_header(&head) else {
        return Ok(None);
    };
    let frame_end = at + (OVERHEAD_BYTES + h.payload_len) as u64;
    if frame_end > seg.len {
        return Ok(None);
    }
    // The trailer right after the frame, then nothing but zeros.
    let window = tail_window(&seg.file, path, frame_end, seg.len)?;
    let Some(trailer) = unit::trailer_len(&window)
        .ok()
        .and_then(|len| Some((len, unit::parse_trailer(window.get(..len)?).ok()?)))
        .filter(|(len, _)| window[*len..].iter().all(|b| *b == 0))
        .map(|(_, t)| t)
    else {
        return Ok(None);
    };
    let unit_start = trailer.unit_start;
    let whole = trailer.first_seq.checked_add(trailer.records) == seq.checked_add(1)
        && unit_start < at
        && frame_end - unit_start <= TAIL_WINDOW_BYTES as u64;
    if !whole {
        return Ok(None);
    }
    // The unit's header and every byte of it against the trailer's checks.
    let unit_len = usize::try_from(frame_end - unit_start).unwrap_or(usize::MAX);
    let mut unit_bytes = vec![0u8; unit_len];
    if seg.file.read_exact_at(&mut unit_bytes, unit_start).is_err() {
        return Ok(None);
    }
    let header_ok = unit::parse_unit_header(&unit_bytes[..UNIT_HEADER_BYTES.min(unit_len)])
        .ok()
        .flatten()
        .is_some_and(|u| {
            u.first_seq == trailer.first_seq
                && u.body_len + UNIT_HEADER_BYTES as u64 == unit_len as u64
        });
    let pieces = unit::compare_pieces(unit_start, &unit_bytes, &trailer.checks);
    if !header_ok || pieces != Some(PieceReport::default()) {
        return Ok(None);
    }
    // The record itself: its hash over its bytes, and its seq.
    let body = &unit_bytes[usize::try_from(at - unit_start).unwrap_or(usize::MAX) + HEADER_BYTES..];
    let Some((_, payload, hash)) = frame::split_checked(body, h.payload_len) else {
        return Ok(None);
    };
    match Record::decode(payload) {
        Ok(r) if r.envelope.seq == seq => Ok(Some((r, hash))),
        _ => Ok(None),
    }
}
