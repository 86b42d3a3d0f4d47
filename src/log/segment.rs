//! The segment-file engine: `DIR/log/<first_seq:020>.seg`, each a 64-byte header
//! then frames, preallocated so that a batch's fdatasync writes data, not size.
//!
//! Recovery on open scans only the last segment. A bad frame there is a torn
//! tail when no self-valid frame of a later write batch follows it (the batch was
//! never fsynced, so never acknowledged): it is truncated and reported. Otherwise
//! acknowledged data is damaged and open refuses with `Corrupt`, naming the seq.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, later_batch_exists, parse_frame, write_frame, Parsed};
use super::offsets::{ActiveOffsets, OffsetStore, SharedActive};
use super::scan::{
    check_segment_header, list_segments, read_full, scan_dir, segment_header, segment_name,
    truncated, SEGMENT_HEADER_BYTES,
};
use super::{check_continues, EncodedRecord, Head, LogEngine, LogError, LogReader, Visit};
use crate::record::{Record, StoredRecord, MAX_RECORD_BYTES};

/// Default preallocated size of a segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// What recovery found and did on open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn final batch (never acknowledged) that was cut off: the seq its first
    /// damaged frame would have had, where it started, and how many bytes it had.
    pub torn_tail: Option<TornTail>,
    /// Leftover temporary files of an interrupted segment creation, removed.
    pub removed_temp_files: u32,
}

/// A torn final batch that recovery truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub seq: u64,
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

struct Active {
    file: File,
    path: PathBuf,
    write_offset: u64,
    capacity: u64,
}

/// The durable engine.
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    active: Option<Active>,
    head: Option<Head>,
    buf: Vec<u8>,
    /// Frame offsets of the active segment, shared with readers.
    offsets: SharedActive,
    /// Offsets of segments sealed since the writer last asked.
    sealed: Vec<(u64, Vec<u64>)>,
}

/// Makes a file `len` bytes long with its blocks allocated.
fn preallocate(file: &File, len: u64, path: &Path) -> Result<(), LogError> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(len)
        .map_err(|_| LogError::Layout(format!("segment size {len} is too large")))?;
    // SAFETY: the fd is open and owned by `file` for the duration of the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file
            .set_len(len)
            .map_err(|e| LogError::io("extend", path, e)),
        errno => Err(LogError::io(
            "preallocate",
            path,
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, recovering its tail.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(SegmentLog, Recovery), LogError> {
        assert!(segment_bytes >= 4096, "segment size must be at least 4 KiB");
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("create directory", dir, e))?;
        let mut recovery = Recovery::default();
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io("read directory", dir, e))? {
            let entry = entry.map_err(|e| LogError::io("read directory", dir, e))?;
            if entry.file_name().to_string_lossy().ends_with(".seg.tmp") {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
                recovery.removed_temp_files += 1;
            }
        }
        let segments = list_segments(dir)?;
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            active: None,
            head: None,
            buf: Vec::new(),
            offsets: SharedActive::default(),
            sealed: Vec::new(),
        };
        let Some((last_first, last_path)) = segments.last().cloned() else {
            return Ok((log, recovery));
        };
        let Recovered {
            end,
            head: tail_head,
            torn,
            offsets,
        } = recover_segment(&last_path, last_first)?;
        if let Ok(mut a) = log.offsets.write() {
            *a = ActiveOffsets {
                segment: last_first,
                offsets,
            };
        }
        recovery.torn_tail = torn;
        log.head = match tail_head {
            Some(h) => Some(h),
            None if segments.len() >= 2 => {
                // The last segment is empty: the head is the end of the one before.
                let (prev_first, _) = segments[segments.len() - 2];
                let mut ignore = |_| Ok(());
                let head = scan_dir(dir, prev_first, last_first - 1, &mut ignore)?;
                if head.map(|h| h.seq) != Some(last_first - 1) {
                    return Err(LogError::Corrupt {
                        seq: head.map_or(prev_first, |h| h.seq + 1),
                        reason: format!(
                            "segment {} is empty and the one before does not end at seq {}",
                            last_path.display(),
                            last_first - 1
                        ),
                    });
                }
                head
            }
            None if last_first == 1 => None,
            None => {
                return Err(LogError::Corrupt {
                    seq: 1,
                    reason: format!("the only segment starts at seq {last_first}"),
                })
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last_path)
            .map_err(|e| LogError::io("open", &last_path, e))?;
        let capacity = file
            .metadata()
            .map_err(|e| LogError::io("stat", &last_path, e))?
            .len();
        log.active = Some(Active {
            file,
            path: last_path,
            write_offset: end,
            capacity,
        });
        Ok((log, recovery))
    }

    fn create_segment(&self, first_seq: u64, capacity: u64) -> Result<Active, LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(first_seq)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| LogError::io("create", &tmp, e))?;
        preallocate(&file, capacity, &tmp)?;
        file.write_all_at(&segment_header(first_seq, capacity), 0)
            .map_err(|e| LogError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| LogError::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LogError::io("rename", &tmp, e))?;
        sync_dir(&self.dir)?;
        Ok(Active {
            file,
            path,
            write_offset: SEGMENT_HEADER_BYTES as u64,
            capacity,
        })
    }
}

/// Most bytes one write (and its fdatasync) carries. A crash can tear at most the
/// unit in flight, so recovery looks at most this far (plus one frame) past the
/// end of the valid data.
pub const WRITE_UNIT_BYTES: usize = 8 << 20;
const TAIL_WINDOW_BYTES: usize = WRITE_UNIT_BYTES + MAX_RECORD_BYTES + frame::OVERHEAD_BYTES;

fn read_at(file: &File, offset: u64, len: usize, path: &Path) -> Result<Vec<u8>, LogError> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io("read", path, e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Scans the last segment. Returns the end of its valid data, its last record,
/// and the torn tail it zeroed, if any.
fn recover_segment(path: &Path, first_seq: u64) -> Result<Recovered, LogError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| LogError::io("open", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| LogError::io("stat", path, e))?
        .len();
    let header = read_at(&file, 0, SEGMENT_HEADER_BYTES, path)?;
    let capacity =
        check_segment_header(&header, first_seq).map_err(|reason| LogError::Corrupt {
            seq: first_seq,
            reason: format!("{}: {reason}", path.display()),
        })?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    reader
        .seek(SeekFrom::Start(SEGMENT_HEADER_BYTES as u64))
        .map_err(|e| LogError::io("seek", path, e))?;
    let mut at = SEGMENT_HEADER_BYTES as u64;
    let mut seq = first_seq;
    let mut prev: Option<[u8; 32]> = None;
    let mut head = None;
    let mut frame_buf = Vec::new();
    let mut last_payload = Vec::new();
    let mut offsets = Vec::new();
    let problem = loop {
        frame_buf.resize(frame::HEADER_BYTES, 0);
        let n = read_full(&mut reader, &mut frame_buf, path)?;
        let header = match frame::parse_header(&frame_buf[..n]) {
            Ok(Some(h)) => h,
            Ok(None) => break None,
            Err(reason) => break Some(reason),
        };
        frame_buf.resize(frame::OVERHEAD_BYTES + header.payload_len, 0);
        let got = read_full(&mut reader, &mut frame_buf[frame::HEADER_BYTES..], path)?;
        if got < frame_buf.len() - frame::HEADER_BYTES {
            break Some("frame cut short".to_owned());
        }
        let f = match parse_frame(&frame_buf) {
            Parsed::Frame(f) => f,
            Parsed::End => break None,
            Parsed::Bad(reason) => break Some(reason),
        };
        if !f.self_valid() {
            break Some(frame::HASH_MISMATCH.into());
        }
        if prev.is_some_and(|p| p != f.prev_hash) {
            break Some("prev_hash does not link to the previous record".into());
        }
        // Position gives the seq; only the last frame is decoded (below).
        last_payload.clear();
        last_payload.extend_from_slice(f.payload);
        head = Some(Head {
            seq,
            hash: f.hash,
            recorded_at_ms: 0,
        });
        prev = Some(f.hash);
        offsets.push(at);
        at += f.len as u64;
        seq += 1;
    };
    drop(reader);
    if let Some(h) = head.as_mut() {
        // A self-valid frame whose payload does not decode was written by a
        // broken writer, not torn by a crash: refuse rather than guess.
        let record = Record::decode(&last_payload).map_err(|e| LogError::Corrupt {
            seq: h.seq,
            reason: format!("{}: {e}", path.display()),
        })?;
        if record.envelope.seq != h.seq {
            return Err(LogError::Corrupt {
                seq: h.seq,
                reason: format!(
                    "{}: record says seq {}, its position is seq {}",
                    path.display(),
                    record.envelope.seq,
                    h.seq
                ),
            });
        }
        h.recorded_at_ms = record.envelope.recorded_at_ms;
    }
    if file_len < capacity {
        // A torn write never shrinks a preallocated file; something cut it.
        return Err(LogError::Corrupt {
            seq,
            reason: truncated(path, file_len, capacity),
        });
    }
    let window_len =
        usize::try_from(file_len - at).map_or(TAIL_WINDOW_BYTES, |l| l.min(TAIL_WINDOW_BYTES));
    let window = read_at(&file, at, window_len, path)?;
    let problem = match problem {
        None if window.iter().all(|b| *b == 0) => {
            return Ok(Recovered {
                end: at,
                head,
                torn: None,
                offsets,
            })
        }
        None => "a zeroed frame header with data after it".to_owned(),
        Some(p) => p,
    };
    if later_batch_exists(&window, 0, seq) {
        return Err(LogError::Corrupt {
            seq,
            reason: format!(
                "{} offset {at}: {problem} (later batches follow, so this was acknowledged)",
                path.display()
            ),
        });
    }
    // A torn final write: zero it (the file keeps its preallocated length, so a
    // crash during this repair cannot look like a truncated file).
    let bytes = window.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    file.write_all_at(&vec![0u8; bytes], at)
        .map_err(|e| LogError::io("write", path, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fdatasync", path, e))?;
    tracing::warn!(
        seq,
        offset = at,
        bytes,
        "zeroed a torn final write (never acknowledged): {problem}"
    );
    let torn = TornTail {
        seq,
        segment: path.to_path_buf(),
        offset: at,
        bytes: bytes as u64,
    };
    Ok(Recovered {
        end: at,
        head,
        torn: Some(torn),
        offsets,
    })
}

/// What scanning the last segment found.
struct Recovered {
    /// End of the valid data.
    end: u64,
    head: Option<Head>,
    torn: Option<TornTail>,
    /// Offset of every valid frame.
    offsets: Vec<u64>,
}

impl SegmentLog {
    /// One write and one fdatasync for `unit`, rolling to a new segment first
    /// when it does not fit the current one.
    fn write_unit(&mut self, unit: &[EncodedRecord]) -> Result<(), LogError> {
        let first_seq = unit[0].seq;
        self.buf.clear();
        for record in unit {
            write_frame(&mut self.buf, first_seq, record);
        }
        let len = self.buf.len() as u64;
        let fits = self.active.as_ref().is_some_and(|a| {
            a.write_offset + len <= a.capacity || a.write_offset == SEGMENT_HEADER_BYTES as u64
        });
        if !fits {
            let capacity = self.segment_bytes.max(SEGMENT_HEADER_BYTES as u64 + len);
            self.active = Some(self.create_segment(first_seq, capacity)?);
            if let Ok(mut a) = self.offsets.write() {
                let old = std::mem::replace(
                    &mut *a,
                    ActiveOffsets {
                        segment: first_seq,
                        offsets: Vec::new(),
                    },
                );
                if old.segment != 0 && !old.offsets.is_empty() {
                    self.sealed.push((old.segment, old.offsets));
                }
            }
        }
        let active = self
            .active
            .as_mut()
            .ok_or_else(|| LogError::Layout("no active segment".into()))?;
        if active.write_offset + len > active.capacity {
            // An empty segment and a unit larger than the segment size.
            active.capacity = active.write_offset + len;
            preallocate(&active.file, active.capacity, &active.path)?;
        }
        active
            .file
            .write_all_at(&self.buf, active.write_offset)
            .map_err(|e| LogError::io("write", &active.path, e))?;
        active
            .file
            .sync_data()
            .map_err(|e| LogError::io("fdatasync", &active.path, e))?;
        if let Ok(mut a) = self.offsets.write() {
            let mut at = active.write_offset;
            for r in unit {
                a.offsets.push(at);
                at += r.frame_len() as u64;
            }
        }
        active.write_offset += len;
        let last = &unit[unit.len() - 1];
        self.head = Some(Head {
            seq: last.seq,
            hash: last.hash,
            recorded_at_ms: last.recorded_at_ms,
        });
        Ok(())
    }
}

impl LogEngine for SegmentLog {
    fn head(&self) -> Option<Head> {
        self.head
    }

    fn append(&mut self, batch: &[EncodedRecord]) -> Result<(), LogError> {
        check_continues(self.head, batch)?;
        let mut rest = batch;
        while !rest.is_empty() {
            // A write unit: at least one record, at most WRITE_UNIT_BYTES otherwise.
            let mut bytes = 0;
            let count = rest
                .iter()
                .take_while(|r| {
                    bytes += r.frame_len();
                    bytes <= WRITE_UNIT_BYTES
                })
                .count()
                .max(1);
            let (unit, tail) = rest.split_at(count);
            self.write_unit(unit)?;
            rest = tail;
        }
        Ok(())
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::new(SegmentReader {
            dir: self.dir.clone(),
            active: Arc::clone(&self.offsets),
        })
    }

    fn take_sealed_offsets(&mut self) -> Vec<(u64, Vec<u64>)> {
        std::mem::take(&mut self.sealed)
    }
}

/// Reads segment files from any thread, independently of the writer.
pub struct SegmentReader {
    pub dir: PathBuf,
    active: SharedActive,
}

impl LogReader for SegmentReader {
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        scan_dir(&self.dir, from, to, visit).map(|_| ())
    }

    fn read_indexed(
        &self,
        seqs: &[u64],
        store: &dyn OffsetStore,
    ) -> Result<Vec<StoredRecord>, LogError> {
        super::offsets::read_indexed(&self.dir, &self.active, store, seqs)
    }
}
