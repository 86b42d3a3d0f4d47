//! Damage at the end of a version-2 segment: the last write unit is judged
//! by its own redundant header and trailer (`crate::log::unit`).
//!
//! - A unit whose trailer holds was completely written. A piece that fails
//!   its check and holds data was damaged afterwards: the unit may have been
//!   acknowledged, so it is corruption. Pieces that fail and are zeros were
//!   never written: a power cut tore the unit before its fdatasync returned,
//!   so it was never acknowledged.
//! - A unit whose trailer (or header) was never written, in whole or in
//!   part, was never acknowledged either.
//! - After a process crash in the same boot nothing is torn by a power cut:
//!   the page cache kept every byte a `pwrite` copied, and a killed `pwrite`
//!   leaves a prefix that ends at a page boundary. Only that shape is cut;
//!   any other damage is refused (`parley repair` can still remove bytes no
//!   evidence shows were acknowledged).

use super::{corrupt, Proof};
use crate::log::fault::Fault;
use crate::log::frame::{parse_header, OVERHEAD_BYTES};
use crate::log::unit::{
    compare_pieces, find_trailer, parse_trailer, parse_unit_header, pieces, TRAILER_FIXED_BYTES,
    UNIT_HEADER_BYTES,
};
use crate::log::LogError;

/// The kernel copies a `write` into the page cache a page at a time and stops
/// between pages when the process is killed: a killed write ends at a
/// multiple of this.
const PAGE_BYTES: u64 = 4096;

/// What the bytes of the last unit show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The unit was never completely written, so never acknowledged.
    NeverWritten(String),
    /// The unit was completely written and then damaged: it may have been
    /// acknowledged.
    Damaged(String),
}

/// The damage the walk of the last segment met.
#[derive(Clone, Debug)]
pub struct Damage {
    /// The seq the damage is named at: the record whose frame failed (for a
    /// unit trailer, the unit's last record).
    pub seq: u64,
    /// Where the item that failed begins.
    pub at: u64,
    /// Its length, when its own header said (else unknown).
    pub len: Option<u64>,
    pub reason: Fault,
    /// The item is a unit's trailer, and every frame of the unit checked.
    pub trailer: bool,
}

/// The length of a unit with `body_len` bytes of frames, starting at `start`.
fn unit_len(start: u64, body_len: u64) -> u64 {
    let trailer_at = start + UNIT_HEADER_BYTES as u64 + body_len;
    let n = pieces(start, trailer_at).count() as u64;
    trailer_at - start + TRAILER_FIXED_BYTES as u64 + 4 * n
}

/// Judges the unit starting at `start`; `window` holds the bytes from
/// `start` on (at most the tail window).
pub fn classify(start: u64, window: &[u8]) -> Verdict {
    let header = window.get(..UNIT_HEADER_BYTES).unwrap_or(window);
    match parse_unit_header(header) {
        Ok(None) => Verdict::NeverWritten(
            "data where the next unit begins, but no unit header: the unit was never written whole"
                .into(),
        ),
        Ok(Some(h)) => with_header(start, window, h.body_len),
        Err(_) => match find_trailer(window, start, start) {
            Some((at, t)) => pieces_verdict(start, window, at, &t.checks),
            None => Verdict::NeverWritten(
                "a damaged unit header, and no trailer names the unit: it was never written whole"
                    .into(),
            ),
        },
    }
}

fn with_header(start: u64, window: &[u8], body_len: u64) -> Verdict {
    let trailer_at = start + UNIT_HEADER_BYTES as u64 + body_len;
    let trailer_len = unit_len(start, body_len) - (trailer_at - start);
    let from = usize::try_from(trailer_at - start).unwrap_or(usize::MAX);
    let to = from.saturating_add(usize::try_from(trailer_len).unwrap_or(usize::MAX));
    let Some(trailer) = window.get(from..to) else {
        return Verdict::NeverWritten(
            "the unit's trailer lies past the end of the file: it was never written".into(),
        );
    };
    match parse_trailer(trailer) {
        Ok(t) if t.unit_start == start => pieces_verdict(start, window, trailer_at, &t.checks),
        _ => {
            // A trailer is written whole or not at all per sector; one with
            // a zero piece was not (completely) written, one without was damaged.
            let unwritten = pieces(trailer_at, trailer_at + trailer_len).any(|(a, b)| {
                trailer[(a - trailer_at) as usize..(b - trailer_at) as usize]
                    .iter()
                    .all(|x| *x == 0)
            });
            if unwritten {
                Verdict::NeverWritten("its trailer was never (completely) written".into())
            } else {
                Verdict::Damaged(format!(
                    "its trailer at offset {trailer_at} is damaged (the unit was written whole)"
                ))
            }
        }
    }
}

fn pieces_verdict(start: u64, window: &[u8], trailer_at: u64, checks: &[u32]) -> Verdict {
    let body = &window[..usize::try_from(trailer_at - start).unwrap_or(0)];
    match compare_pieces(start, body, checks) {
        Some(r) if r.damaged > 0 => Verdict::Damaged(format!(
            "its trailer holds, so it was written whole, and the sector at offset {} no longer matches its check",
            r.first_damaged.unwrap_or(start)
        )),
        Some(r) if r.unwritten > 0 => Verdict::NeverWritten(format!(
            "{} of its sectors were never written (a write torn by a power cut)",
            r.unwritten
        )),
        Some(_) => Verdict::Damaged(
            "every sector matches its trailer, yet its records do not check: it was written that way"
                .into(),
        ),
        None => Verdict::Damaged("its trailer does not describe its length".into()),
    }
}

/// True when the bytes from `start` are what a write killed in this boot
/// leaves: a prefix of the unit that ends at a page boundary P, only zeros
/// from P on, and the item that failed (at `damage.at`) reaches past P, so
/// it was cut, not changed. `unit_end` is where the unit would end, if known.
pub fn short_write(start: u64, window: &[u8], damage: Option<(u64, u64)>) -> bool {
    let Some(last) = window.iter().rposition(|b| *b != 0) else {
        return true;
    };
    let data_end = start + last as u64 + 1;
    let cut = data_end.div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let (at, len) = damage.unwrap_or_else(|| {
        let len = match parse_header(window.get(..20).unwrap_or(window)) {
            Ok(Some(h)) => (OVERHEAD_BYTES + h.payload_len) as u64,
            _ => 20,
        };
        (start, len)
    });
    at + len > cut
}

/// The unit's end by its header, when the header holds.
fn header_end(start: u64, window: &[u8]) -> Option<u64> {
    let h = parse_unit_header(window.get(..UNIT_HEADER_BYTES)?).ok()??;
    Some(start + unit_len(start, h.body_len))
}

/// Judges the last unit (at `start`, the end of the last complete one):
/// `Ok` when it may be cut (never acknowledged), else the corruption.
pub fn judge(
    at: &str,
    start: u64,
    window: &[u8],
    proof: &Proof,
    damage: &Damage,
) -> Result<(), LogError> {
    let (problem, seq) = (&damage.reason, damage.seq);
    if proof.same_boot == Some(true) {
        let end = header_end(start, window);
        let len = damage.len.unwrap_or(20);
        let ok = end.is_some_and(|e| {
            let data_end = window
                .iter()
                .rposition(|b| *b != 0)
                .map_or(start, |p| start + p as u64 + 1);
            data_end.div_ceil(PAGE_BYTES) * PAGE_BYTES < e
        }) && short_write(start, window, Some((damage.at, len)));
        if ok {
            return Ok(());
        }
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (the last writer was killed in this boot, and a killed write leaves a prefix of its unit, not this; `parley repair` shows what it could remove)"),
        ));
    }
    match classify(start, window) {
        Verdict::NeverWritten(_) => Ok(()),
        Verdict::Damaged(why) => Err(corrupt(
            seq,
            format!("{at}: {problem}: {why}; its records may have been acknowledged"),
        )),
    }
}

/// The bytes of a window that a unit can reach: a whole unit and its trailer.
pub fn max_unit_bytes(write_unit: usize, record: usize) -> usize {
    let body = write_unit + record + OVERHEAD_BYTES;
    let pieces = body / crate::log::unit::SECTOR_BYTES as usize + 2;
    UNIT_HEADER_BYTES + body + TRAILER_FIXED_BYTES + 4 * pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::unit::{append_trailer, encode_header};

    /// A unit at `start` with a body of `body_len` bytes of 0xab.
    fn unit(start: u64, body_len: usize) -> Vec<u8> {
        let mut u = encode_header(u32::try_from(body_len).unwrap(), 9).to_vec();
        u.extend(std::iter::repeat_n(0xabu8, body_len));
        let mut t = Vec::new();
        append_trailer(&mut t, start, &u, 3);
        u.extend_from_slice(&t);
        u
    }

    fn with_zeros(mut u: Vec<u8>) -> Vec<u8> {
        u.extend(std::iter::repeat_n(0u8, 8192));
        u
    }

    #[test]
    fn a_flip_anywhere_in_a_whole_unit_is_damage() {
        let start = 700;
        let u = unit(start, 3000);
        for i in 0..u.len() {
            let mut w = with_zeros(u.clone());
            w[i] ^= 0x20;
            assert!(
                matches!(classify(start, &w), Verdict::Damaged(_)),
                "flip at byte {i}: {:?}",
                classify(start, &w)
            );
        }
    }

    #[test]
    fn any_unwritten_sector_means_never_written() {
        let start = 700;
        let u = unit(start, 3000);
        // Every sector of the unit, alone, left unwritten.
        for (a, b) in pieces(start, start + u.len() as u64) {
            let mut w = with_zeros(u.clone());
            w[(a - start) as usize..(b - start) as usize].fill(0);
            assert!(
                matches!(classify(start, &w), Verdict::NeverWritten(_)),
                "sector at {a}: {:?}",
                classify(start, &w)
            );
        }
    }

    #[test]
    fn a_flip_in_zeros_past_the_data_was_never_written() {
        let mut w = vec![0u8; 4096];
        w[100] = 0x08;
        assert!(matches!(classify(64, &w), Verdict::NeverWritten(_)));
        w[0] = 0x01;
        assert!(matches!(classify(64, &w), Verdict::NeverWritten(_)));
    }

    #[test]
    fn a_killed_write_is_a_page_prefix() {
        let start = 4000;
        let u = unit(start, 9000);
        // Cut at the page boundary 8192: the frame across it reaches past it.
        let cut = (8192 - start) as usize;
        let mut w = with_zeros(u.clone());
        w[cut..].fill(0);
        assert!(short_write(start, &w, Some((start + 20, 9000))));
        // The same bytes with the item ending before the boundary: changed, not cut.
        assert!(!short_write(start, &w, Some((start + 20, 100))));
    }
}
