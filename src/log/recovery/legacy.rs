//! Damage at the end of a version-1 segment (frames without write units,
//! written by builds before segment version 2): judged by the evidence and
//! by what follows the damage, as those builds did. A writer of this build
//! never appends to such a segment (it starts a version-2 one), so this only
//! ever judges the tail an older build left.

use super::units::Damage;
use super::{corrupt, Proof};
use crate::log::frame::{self, parse_frame, Parsed};
use crate::log::LogError;

/// The highest "acknowledged before" any valid frame in the tail window
/// proves (a frame of a later batch proves every seq below its batch's
/// first was acknowledged).
pub(crate) fn proven_by_later_batches(window: &[u8]) -> u64 {
    let mut proven = 0u64;
    let mut at = 1;
    while at + frame::OVERHEAD_BYTES <= window.len() {
        // Cheap filters before hashing: codec and reserved bytes.
        if window[at + 4] == frame::CODEC_BINCODE2 && window[at + 5..at + 8] == [0, 0, 0] {
            if let Parsed::Frame(f) = parse_frame(&window[at..]) {
                if f.self_valid() {
                    proven = proven.max(f.batch_first_seq.saturating_sub(1));
                }
            }
        }
        at += 1;
    }
    proven
}

/// Damage at the first byte past the valid records of a version-1 segment
/// (`window` holds the bytes from there) is a torn write only if no frame of
/// a later batch in the window proves a record at or past it was
/// acknowledged, and, after a process crash in this boot, only if it is the
/// prefix a killed `pwrite` leaves. (The caller checked the evidence.)
pub(super) fn judge(
    at: &str,
    window: &[u8],
    proof: &Proof,
    damage: &Damage,
) -> Result<(), LogError> {
    let (problem, seq) = (&damage.reason, damage.seq);
    let proven = proven_by_later_batches(window);
    if proven >= seq {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (later batches follow: records up to seq {proven} were acknowledged)"),
        ));
    }
    if proof.same_boot == Some(true) && !super::units::short_write(damage.at, window, None) {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (the last writer was killed in this boot, and a killed write leaves a prefix of what it wrote, not this)"),
        ));
    }
    Ok(())
}
