//! Strict sequential reading of segment files: every header, hash, link and seq
//! is checked. Readers and `parley verify` both stand on it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::fault::{Fault, Piece};
use super::frame::{check_body, HEADER_BYTES};
use super::unit::{Next, UnitWalk};
use super::{Head, LogError, Visit};
use crate::record::{Hash, Record, StoredRecord};

/// Bytes of a segment file header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
const SEGMENT_MAGIC: &[u8; 8] = b"PARLEYSG";
/// The segment format new segments are written in: version 2 frames every
/// write unit with a unit header and trailer (`super::unit`). Version 1
/// segments (frames only) are still read.
pub const SEGMENT_VERSION: u32 = 2;
const SEGMENT_SUFFIX: &str = ".seg";

/// The file name of the segment whose first record is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The header of a new segment:
/// magic (8) | version u32 | reserved u32 | first_seq u64 | capacity u64 |
/// check u32 (first 4 bytes of blake3 of bytes 0..32) | zeroes to 64.
/// `capacity` is the preallocated length: a file shorter than that was truncated.
pub fn segment_header(first_seq: u64, capacity: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    versioned_header(SEGMENT_VERSION, first_seq, capacity)
}

fn versioned_header(version: u32, first_seq: u64, capacity: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    h[24..32].copy_from_slice(&capacity.to_le_bytes());
    let check = blake3::hash(&h[..32]);
    h[32..36].copy_from_slice(&check.as_bytes()[..4]);
    h
}

/// A segment file opened and its header checked.
pub struct Opened {
    pub file: File,
    /// Its length now.
    pub len: u64,
    /// The length it was preallocated with.
    pub capacity: u64,
    /// Its format version (1: frames only; 2: write units).
    pub version: u32,
}

/// Opens a segment and checks its header. Reads with `pread`, so the
/// file's position is unchanged.
pub fn open_segment(path: &Path, first_seq: u64) -> Result<Opened, LogError> {
    let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| LogError::io("stat", path, e))?
        .len();
    let mut header = vec![0u8; SEGMENT_HEADER_BYTES];
    let n = file
        .read_at(&mut header, 0)
        .map_err(|e| LogError::io("read", path, e))?;
    let (capacity, version) =
        check_segment_header(&header[..n], first_seq).map_err(|r| LogError::Corrupt {
            seq: first_seq,
            reason: format!("{}: {r}", path.display()),
        })?;
    Ok(Opened {
        file,
        len: file_len,
        capacity,
        version,
    })
}

/// Checks a segment header against the seq its file name promises; returns
/// the capacity it was created with and its format version.
pub fn check_segment_header(bytes: &[u8], first_seq: u64) -> Result<(u64, u32), Fault> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(Fault::CutShort {
            piece: Piece::SegmentHeader,
            got: bytes.len(),
            needed: SEGMENT_HEADER_BYTES,
        });
    }
    let mut capacity = [0u8; 8];
    capacity.copy_from_slice(&bytes[24..32]);
    let capacity = u64::from_le_bytes(capacity);
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !(1..=SEGMENT_VERSION).contains(&version)
        || bytes[..SEGMENT_HEADER_BYTES] != versioned_header(version, first_seq, capacity)
    {
        return Err(Fault::SegmentHeader {
            newest: SEGMENT_VERSION,
            first_seq,
        });
    }
    Ok((capacity, version))
}

/// A version-1 segment header (tests of older ledgers).
pub fn legacy_segment_header(first_seq: u64, capacity: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    versioned_header(1, first_seq, capacity)
}

/// The error for a segment file shorter than it was created.
pub fn truncated(path: &Path, len: u64, capacity: u64) -> String {
    format!(
        "{} is {len} bytes but was created with {capacity}: the file was truncated and records are missing",
        path.display()
    )
}

/// The segment files of a log directory, by first seq. Leftover `.tmp` files
/// (a crash while creating a segment) are not segments.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("read directory", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        let first_seq = stem
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 1 && stem.len() == 20)
            .ok_or_else(|| LogError::BadSegmentName(name.to_string()))?;
        out.push((first_seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub fn read_full(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize, LogError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io("read", path, e)),
        }
    }
    Ok(filled)
}

/// After the end-of-data marker only preallocated zeroes may follow; anything
/// else is data a zeroed frame header hides.
fn expect_zeroes(reader: &mut impl Read, path: &Path, seq: u64) -> Result<(), LogError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut skipped = 0u64;
    loop {
        let n = read_full(reader, &mut buf, path)?;
        if let Some(p) = buf[..n].iter().position(|b| *b != 0) {
            return Err(LogError::Corrupt {
                seq,
                reason: format!(
                    "{}: data {} bytes past the end-of-data marker (a zeroed or torn frame hides it)",
                    path.display(),
                    skipped + p as u64
                ),
            });
        }
        if n < buf.len() {
            return Ok(());
        }
        skipped += n as u64;
    }
}

/// Position of a scan: the seq expected next and the hash it must link to.
struct Cursor {
    next_seq: u64,
    prev_hash: Option<Hash>,
}

/// Visits records `from..=to` of the segment files in `dir`, checking every frame
/// from the start of the segment that holds `from`. Returns the last record visited.
/// With `to == u64::MAX` it reads to the end of the written data, so any damage,
/// including a torn final frame, is reported as `Corrupt` at the seq it hit.
pub fn scan_dir(
    dir: &Path,
    from: u64,
    to: u64,
    visit: &mut Visit<'_>,
) -> Result<Option<Head>, LogError> {
    if to.saturating_sub(from) < PIPELINE_MIN_RECORDS {
        let mut last = None;
        walk_dir(dir, from, to, &mut |f: Frame<'_>| {
            if f.seq >= from {
                last = Some(decode_visit(f, visit)?);
            }
            Ok(())
        })?;
        return Ok(last);
    }
    pipelined(dir, from, to, visit)
}

/// A frame whose hash, link and framing checked: not yet decoded.
struct Frame<'a> {
    seq: u64,
    prev_hash: Hash,
    hash: Hash,
    payload: &'a [u8],
    path: &'a Path,
}

type FrameSink<'a> = dyn FnMut(Frame<'_>) -> Result<(), LogError> + 'a;

/// Decodes a checked frame, checks its seq and visits it; its head.
fn decode_visit(f: Frame<'_>, visit: &mut Visit<'_>) -> Result<Head, LogError> {
    let corrupt = |reason: String| LogError::Corrupt {
        seq: f.seq,
        reason: format!("{}: {reason}", f.path.display()),
    };
    let record = Record::decode(f.payload).map_err(|e| corrupt(e.to_string()))?;
    if record.envelope.seq != f.seq {
        return Err(corrupt(format!(
            "record says seq {}, its position is seq {}",
            record.envelope.seq, f.seq
        )));
    }
    let head = Head {
        seq: f.seq,
        hash: f.hash,
        recorded_at_ms: record.envelope.recorded_at_ms,
    };
    visit(StoredRecord {
        prev_hash: f.prev_hash,
        hash: f.hash,
        record,
    })?;
    Ok(head)
}

/// Scans shorter than this run on the caller's thread alone.
const PIPELINE_MIN_RECORDS: u64 = 8192;
/// Frames handed from the reading thread to the visitor at a time.
const PIPELINE_CHUNK: usize = 1024;
/// Chunks read ahead of the visitor (bounds the memory in flight).
const PIPELINE_CHUNKS: usize = 4;

/// Checked frames of one segment, copied out for the decoding thread.
struct Chunk {
    path: PathBuf,
    bytes: Vec<u8>,
    /// (seq, prev_hash, hash, payload's end in `bytes`), in order.
    frames: Vec<(u64, Hash, Hash, usize)>,
}

impl Chunk {
    fn new(path: &Path) -> Chunk {
        Chunk {
            path: path.to_path_buf(),
            bytes: Vec::with_capacity(PIPELINE_CHUNK * 512),
            frames: Vec::with_capacity(PIPELINE_CHUNK),
        }
    }
}

/// `scan_dir` on two threads: one reads and checks every frame (hash, link,
/// framing: the blake3 chain), the caller decodes and visits. Each thread
/// allocates and frees its own memory (records are made and dropped on the
/// caller's). The visitor sees the same records in the same order, and every
/// record before the first damaged one, as it would alone; then the same error.
fn pipelined(
    dir: &Path,
    from: u64,
    to: u64,
    visit: &mut Visit<'_>,
) -> Result<Option<Head>, LogError> {
    let (tx, rx) = crossbeam_channel::bounded::<Chunk>(PIPELINE_CHUNKS);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut chunk: Option<Chunk> = None;
            let result = walk_dir(dir, from, to, &mut |f: Frame<'_>| {
                if f.seq < from {
                    return Ok(());
                }
                let c = match &mut chunk {
                    Some(c) if c.path == f.path && c.frames.len() < PIPELINE_CHUNK => c,
                    _ => {
                        if let Some(full) = chunk.replace(Chunk::new(f.path)) {
                            tx.send(full).map_err(|_| LogError::Stopped)?;
                        }
                        chunk.get_or_insert_with(|| Chunk::new(f.path))
                    }
                };
                c.bytes.extend_from_slice(f.payload);
                c.frames.push((f.seq, f.prev_hash, f.hash, c.bytes.len()));
                Ok(())
            });
            // The records before a damaged one still reach the visitor.
            if let Some(c) = chunk {
                let _ = tx.send(c);
            }
            result
        });
        let mut last = None;
        let mut visited = Ok(());
        'chunks: for c in &rx {
            let mut start = 0;
            for &(seq, prev_hash, hash, end) in &c.frames {
                let frame = Frame {
                    seq,
                    prev_hash,
                    hash,
                    payload: &c.bytes[start..end],
                    path: &c.path,
                };
                start = end;
                match decode_visit(frame, visit) {
                    Ok(h) => last = Some(h),
                    Err(e) => {
                        visited = Err(e);
                        break 'chunks;
                    }
                }
            }
        }
        // The reader's next send fails once the receiver is gone: it stops.
        drop(rx);
        let read = match reader.join() {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        visited?;
        read.map(|()| last)
    })
}

/// Checks every frame of the records `from..=to` (from the start of the
/// segment that holds `from`): hash, link and framing, reported as `Corrupt`
/// at the seq it hit, without decoding the records (which random damage
/// cannot get past the hash check into). The writer's open uses it.
pub fn check_dir(dir: &Path, from: u64, to: u64) -> Result<(), LogError> {
    walk_dir(dir, from, to, &mut |_| Ok(()))
}

/// What checking one segment's frames found.
#[derive(Clone, Copy, Debug)]
pub struct SegmentCheck {
    /// The hash its first frame links to (`None`: it holds no frame).
    pub first_prev: Option<Hash>,
    /// The hash of the last record checked.
    pub last_hash: Option<Hash>,
    /// The seq after the last record checked.
    pub next_seq: u64,
}

/// Checks every frame of the one segment at `path` (hash, link, framing),
/// through seq `to` (to the end of the unit holding it), or to its end and
/// the zeros after its data when `to` lies beyond it. Its first frame's link
/// is returned, not checked: the caller joins segments.
pub fn check_segment(path: &Path, first_seq: u64, to: u64) -> Result<SegmentCheck, LogError> {
    let mut cursor = Cursor {
        next_seq: first_seq,
        prev_hash: None,
    };
    let mut first_prev = None;
    scan_segment(path, first_seq, to, &mut cursor, &mut |f: Frame<'_>| {
        first_prev.get_or_insert(f.prev_hash);
        Ok(())
    })?;
    Ok(SegmentCheck {
        first_prev,
        last_hash: cursor.prev_hash,
        next_seq: cursor.next_seq,
    })
}

/// Walks the segments from the one that holds `start` through seq `to`,
/// checking every frame and handing it to `sink`.
fn walk_dir(dir: &Path, start: u64, to: u64, sink: &mut FrameSink<'_>) -> Result<(), LogError> {
    let from = start;
    let segments = list_segments(dir)?;
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= from.max(1))
        .unwrap_or(0);
    let mut cursor = Cursor {
        next_seq: segments.get(start).map_or(1, |(s, _)| *s),
        prev_hash: None,
    };
    if start == 0 && cursor.next_seq != 1 {
        return Err(LogError::Corrupt {
            seq: 1,
            reason: format!("the first segment starts at seq {}", cursor.next_seq),
        });
    }
    for (first_seq, path) in &segments[start..] {
        if cursor.next_seq > to {
            break;
        }
        if *first_seq != cursor.next_seq {
            return Err(LogError::Corrupt {
                seq: cursor.next_seq,
                reason: format!(
                    "segment {} starts at seq {first_seq}, expected seq {}",
                    path.display(),
                    cursor.next_seq
                ),
            });
        }
        scan_segment(path, *first_seq, to, &mut cursor, sink)?;
    }
    Ok(())
}

fn scan_segment(
    path: &Path,
    first_seq: u64,
    to: u64,
    cursor: &mut Cursor,
    sink: &mut FrameSink<'_>,
) -> Result<(), LogError> {
    let seg = open_segment(path, first_seq)?;
    let (file_len, capacity) = (seg.len, seg.capacity);
    let mut reader = BufReader::with_capacity(1 << 20, seg.file);
    // `open_segment` reads with pread: the position is still at 0.
    reader
        .seek(SeekFrom::Start(SEGMENT_HEADER_BYTES as u64))
        .map_err(|e| LogError::io("seek", path, e))?;
    let mut units = UnitWalk::new(seg.version, SEGMENT_HEADER_BYTES as u64, first_seq);
    let mut offset = SEGMENT_HEADER_BYTES as u64;
    let mut frame_head = [0u8; HEADER_BYTES];
    let mut body = Vec::new();
    // A scan that stops at `to` still reads to the end of the unit holding
    // it, so that unit's trailer is checked too.
    while cursor.next_seq <= to || units.in_unit() {
        let seq = cursor.next_seq;
        // Damage to a unit's trailer is named at the unit's last record.
        let named = if units.at_trailer(offset) {
            seq - 1
        } else {
            seq
        };
        let corrupt = |reason: Fault| LogError::Corrupt {
            seq: named,
            reason: format!("{}: {reason}", path.display()),
        };
        let n = read_full(&mut reader, &mut frame_head, path)?;
        if n == 0 && file_len < capacity {
            return Err(LogError::Corrupt {
                seq,
                reason: truncated(path, file_len, capacity),
            });
        }
        let header = match units.head(&frame_head[..n], offset, seq) {
            Ok(Next::Frame(h)) => h,
            Ok(Next::End) => return expect_zeroes(&mut reader, path, seq),
            Ok(Next::UnitBegins) => {
                offset += n as u64;
                continue;
            }
            Ok(Next::Trailer(len)) => {
                body.resize(len, 0);
                body[..HEADER_BYTES].copy_from_slice(&frame_head);
                let got = read_full(&mut reader, &mut body[HEADER_BYTES..], path)?;
                units
                    .trailer(&body[..HEADER_BYTES + got], offset, seq)
                    .map_err(corrupt)?;
                offset += len as u64;
                continue;
            }
            Err(reason) => return Err(corrupt(reason)),
        };
        body.resize(header.payload_len + 64, 0);
        let got = read_full(&mut reader, &mut body, path)?;
        let (prev_hash, hash) =
            check_body(&header, &body, got, cursor.prev_hash, seq).map_err(corrupt)?;
        let payload = &body[32..32 + header.payload_len];
        if seq <= to {
            sink(Frame {
                seq,
                prev_hash,
                hash,
                payload,
                path,
            })?;
        }
        cursor.prev_hash = Some(hash);
        cursor.next_seq += 1;
        offset += (HEADER_BYTES + body.len()) as u64;
    }
    Ok(())
}
