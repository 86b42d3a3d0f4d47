//! Write units in version-2 segments: each `pwrite` + `fdatasync` of the
//! writer is one unit, framed by a redundant **unit header** and **unit
//! trailer** (in the spirit of TigerBeetle's redundant WAL headers), so that
//! recovery can tell a unit that was never completely written (a torn or
//! short write: never acknowledged) from a completely written unit that was
//! damaged afterwards (possibly acknowledged: never cut off silently).
//!
//! ```text
//! unit header (20 B)
//!      0  4  magic "PUNB"
//!      4  4  body_len     bytes of frames between header and trailer
//!      8  8  first_seq    seq of the unit's first frame
//!     16  4  check        first 4 bytes of blake3(bytes 0..16)
//! frames (frame.rs), body_len bytes
//! unit trailer (TRAILER_FIXED_BYTES + 4 n)
//!      0  4  magic "PUNE"
//!      4  4  len          bytes of the whole trailer
//!      8  8  unit_start   file offset of the unit header
//!     16  4  head_check   first 4 bytes of blake3(bytes 0..16)
//!     20  8  first_seq
//!     28  4  records
//!     32  4  pieces n
//!     36 4n  crc32 of each piece: the unit's bytes from its header to its
//!            trailer, split at every 512-byte boundary of the file
//!   36+4n 4  body_check   first 4 bytes of blake3(bytes 0..36+4n)
//!   40+4n 4  end magic "PEND"
//! ```
//!
//! Why this decides: a power cut leaves each 512-byte sector of an unsynced
//! write either written or not (zeros: segments are preallocated and cut
//! units are zeroed); a process crash leaves a prefix of the `pwrite`. A
//! completely written unit has its trailer; its pieces then all match their
//! checks unless a bit flipped. So a piece that fails its check and is all
//! zeros was never written, and one that fails and is not all zeros was
//! damaged. Both markers begin and end with magic bytes of two or more set
//! bits, so no piece of them is ever zeros, nor becomes zeros by one flip.
//!
//! Architecture invariant: a unit is acknowledged only after its
//! `fdatasync`, so a unit that is missing a sector was never acknowledged.

use super::fault::{Fault, Piece};
use super::frame::{parse_header, Header, HEADER_BYTES};

/// Bytes of a unit header.
pub const UNIT_HEADER_BYTES: usize = 20;
/// Bytes of a trailer besides its piece checks.
pub const TRAILER_FIXED_BYTES: usize = 44;
/// The granularity a torn write is judged at: a disk sector.
pub const SECTOR_BYTES: u64 = 512;

const UNIT_MAGIC: [u8; 4] = *b"PUNB";
const TRAILER_MAGIC: [u8; 4] = *b"PUNE";
const END_MAGIC: [u8; 4] = *b"PEND";

fn check4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..4]);
    out
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// The pieces of `[start, end)`: split at every sector boundary of the file.
pub fn pieces(start: u64, end: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = ((at / SECTOR_BYTES) + 1) * SECTOR_BYTES;
        let piece = (at, next.min(end));
        at = piece.1;
        Some(piece)
    })
}

/// A unit header as written.
pub fn encode_header(body_len: u32, first_seq: u64) -> [u8; UNIT_HEADER_BYTES] {
    let mut h = [0u8; UNIT_HEADER_BYTES];
    h[..4].copy_from_slice(&UNIT_MAGIC);
    h[4..8].copy_from_slice(&body_len.to_le_bytes());
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    let c = check4(&h[..16]);
    h[16..20].copy_from_slice(&c);
    h
}

/// Appends the trailer of the unit that starts at file offset `unit_start`
/// and whose header and frames are `unit` (the bytes written so far).
pub fn append_trailer(out: &mut Vec<u8>, unit_start: u64, unit: &[u8], records: u32) {
    debug_assert!(unit.len() >= UNIT_HEADER_BYTES);
    let first_seq = u64_at(unit, 8);
    let end = unit_start + unit.len() as u64;
    let checks: Vec<u32> = pieces(unit_start, end)
        .map(|(a, b)| crc32fast::hash(&unit[(a - unit_start) as usize..(b - unit_start) as usize]))
        .collect();
    let start = out.len();
    let len = TRAILER_FIXED_BYTES + 4 * checks.len();
    out.extend_from_slice(&TRAILER_MAGIC);
    // A unit is at most WRITE_UNIT_BYTES plus one record: its trailer fits u32.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&unit_start.to_le_bytes());
    let head_check = check4(&out[start..start + 16]);
    out.extend_from_slice(&head_check);
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&records.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(checks.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for c in &checks {
        out.extend_from_slice(&c.to_le_bytes());
    }
    let body_check = check4(&out[start..]);
    out.extend_from_slice(&body_check);
    out.extend_from_slice(&END_MAGIC);
    debug_assert_eq!(out.len() - start, len);
}

/// A unit header read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitHeader {
    pub body_len: u64,
    pub first_seq: u64,
}

/// Parses a unit header; `Ok(None)` when the 20 bytes are all zero.
pub fn parse_unit_header(b: &[u8]) -> Result<Option<UnitHeader>, Fault> {
    if b.iter().all(|x| *x == 0) {
        return Ok(None);
    }
    if b.len() < UNIT_HEADER_BYTES {
        return Err(Fault::CutShort {
            piece: Piece::UnitHeader,
            got: b.len(),
            needed: UNIT_HEADER_BYTES,
        });
    }
    if b[..4] != UNIT_MAGIC {
        return Err(Fault::NoUnitHeader);
    }
    if check4(&b[..16]) != b[16..20] {
        return Err(Fault::Checksum(Piece::UnitHeader));
    }
    Ok(Some(UnitHeader {
        body_len: u64::from(u32_at(b, 4)),
        first_seq: u64_at(b, 8),
    }))
}

/// The length a trailer says it has, from its first 20 bytes (magic and head
/// check hold).
pub fn trailer_len(b: &[u8]) -> Result<usize, Fault> {
    if b.len() < 20 || b[..4] != TRAILER_MAGIC {
        return Err(Fault::NoUnitTrailer);
    }
    if check4(&b[..16]) != b[16..20] {
        return Err(Fault::Checksum(Piece::UnitTrailer));
    }
    let len = u32_at(b, 4) as usize;
    if len < TRAILER_FIXED_BYTES || (len - TRAILER_FIXED_BYTES) % 4 != 0 {
        return Err(Fault::TrailerLength(len));
    }
    Ok(len)
}

/// A trailer read back (every check held).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub unit_start: u64,
    pub first_seq: u64,
    pub records: u64,
    pub checks: Vec<u32>,
}

/// Parses a whole trailer (`b` is exactly `trailer_len` bytes).
pub fn parse_trailer(b: &[u8]) -> Result<Trailer, Fault> {
    let len = trailer_len(b)?;
    if b.len() != len {
        return Err(Fault::CutShort {
            piece: Piece::UnitTrailer,
            got: b.len(),
            needed: len,
        });
    }
    if b[len - 4..] != END_MAGIC || check4(&b[..len - 8]) != b[len - 8..len - 4] {
        return Err(Fault::Checksum(Piece::UnitTrailer));
    }
    let n = u32_at(b, 32) as usize;
    if TRAILER_FIXED_BYTES + 4 * n != len {
        return Err(Fault::TrailerPieces);
    }
    Ok(Trailer {
        unit_start: u64_at(b, 8),
        first_seq: u64_at(b, 20),
        records: u64::from(u32_at(b, 28)),
        checks: (0..n).map(|i| u32_at(b, 36 + 4 * i)).collect(),
    })
}

/// What a walk through a segment meets next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A record's frame.
    Frame(Header),
    /// A unit header, consumed: read the next 20 bytes.
    UnitBegins,
    /// A unit trailer of this many bytes (20 of them read): read the rest
    /// and hand the whole to [`UnitWalk::trailer`].
    Trailer(usize),
    /// Zeros: the end of the written data.
    End,
}

/// The unit a walk is inside.
#[derive(Clone, Copy, Debug)]
struct Open {
    start: u64,
    body_end: u64,
    first_seq: u64,
}

/// Follows the unit structure of one segment as a walk reads it; for a
/// version-1 segment (no units) every item is a frame.
#[derive(Clone, Debug)]
pub struct UnitWalk {
    units: bool,
    open: Option<Open>,
    /// Where the last complete unit ended (the start of the data for none).
    pub complete_end: u64,
    /// The seq after the last complete unit's last record.
    pub complete_next_seq: u64,
    /// Where the last complete unit began.
    pub complete_start: Option<u64>,
}

impl UnitWalk {
    /// A walk of a segment of `version` whose data starts at `start` with seq `first_seq`.
    pub fn new(version: u32, start: u64, first_seq: u64) -> UnitWalk {
        UnitWalk {
            units: version >= 2,
            open: None,
            complete_end: start,
            complete_next_seq: first_seq,
            complete_start: None,
        }
    }

    /// True inside a unit (its header read, its trailer not yet).
    pub fn in_unit(&self) -> bool {
        self.open.is_some()
    }

    /// True when `offset` is where the open unit's trailer goes.
    pub fn at_trailer(&self, offset: u64) -> bool {
        self.open.is_some_and(|o| o.body_end == offset)
    }

    /// The 20 bytes at `offset`, where the walk stands with `seq` next.
    pub fn head(&mut self, b: &[u8], offset: u64, seq: u64) -> Result<Next, Fault> {
        if !self.units {
            return Ok(match parse_header(b)? {
                Some(h) => Next::Frame(h),
                None => Next::End,
            });
        }
        let Some(open) = self.open else {
            let Some(h) = parse_unit_header(b)? else {
                return Ok(Next::End);
            };
            if h.first_seq != seq {
                return Err(Fault::UnitSeq {
                    named: h.first_seq,
                    next: seq,
                });
            }
            if h.body_len == 0 {
                return Err(Fault::EmptyUnit);
            }
            self.open = Some(Open {
                start: offset,
                body_end: offset + UNIT_HEADER_BYTES as u64 + h.body_len,
                first_seq: seq,
            });
            return Ok(Next::UnitBegins);
        };
        if offset == open.body_end {
            return trailer_len(b).map(Next::Trailer);
        }
        match parse_header(b)? {
            None => Err(Fault::UnitEndsEarly),
            Some(h) if offset + (HEADER_BYTES + 64 + h.payload_len) as u64 > open.body_end => {
                Err(Fault::FramePastUnit)
            }
            Some(h) => Ok(Next::Frame(h)),
        }
    }

    /// Steps past the open unit's trailer without checking it (a walk for
    /// offsets only); `end` is where the trailer ends.
    pub fn skip_trailer(&mut self, end: u64, seq: u64) {
        if let Some(open) = self.open.take() {
            self.complete_start = Some(open.start);
            self.complete_end = end;
            self.complete_next_seq = seq;
        }
    }

    /// The whole trailer of the open unit, read at `offset`, with `seq` next.
    pub fn trailer(&mut self, b: &[u8], offset: u64, seq: u64) -> Result<(), Fault> {
        let open = self.open.take().ok_or(Fault::TrailerOutsideUnit)?;
        let t = parse_trailer(b)?;
        let records = seq - open.first_seq;
        if t.unit_start != open.start || t.first_seq != open.first_seq || t.records != records {
            return Err(Fault::TrailerOfAnotherUnit {
                start: t.unit_start,
                first_seq: t.first_seq,
                records: t.records,
                read_start: open.start,
                read_first_seq: open.first_seq,
                read_records: records,
            });
        }
        debug_assert_eq!(offset, open.body_end);
        self.complete_start = Some(open.start);
        self.complete_end = offset + b.len() as u64;
        self.complete_next_seq = seq;
        Ok(())
    }
}

/// How each piece of a unit compares with its trailer's checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PieceReport {
    /// Pieces that fail their check and hold only zeros: never written.
    pub unwritten: usize,
    /// Pieces that fail their check and hold data: damaged.
    pub damaged: usize,
    /// The file offset of the first damaged piece.
    pub first_damaged: Option<u64>,
}

/// Compares the unit bytes `unit` (from its header, at file offset
/// `unit_start`, to its trailer) with the trailer's checks.
pub fn compare_pieces(unit_start: u64, unit: &[u8], checks: &[u32]) -> Option<PieceReport> {
    let end = unit_start + unit.len() as u64;
    let all: Vec<(u64, u64)> = pieces(unit_start, end).collect();
    if all.len() != checks.len() {
        return None;
    }
    let mut report = PieceReport::default();
    for ((a, b), want) in all.into_iter().zip(checks) {
        let bytes = &unit[(a - unit_start) as usize..(b - unit_start) as usize];
        if crc32fast::hash(bytes) == *want {
            continue;
        }
        if bytes.iter().all(|x| *x == 0) {
            report.unwritten += 1;
        } else {
            report.damaged += 1;
            report.first_damaged.get_or_insert(a);
        }
    }
    Some(report)
}

/// Where a trailer for the unit at `unit_start` stands in `window` (which
/// begins at file offset `window_start`): the first offset whose bytes
/// parse as a whole trailer naming that unit.
pub fn find_trailer(window: &[u8], window_start: u64, unit_start: u64) -> Option<(u64, Trailer)> {
    let mut at = 0;
    while at + TRAILER_FIXED_BYTES <= window.len() {
        let p = window[at..]
            .windows(4)
            .position(|w| w == TRAILER_MAGIC)
            .map(|p| p + at)?;
        if let Ok(len) = trailer_len(&window[p..]) {
            if let Some(t) = window
                .get(p..p + len)
                .and_then(|b| parse_trailer(b).ok())
                .filter(|t| t.unit_start == unit_start)
            {
                return Some((window_start + p as u64, t));
            }
        }
        at = p + 1;
    }
    None
}

/// True when `b` holds a trailer's magic and is not all of a valid trailer:
/// a damaged one (zeros in every piece of it would be an unwritten one).
pub fn looks_like_trailer(b: &[u8]) -> bool {
    b.len() >= 4 && b[..4] == TRAILER_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(start: u64, body: &[u8]) -> Vec<u8> {
        let mut u = encode_header(u32::try_from(body.len()).unwrap(), 7).to_vec();
        u.extend_from_slice(body);
        let mut t = Vec::new();
        append_trailer(&mut t, start, &u, 1);
        u.extend_from_slice(&t);
        u
    }

    #[test]
    fn pieces_split_at_sector_boundaries() {
        let p: Vec<_> = pieces(500, 1100).collect();
        assert_eq!(p, vec![(500, 512), (512, 1024), (1024, 1100)]);
        assert_eq!(pieces(512, 1024).count(), 1);
        assert_eq!(pieces(5, 5).count(), 0);
    }

    #[test]
    fn trailer_round_trips_and_judges_pieces() {
        let start = 1000;
        let body = vec![0xabu8; 2000];
        let u = unit(start, &body);
        let body_end = UNIT_HEADER_BYTES + body.len();
        let t = parse_trailer(&u[body_end..]).unwrap();
        assert_eq!((t.unit_start, t.first_seq, t.records), (start, 7, 1));
        let clean = compare_pieces(start, &u[..body_end], &t.checks).unwrap();
        assert_eq!(clean, PieceReport::default());
        // A sector never written: zeros, judged unwritten.
        let mut torn = u.clone();
        torn[(1024 - start) as usize..(1536 - start) as usize].fill(0);
        let r = compare_pieces(start, &torn[..body_end], &t.checks).unwrap();
        assert_eq!((r.unwritten, r.damaged), (1, 0));
        // One bit flipped anywhere: damaged, never unwritten.
        for i in 0..body_end {
            let mut flipped = u.clone();
            flipped[i] ^= 0x10;
            let r = compare_pieces(start, &flipped[..body_end], &t.checks).unwrap();
            assert_eq!((r.unwritten, r.damaged), (0, 1), "flip at {i}");
        }
        // A flip in the trailer: it no longer parses, and it is found nowhere.
        for i in body_end..u.len() {
            let mut flipped = u.clone();
            flipped[i] ^= 0x01;
            assert!(parse_trailer(&flipped[body_end..]).is_err(), "flip at {i}");
            assert!(find_trailer(&flipped, start, start).is_none());
        }
        assert_eq!(
            find_trailer(&u, start, start).map(|f| f.0),
            Some(start + body_end as u64)
        );
    }

    #[test]
    fn no_piece_of_a_marker_is_or_becomes_zeros() {
        for m in [UNIT_MAGIC, TRAILER_MAGIC, END_MAGIC] {
            assert!(m.iter().all(|b| b.count_ones() >= 2), "{m:?}");
            // Not a payload length: the walk tells markers from frames.
            assert!(u32::from_le_bytes(m) as usize > crate::record::RECORD_BYTES_MAX);
        }
    }

    #[test]
    fn a_walk_follows_units() {
        let start = 64u64;
        let mut w = UnitWalk::new(2, start, 5);
        let h = encode_header(100, 5);
        assert_eq!(w.head(&h, start, 5), Ok(Next::UnitBegins));
        assert!(w.in_unit());
        assert!(
            w.head(&[0u8; 20], start + 20, 5).is_err(),
            "zeros inside a unit"
        );
        let mut other = UnitWalk::new(2, start, 5);
        assert!(other.head(&encode_header(100, 6), start, 5).is_err());
        assert_eq!(other.head(&[0u8; 20], start, 5), Ok(Next::End));
    }
}
