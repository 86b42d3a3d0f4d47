//! The segment-file engine: `DIR/log/<first_seq:020>.seg`, each a 64-byte
//! header then frames, preallocated so that a batch's fdatasync writes data,
//! not size. A batch is written in write units of at most
//! [`WRITE_UNIT_BYTES`]: one `pwrite` and one `fdatasync` each; every frame
//! names the first seq of its batch (recovery's evidence, `recovery`).
//!
//! Opening for writing takes an exclusive `flock` on the `log/` directory
//! itself (a file the ledger cannot run without), analyzes the tail
//! (`recovery::analyze`), refuses corruption and cuts off a torn final write
//! (and only that). Once the ledger has checked the rest of the log, `begin`
//! records the durable head as evidence in `log/head` (state "open"); the
//! live head is published there after every batch.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::disk::{Disk, DiskFile};

use super::frame::write_frame;
use super::head::{HeadWriter, State};
use super::open_check::Walked;
use super::read::LogFiles;
pub use super::recovery::WRITE_UNIT_BYTES;
use super::recovery::{analyze, Proof, Tail, TornTail};
use super::scan::{
    list_segments, segment_header, segment_name, SEGMENT_HEADER_BYTES, SEGMENT_VERSION,
};
use super::seal::Sealer;
use super::unit::{append_trailer, encode_header, UNIT_HEADER_BYTES};
use super::{check_continues, EncodedRecord, Head, Location, LogEngine, LogError, LogReader};
use crate::record::ZERO_HASH;

/// Default preallocated size of a segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Smallest segment size accepted.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// What opening for writing found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn final write (never acknowledged) that was cut off.
    pub torn_tail: Option<TornTail>,
    /// Leftover empty temporary segments of an interrupted creation, removed.
    pub removed_temp_files: u32,
    /// The last segment had lost part of its preallocated zeros after a
    /// clean close (nothing acknowledged was missing); it was extended again.
    pub reextended: bool,
    /// `log/head` was missing from a non-empty log: no evidence but the frames.
    pub head_file_missing: bool,
}

/// The exclusive writer lock: an `flock` on the `log/` directory.
pub struct WriterLock {
    dir: File,
    path: PathBuf,
}

impl WriterLock {
    /// Fails when `log/` is no longer the directory this lock holds (it was
    /// moved, replaced or deleted): writes would land where no one reads, and
    /// another writer may already hold the new one.
    pub fn still_held(&self) -> Result<(), LogError> {
        use std::os::unix::fs::MetadataExt;
        let held = self
            .dir
            .metadata()
            .map_err(|e| LogError::io("stat", &self.path, e))?;
        let now = std::fs::metadata(&self.path);
        match now {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => Ok(()),
            _ => Err(LogError::Replaced(self.path.clone())),
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is in use by another parley writer (parley serve or parley run)", .0.display())]
    Held(PathBuf),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Takes the exclusive writer lock on `log_dir` (which must exist).
pub fn lock(log_dir: &Path) -> Result<WriterLock, LockError> {
    use std::os::fd::AsRawFd;
    let dir = File::open(log_dir).map_err(|e| LogError::io("open", log_dir, e))?;
    // SAFETY: the fd is open and owned by `dir`; flock has no memory effects.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(LockError::Held(log_dir.to_path_buf()));
    }
    Ok(WriterLock {
        dir,
        path: log_dir.to_path_buf(),
    })
}

/// True when a writer holds the lock on `log_dir` right now.
pub fn writer_running(log_dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(dir) = File::open(log_dir) else {
        return false;
    };
    // SAFETY: as in `lock`; a shared lock taken is released at once.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above.
        unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    true
}

struct Active {
    file: Box<dyn DiskFile>,
    path: PathBuf,
    first_seq: u64,
    write_offset: u64,
    capacity: u64,
    /// Its format version: only a current one is appended to (a segment of
    /// an older build is sealed as it is, and the next unit starts a new one).
    version: u32,
    /// The digest of every byte written to it, from its first (`None` for a
    /// segment this writer did not create: the next open checks its frames).
    sealer: Option<Sealer>,
}

/// The durable engine.
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    active: Option<Active>,
    head: Option<Head>,
    buf: Vec<u8>,
    evidence: Arc<Mutex<HeadWriter>>,
    reader: Arc<LogFiles>,
    /// The writer's lock, checked before every batch is acknowledged.
    lock: Option<Arc<WriterLock>>,
    /// Every durable change goes through it (`super::disk`).
    disk: Arc<dyn Disk>,
    /// A write or fdatasync failed: after a failed fdatasync the page cache
    /// may have dropped the data, so nothing more is written or synced on
    /// this log (no retry can prove it durable); reopening recovers.
    failed: Option<String>,
    /// The last segment's first seq and frame offsets as recovery's walk
    /// found them at open (every frame checked), until taken.
    walked: Option<(u64, Vec<u64>)>,
}

/// Makes a file `len` bytes long with its blocks allocated.
fn preallocate(file: &dyn DiskFile, len: u64, path: &Path) -> Result<(), LogError> {
    if libc::off_t::try_from(len).is_err() {
        return Err(LogError::SegmentTooLarge(len));
    }
    file.allocate(len)
        .map_err(|e| LogError::io("preallocate", path, e))
}

fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    disk.sync_dir(dir)
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// Removes `*.seg.tmp` files that hold no frame (an interrupted segment
/// creation); a temp file with data in it is refused: it is not ours to delete.
fn remove_empty_temps(disk: &dyn Disk, dir: &Path) -> Result<u32, LogError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| LogError::io("read directory", dir, e))?;
        if !entry.file_name().to_string_lossy().ends_with(".seg.tmp") {
            continue;
        }
        let path = entry.path();
        let data = std::fs::read(&path).map_err(|e| LogError::io("read", &path, e))?;
        let body = data.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
        if body.iter().any(|b| *b != 0) {
            return Err(LogError::StrayTemp(path));
        }
        disk.remove_file(&path)
            .map_err(|e| LogError::io("remove", &path, e))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(disk, dir)?;
    }
    Ok(removed)
}

impl SegmentLog {
    /// Opens the log in `dir` for writing (the caller holds `lock`):
    /// refuses corruption, cuts off a torn final write, records evidence.
    /// `proof` is the evidence every reader uses too ([`Proof::gather`]).
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        proof: Proof,
        index_dir: &Path,
        lock: Option<Arc<WriterLock>>,
        disk: Arc<dyn Disk>,
    ) -> Result<(SegmentLog, Recovery), LogError> {
        if segment_bytes < MIN_SEGMENT_BYTES {
            return Err(LogError::SegmentTooSmall {
                bytes: segment_bytes,
                min: MIN_SEGMENT_BYTES,
            });
        }
        let mut tail = analyze(dir, proof)?;
        // Only a log recovery accepts: leftovers of an interrupted creation go.
        let mut recovery = Recovery {
            removed_temp_files: remove_empty_temps(disk.as_ref(), dir)?,
            ..Recovery::default()
        };
        recovery.head_file_missing =
            proof.head_file.is_none() && proof.live.is_none() && tail.head.is_some();
        if let Some(t) = &tail.torn {
            cut(disk.as_ref(), t)?;
            tracing::warn!(
                seq = t.seq,
                offset = t.offset,
                bytes = t.bytes,
                "cut off a torn final write (never acknowledged): {}",
                t.reason
            );
        }
        recovery.torn_tail = tail.torn.clone();
        recovery.reextended = tail.short_segment;
        let active = open_active(disk.as_ref(), &tail)?;
        let reader = Arc::new(LogFiles::new(dir, index_dir));
        // The walk checked every frame of the last segment through the head.
        let chain = tail.last.as_ref().and_then(|l| {
            let head = tail.head.filter(|h| h.seq >= l.first_seq)?;
            Some(Walked {
                first_seq: l.first_seq,
                first_prev: l.first_prev?,
                last: (head.seq, head.hash),
            })
        });
        if let Some(w) = chain {
            reader.note_walked(w);
        }
        let walked = tail.last.take().map(|l| (l.first_seq, l.offsets));
        let evidence = HeadWriter::open(dir, proof.head_file)?.with_disk(Arc::clone(&disk));
        Ok((
            SegmentLog {
                dir: dir.to_path_buf(),
                segment_bytes,
                active,
                head: tail.head,
                buf: Vec::new(),
                evidence: Arc::new(Mutex::new(evidence)),
                reader,
                lock,
                disk,
                failed: None,
                walked,
            },
            recovery,
        ))
    }

    /// Writes the seal of a segment this writer filled from its first byte
    /// (derived: a failure only costs the next open its frame check).
    fn seal(&self, sealed: Active) {
        let (Some(sealer), Some(head)) = (sealed.sealer, self.head) else {
            return;
        };
        debug_assert!(
            head.seq >= sealed.first_seq,
            "a sealed segment holds a record"
        );
        let seal = sealer.finish(sealed.first_seq, sealed.capacity, (head.seq, head.hash));
        let Some(seal) = seal else { return };
        if let Err(e) = seal.write(self.reader.index_dir()) {
            tracing::warn!(segment = %sealed.path.display(), error = %e, "could not write the segment's seal");
        }
    }

    /// The last segment's first seq and the offsets of its frames up to the
    /// head, as the open's walk found them (once; `None` after).
    pub fn take_walked(&mut self) -> Option<(u64, Vec<u64>)> {
        self.walked.take()
    }

    /// The shared handle on `log/head` (the projector records evidence with it).
    pub fn evidence(&self) -> Arc<Mutex<HeadWriter>> {
        Arc::clone(&self.evidence)
    }

    /// The reader over these files.
    pub fn files(&self) -> Arc<LogFiles> {
        Arc::clone(&self.reader)
    }

    fn create_segment(&self, first_seq: u64, capacity: u64) -> Result<Active, LogError> {
        let path = self.dir.join(segment_name(first_seq));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(first_seq)));
        let made = (|| {
            let file = self
                .disk
                .create_new(&tmp)
                .map_err(|e| LogError::io("create", &tmp, e))?;
            preallocate(file.as_ref(), capacity, &tmp)?;
            file.write_all_at(&segment_header(first_seq, capacity), 0)
                .map_err(|e| LogError::io("write", &tmp, e))?;
            file.sync_all()
                .map_err(|e| LogError::io("fsync", &tmp, e))?;
            Ok(file)
        })();
        let file = match made {
            Ok(f) => f,
            Err(e) => {
                // A failed creation (a full disk) leaves nothing behind.
                let _ = self.disk.remove_file(&tmp);
                return Err(e);
            }
        };
        self.disk
            .rename(&tmp, &path)
            .map_err(|e| LogError::io("rename", &tmp, e))?;
        sync_dir(self.disk.as_ref(), &self.dir)?;
        let prev_hash = self.head.map_or(ZERO_HASH, |h| h.hash);
        Ok(Active {
            file,
            path,
            first_seq,
            write_offset: SEGMENT_HEADER_BYTES as u64,
            capacity,
            version: SEGMENT_VERSION,
            sealer: Some(Sealer::new(&segment_header(first_seq, capacity), prev_hash)),
        })
    }

    /// One write and one fdatasync for `unit` of the batch starting at
    /// `batch_first_seq`, rolling to a new segment first when it does not fit:
    /// its unit header, its frames and its trailer (`super::unit`).
    fn write_unit(
        &mut self,
        batch_first_seq: u64,
        unit: &[EncodedRecord],
        at: &mut Vec<Location>,
    ) -> Result<(), LogError> {
        debug_assert!(!unit.is_empty());
        let body_len: usize = unit.iter().map(EncodedRecord::frame_len).sum();
        // The trailer's size depends on where the unit lands; at most one
        // piece per sector plus two.
        let most = (UNIT_HEADER_BYTES
            + body_len
            + super::unit::TRAILER_FIXED_BYTES
            + 4 * (body_len / 512 + 3)) as u64;
        let fits = self.active.as_ref().is_some_and(|a| {
            a.version == SEGMENT_VERSION
                && (a.write_offset + most <= a.capacity
                    || a.write_offset == SEGMENT_HEADER_BYTES as u64)
        });
        if !fits {
            let capacity = self.segment_bytes.max(SEGMENT_HEADER_BYTES as u64 + most);
            let next = self.create_segment(unit[0].seq, capacity)?;
            if let Some(sealed) = self.active.replace(next) {
                self.seal(sealed);
            }
        }
        let active = self.active.as_mut().ok_or(LogError::NoActiveSegment)?;
        let start = active.write_offset;
        self.buf.clear();
        // A unit holds at most WRITE_UNIT_BYTES of frames plus one record: u32.
        let body = u32::try_from(body_len).map_err(|_| LogError::UnitTooLarge(body_len))?;
        self.buf
            .extend_from_slice(&encode_header(body, unit[0].seq));
        for record in unit {
            write_frame(&mut self.buf, batch_first_seq, record);
        }
        let records = u32::try_from(unit.len()).map_err(|_| LogError::UnitTooLarge(body_len))?;
        let framed = self.buf.len();
        let mut trailer = Vec::new();
        append_trailer(&mut trailer, start, &self.buf[..framed], records);
        self.buf.extend_from_slice(&trailer);
        let len = self.buf.len() as u64;
        debug_assert!(len <= most, "the unit fits the room it was given");
        if start + len > active.capacity {
            // An empty segment and a unit larger than the segment size.
            active.capacity = start + len;
            preallocate(active.file.as_ref(), active.capacity, &active.path)?;
        }
        active
            .file
            .write_all_at(&self.buf, start)
            .map_err(|e| LogError::io("write", &active.path, e))?;
        active
            .file
            .sync_data()
            .map_err(|e| LogError::io("fdatasync", &active.path, e))?;
        if let Some(sealer) = &mut active.sealer {
            if !sealer.wrote(start, &self.buf) {
                active.sealer = None;
            }
        }
        let mut offset = start + UNIT_HEADER_BYTES as u64;
        for r in unit {
            at.push((active.first_seq, offset));
            offset += r.frame_len() as u64;
        }
        debug_assert_eq!(offset, start + framed as u64);
        active.write_offset = start + len;
        let last = &unit[unit.len() - 1];
        self.head = Some(Head {
            seq: last.seq,
            hash: last.hash,
            recorded_at_ms: last.recorded_at_ms,
        });
        Ok(())
    }
}

/// Zeroes a torn final write (the file keeps its preallocated length, so a
/// crash during this repair cannot look like a cut file).
fn cut(disk: &dyn Disk, t: &TornTail) -> Result<(), LogError> {
    let file = disk
        .open(&t.segment, false)
        .map_err(|e| LogError::io("open", &t.segment, e))?;
    let zeros = vec![0u8; usize::try_from(t.bytes).unwrap_or(0)];
    file.write_all_at(&zeros, t.offset)
        .map_err(|e| LogError::io("write", &t.segment, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fdatasync", &t.segment, e))
}

/// The last segment, opened for writing at the end of its valid data.
fn open_active(disk: &dyn Disk, tail: &Tail) -> Result<Option<Active>, LogError> {
    let Some(last) = &tail.last else {
        return Ok(None);
    };
    let file = disk
        .open(&last.path, false)
        .map_err(|e| LogError::io("open", &last.path, e))?;
    let len = file
        .size_bytes()
        .map_err(|e| LogError::io("stat", &last.path, e))?;
    if len < last.capacity {
        // Only after a clean close with nothing missing (recovery checked).
        preallocate(file.as_ref(), last.capacity, &last.path)?;
    }
    Ok(Some(Active {
        file,
        path: last.path.clone(),
        first_seq: last.first_seq,
        write_offset: last.end,
        capacity: last.capacity.max(len),
        version: last.version,
        sealer: None,
    }))
}

impl LogEngine for SegmentLog {
    fn head(&self) -> Option<Head> {
        self.head
    }

    fn append(&mut self, batch: &[EncodedRecord], at: &mut Vec<Location>) -> Result<(), LogError> {
        if let Some(why) = &self.failed {
            return Err(LogError::WriteFailed(why.clone()));
        }
        let appended = self.append_units(batch, at);
        if let Err(e) = &appended {
            // Never retried on this file: see `failed`.
            self.failed = Some(e.to_string());
        }
        appended
    }

    fn reader(&self) -> Arc<dyn LogReader> {
        Arc::clone(&self.reader) as Arc<dyn LogReader>
    }

    fn begin(&mut self) -> Result<(), LogError> {
        let (seq, hash) = self.head.map_or((0, [0; 32]), |h| (h.seq, h.hash));
        let mut evidence = self
            .evidence
            .lock()
            .map_err(|_| LogError::Poisoned("head file"))?;
        evidence.record(State::Open, seq, hash)?;
        evidence.publish_live(seq, hash)
    }

    fn record_evidence(&mut self, closed: bool) -> Result<(), LogError> {
        let (seq, hash) = self.head.map_or((0, [0; 32]), |h| (h.seq, h.hash));
        // After a failed write the tail may hold bytes past the head: a
        // "closed" claim (nothing written after it) would be false.
        let state = if closed && self.failed.is_none() {
            State::Closed
        } else {
            State::Open
        };
        self.evidence
            .lock()
            .map_err(|_| LogError::Poisoned("head file"))?
            .record(state, seq, hash)
    }
}

impl SegmentLog {
    /// The batch in write units, then the live head (see `append`).
    fn append_units(
        &mut self,
        batch: &[EncodedRecord],
        at: &mut Vec<Location>,
    ) -> Result<(), LogError> {
        check_continues(self.head, batch)?;
        let Some(first) = batch.first().map(|r| r.seq) else {
            return Ok(());
        };
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
            self.write_unit(first, unit, at)?;
            rest = tail;
        }
        // The batch went into the directory this writer locked: if that is
        // no longer DIR/log, no acknowledgement may claim it is in the ledger.
        if let Some(lock) = &self.lock {
            lock.still_held()?;
        }
        if let Some(h) = self.head {
            let mut evidence = self
                .evidence
                .lock()
                .map_err(|_| LogError::Poisoned("head file"))?;
            evidence.publish_live(h.seq, h.hash)?;
        }
        Ok(())
    }
}

/// The segments of `dir` (for tests and tools).
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    list_segments(dir)
}
