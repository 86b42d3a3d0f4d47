//! Recovery analysis: what the end of the log is, and whether damage there is
//! a torn write (never acknowledged: a writer may cut it off) or corruption
//! of acknowledged data (refused by every command, never cut off).
//!
//! The argument (ARCHITECTURE.md, "Recovery"):
//! 1. Only the write in flight at a crash can be torn: one write unit of the
//!    last segment, at most [`WRITE_UNIT_BYTES`] plus one frame past the end
//!    of the valid data.
//! 2. A command is acknowledged only after its batch's fdatasync, and the
//!    next batch is written only after the previous batch's acknowledgements.
//!    Every frame names the first seq of its batch, so a valid frame of a
//!    batch starting at B proves every seq below B was acknowledged.
//! 3. `log/head` holds evidence (fsynced at open, about every second while a
//!    writer runs, and at a clean close): every seq up to its seq was
//!    acknowledged; a clean close means nothing was written after it.
//! 4. The derived store's applied marker (when the writer can open it) is
//!    written only after the log is durable: another lower bound.
//! 5. Damage at seq S is a torn write only if the last writer did not close
//!    cleanly, S is above every piece of evidence, and nothing but the rest of
//!    one write unit (then zeros) follows it. Anything else is corruption.
//!
//! This module only reads. Cutting a torn write off is the writer's job
//! (`segment::SegmentLog::open`).

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, parse_frame, parse_header, Parsed};
use super::head::{Evidence, State};
use super::scan::{list_segments, open_segment, read_full, scan_dir, SEGMENT_HEADER_BYTES};
use super::{Head, LogError};
use crate::record::{Hash, Record, MAX_RECORD_BYTES};

/// Most bytes one write (and its fdatasync) carries.
pub const WRITE_UNIT_BYTES: usize = 8 << 20;
/// How far past the end of valid data a torn write can reach.
pub const TAIL_WINDOW_BYTES: usize = WRITE_UNIT_BYTES + MAX_RECORD_BYTES + frame::OVERHEAD_BYTES;

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
    /// Where its valid data ends.
    pub end: u64,
    /// The offset of each valid frame.
    pub offsets: Vec<u64>,
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

/// Everything that proves acknowledgement, besides the frames themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proof {
    pub head_file: Option<Evidence>,
    /// The derived store's applied marker.
    pub derived: Option<u64>,
}

impl Proof {
    fn acknowledged(&self) -> u64 {
        self.head_file
            .map_or(0, |e| e.seq)
            .max(self.derived.unwrap_or(0))
    }
    fn clean(&self) -> bool {
        self.head_file.is_some_and(|e| e.state == State::Closed)
    }
}

/// A scan of the last segment up to its first problem.
struct Walk {
    end: u64,
    offsets: Vec<u64>,
    head: Option<Head>,
    /// The hash of each seq the caller asked about, if reached.
    wanted: Option<(u64, Hash)>,
    problem: Option<String>,
    last_payload: Vec<u8>,
}

fn walk(path: &Path, file: &File, first_seq: u64, want: u64) -> Result<Walk, LogError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    // The file's position is shared by every handle on it: set it explicitly.
    use std::io::Seek;
    reader
        .seek(std::io::SeekFrom::Start(SEGMENT_HEADER_BYTES as u64))
        .map_err(|e| LogError::io("seek", path, e))?;
    let mut w = Walk {
        end: SEGMENT_HEADER_BYTES as u64,
        offsets: Vec::new(),
        head: None,
        wanted: None,
        problem: None,
        last_payload: Vec::new(),
    };
    let mut seq = first_seq;
    let mut buf = Vec::new();
    let mut prev: Option<Hash> = None;
    loop {
        buf.resize(frame::HEADER_BYTES, 0);
        let n = read_full(&mut reader, &mut buf, path)?;
        let header = match parse_header(&buf[..n]) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(reason) => {
                w.problem = Some(reason);
                break;
            }
        };
        buf.resize(frame::OVERHEAD_BYTES + header.payload_len, 0);
        let got = read_full(&mut reader, &mut buf[frame::HEADER_BYTES..], path)?;
        if got < buf.len() - frame::HEADER_BYTES {
            w.problem = Some("frame cut short".into());
            break;
        }
        let Parsed::Frame(f) = parse_frame(&buf) else {
            w.problem = Some("frame does not parse".into());
            break;
        };
        if let Some(problem) = frame_problem(&f, prev, seq) {
            w.problem = Some(problem);
            break;
        }
        if seq == want {
            w.wanted = Some((seq, f.hash));
        }
        w.last_payload.clear();
        w.last_payload.extend_from_slice(f.payload);
        w.head = Some(Head {
            seq,
            hash: f.hash,
            recorded_at_ms: 0,
        });
        prev = Some(f.hash);
        w.offsets.push(w.end);
        w.end += f.len as u64;
        seq += 1;
    }
    if let Some(h) = w.head.as_mut() {
        h.recorded_at_ms = last_record_time(path, h.seq, &w.last_payload)?;
    }
    Ok(w)
}

/// Why a frame that parsed cannot follow the walk so far, if it cannot.
fn frame_problem(f: &frame::Frame<'_>, prev: Option<Hash>, seq: u64) -> Option<String> {
    if !f.self_valid() {
        return Some(frame::HASH_MISMATCH.into());
    }
    if prev.is_some_and(|p| p != f.prev_hash) {
        return Some("prev_hash does not link to the previous record".into());
    }
    if f.batch_first_seq > seq {
        return Some(format!(
            "frame claims a batch starting at seq {} after its own",
            f.batch_first_seq
        ));
    }
    None
}

/// The recording time of the last valid record, which must decode and sit
/// at its own position. A self-valid frame whose payload does not decode was
/// written by a broken writer, not torn by a crash: refuse rather than guess.
fn last_record_time(path: &Path, seq: u64, payload: &[u8]) -> Result<u64, LogError> {
    let record = Record::decode(payload).map_err(|e| LogError::Corrupt {
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
    Ok(record.envelope.recorded_at_ms)
}

/// After damage at `from`: the highest "acknowledged before" any valid frame
/// in the tail window proves, and whether anything but zeros lies past it.
fn after_damage(
    file: &File,
    path: &Path,
    from: u64,
    file_len: u64,
) -> Result<(u64, bool), LogError> {
    let window_len = usize::try_from(file_len.saturating_sub(from))
        .map_or(TAIL_WINDOW_BYTES, |l| l.min(TAIL_WINDOW_BYTES));
    let mut window = vec![0u8; window_len];
    file.read_exact_at(&mut window, from)
        .map_err(|e| LogError::io("read", path, e))?;
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
    // Past the window only preallocated zeros may stand.
    let mut offset = from + window_len as u64;
    let mut buf = vec![0u8; 1 << 16];
    while offset < file_len {
        let n = file
            .read_at(&mut buf, offset)
            .map_err(|e| LogError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok((proven, true));
        }
        offset += n as u64;
    }
    Ok((proven, false))
}

/// The bytes from `from` to the last non-zero byte of the tail window.
fn damage_extent(file: &File, from: u64, file_len: u64) -> u64 {
    let len = usize::try_from(file_len.saturating_sub(from))
        .map_or(TAIL_WINDOW_BYTES, |l| l.min(TAIL_WINDOW_BYTES));
    let mut window = vec![0u8; len];
    if file.read_exact_at(&mut window, from).is_err() {
        return 0;
    }
    window
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1)
}

fn corrupt(seq: u64, reason: String) -> LogError {
    LogError::Corrupt { seq, reason }
}

/// Analyzes the end of the log in `dir` against `proof`. Reads only.
pub fn analyze(dir: &Path, proof: Proof) -> Result<Tail, LogError> {
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
        return Ok(Tail::default());
    };
    let (file, file_len, capacity) = open_segment(&last_path, last_first)?;
    let want = proof.head_file.map_or(0, |e| e.seq);
    let w = walk(&last_path, &file, last_first, want)?;
    let head = match w.head {
        Some(h) => Some(h),
        None => head_before(dir, &segments, last_first, &last_path)?,
    };
    let head_seq = head.map_or(0, |h| h.seq);
    let mut tail = Tail {
        head,
        last: Some(LastSegment {
            first_seq: last_first,
            path: last_path.clone(),
            capacity,
            end: w.end,
            offsets: w.offsets,
        }),
        torn: None,
        short_segment: false,
    };
    check_evidence_hash(dir, &proof, head_seq, w.wanted)?;
    let extent = damage_extent(&file, w.end, file_len);
    let truncated = file_len < capacity;
    let truncated_error = || LogError::Truncated {
        path: last_path.clone(),
        len: file_len,
        capacity,
        last_seq: head_seq,
    };
    let problem = match w.problem {
        None if extent == 0 && !truncated => return finish(tail, acked, dir),
        None if extent == 0 => {
            // The preallocated zeros were cut off. Only a clean close proves
            // that nothing acknowledged stood in the part that is gone.
            if proof.clean() && acked <= head_seq {
                tail.short_segment = true;
                return finish(tail, acked, dir);
            }
            return Err(truncated_error());
        }
        // A torn write never shrinks a preallocated file: something cut it.
        _ if truncated => return Err(truncated_error()),
        None => "a zeroed frame header with data after it".to_owned(),
        Some(p) => p,
    };
    let seq = head_seq + 1;
    let end = tail.last.as_ref().map_or(0, |l| l.end);
    judge_damage(&file, &last_path, (end, file_len), &proof, seq, &problem)?;
    tail.torn = Some(TornTail {
        seq,
        segment: last_path,
        offset: end,
        bytes: extent,
        reason: problem,
    });
    finish(tail, acked, dir)
}

/// Damage at `end` (the first byte past the valid records) is a torn write
/// only if nothing proves a record at or past `seq` was acknowledged: not the
/// evidence, not a later batch in the tail window, not data past it.
fn judge_damage(
    file: &File,
    path: &Path,
    (end, file_len): (u64, u64),
    proof: &Proof,
    seq: u64,
    problem: &str,
) -> Result<(), LogError> {
    let want = proof.head_file.map_or(0, |e| e.seq);
    let acked = proof.acknowledged();
    let at = format!("{} offset {}", path.display(), end);
    if proof.clean() {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (the last writer closed cleanly at seq {want}, so nothing here is a torn write)"),
        ));
    }
    if acked >= seq {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (records up to seq {acked} were acknowledged)"),
        ));
    }
    let (proven, beyond) = after_damage(file, path, end, file_len)?;
    if proven >= seq {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (later batches follow: records up to seq {proven} were acknowledged)"),
        ));
    }
    if beyond {
        return Err(corrupt(
            seq,
            format!("{at}: {problem} (data lies beyond the reach of one torn write)"),
        ));
    }
    Ok(())
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

/// The evidence's (seq, hash) must be the log's: another ledger's head file,
/// or an altered log, is refused.
fn check_evidence_hash(
    dir: &Path,
    proof: &Proof,
    head_seq: u64,
    found: Option<(u64, Hash)>,
) -> Result<(), LogError> {
    let Some(e) = proof.head_file.filter(|e| e.seq >= 1 && e.seq <= head_seq) else {
        return Ok(());
    };
    let hash = match found {
        Some((seq, h)) if seq == e.seq => Some(h),
        _ => {
            let mut h = None;
            scan_dir(dir, e.seq, e.seq, &mut |r| {
                h = Some(r.hash);
                Ok(())
            })?;
            h
        }
    };
    if hash != Some(e.hash) {
        return Err(corrupt(
            e.seq,
            "log/head names this seq with another hash: the head file belongs to another ledger, or the record was altered".into(),
        ));
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
