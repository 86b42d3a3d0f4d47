//! Reading segment files from any thread or process, without a lock and
//! without writing: strict scans, single records by offset, and the seqs that
//! name an entity.
//!
//! Offsets and entity lists come from the segment index files (`index`), from
//! the active segment's index a running writer's projector keeps in memory,
//! or, where neither covers a segment, from walking it. Every record returned
//! is checked against its own hash and seq, so an index is only ever a hint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::frame::{parse_header, split_checked, HEADER_BYTES};
use super::index::{file_name, IndexFile, SegmentIndex};
use super::open_check::Walked;
use super::scan::{check_segment_header, list_segments, read_full, scan_dir, SEGMENT_HEADER_BYTES};
use super::unit::{Next, UnitWalk};
use super::{LogError, LogReader, Visit};
use crate::record::{Record, StoredRecord};

/// The active segment's index, shared by a writer's projector and readers.
pub type SharedIndex = Arc<RwLock<SegmentIndex>>;

/// Every frame offset of a segment up to seq `last` (`u64::MAX`: all), by
/// walking its frame headers (and, in a version-2 segment, its unit headers
/// and trailers). It stops after `last`: a running writer may be writing
/// the next unit right now, and a reader beside it must not read it.
pub fn walk_offsets(path: &Path, first_seq: u64, last: u64) -> Result<Vec<u64>, LogError> {
    Ok(walk_frames(path, first_seq, last)?
        .into_iter()
        .map(|f| f.0)
        .collect())
}

/// Every frame of a segment up to seq `last` as (offset, length), walked as
/// [`walk_offsets`] does.
pub fn walk_frames(path: &Path, first_seq: u64, last: u64) -> Result<Vec<(u64, u64)>, LogError> {
    let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_full(&mut reader, &mut header, path)?;
    let (_, version) =
        check_segment_header(&header[..n], first_seq).map_err(|reason| LogError::Corrupt {
            seq: first_seq,
            reason: reason.to_string(),
        })?;
    let mut units = UnitWalk::new(version, SEGMENT_HEADER_BYTES as u64, first_seq);
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES as u64;
    let mut frame_head = [0u8; HEADER_BYTES];
    loop {
        let seq = first_seq + out.len() as u64;
        if seq > last {
            return Ok(out);
        }
        let n = read_full(&mut reader, &mut frame_head, path)?;
        let skip = match units.head(&frame_head[..n], at, seq) {
            Ok(Next::Frame(h)) => {
                out.push((at, (HEADER_BYTES + h.payload_len + 64) as u64));
                h.payload_len + 64
            }
            Ok(Next::End) => return Ok(out),
            Ok(Next::UnitBegins) => 0,
            Ok(Next::Trailer(len)) => {
                // Offsets only: the trailer is checked by scans and recovery.
                units.skip_trailer(at + len as u64, seq);
                len - HEADER_BYTES
            }
            // A damaged or torn frame ends what can be walked; the records
            // before it are still found, and reading this one fails its checks.
            Err(_) if n < HEADER_BYTES => return Ok(out),
            Err(reason) => {
                return Err(LogError::Corrupt {
                    seq,
                    reason: reason.to_string(),
                })
            }
        };
        reader
            .seek_relative(i64::try_from(skip).unwrap_or(i64::MAX))
            .map_err(|e| LogError::io("seek", path, e))?;
        at += (n + skip) as u64;
    }
}

/// The record at `offset`, if it is record `seq` and its hash holds.
fn read_at(
    file: &File,
    offset: u64,
    seq: u64,
    path: &Path,
) -> Result<Option<StoredRecord>, LogError> {
    let mut head = [0u8; HEADER_BYTES];
    if file.read_exact_at(&mut head, offset).is_err() {
        return Ok(None);
    }
    let Ok(Some(h)) = parse_header(&head) else {
        return Ok(None);
    };
    let mut body = vec![0u8; h.payload_len + 64];
    if let Err(e) = file.read_exact_at(&mut body, offset + HEADER_BYTES as u64) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(LogError::io("read", path, e))
        };
    }
    let Some((prev_hash, payload, hash)) = split_checked(&body, h.payload_len) else {
        return Ok(None);
    };
    match Record::decode(payload) {
        Ok(record) if record.envelope.seq == seq => Ok(Some(StoredRecord {
            prev_hash,
            hash,
            record,
        })),
        _ => Ok(None),
    }
}

/// The segment files and index files of one ledger.
pub struct LogFiles {
    log_dir: PathBuf,
    index_dir: PathBuf,
    /// Set while a writer in this process keeps the active segment's index.
    active: RwLock<Option<SharedIndex>>,
    /// Index files opened and checked against their segment, by first seq.
    opened: Mutex<BTreeMap<u64, Arc<IndexFile>>>,
    /// The segment a writer's recovery walk checked at open, for its
    /// `check_opening` (taken once).
    walked: Mutex<Option<Walked>>,
}

/// How one segment's entries are found.
enum Cover {
    /// An index file covers seqs up to its last one.
    File(Arc<IndexFile>),
    /// The writer's in-memory index.
    Memory(SharedIndex),
    /// Nothing: walk or scan the segment.
    None,
}

impl LogFiles {
    pub fn new(log_dir: &Path, index_dir: &Path) -> LogFiles {
        LogFiles {
            log_dir: log_dir.to_path_buf(),
            index_dir: index_dir.to_path_buf(),
            active: RwLock::new(None),
            opened: Mutex::new(BTreeMap::new()),
            walked: Mutex::new(None),
        }
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn index_dir(&self) -> &Path {
        &self.index_dir
    }

    /// The segment the writer's recovery walk just checked frame by frame:
    /// the open's check takes it instead of reading it again.
    pub fn note_walked(&self, walked: Walked) {
        if let Ok(mut w) = self.walked.lock() {
            *w = Some(walked);
        }
    }

    /// The writer's projector shares the active segment's index.
    pub fn share_active(&self, index: SharedIndex) {
        if let Ok(mut a) = self.active.write() {
            *a = Some(index);
        }
    }

    /// Forgets an opened index file (it was replaced).
    pub fn forget(&self, first_seq: u64) {
        if let Ok(mut o) = self.opened.lock() {
            o.remove(&first_seq);
        }
    }

    /// An index file for the segment at `first`, checked against the log:
    /// its last record must be where it says, with the hash it names.
    fn index_file(&self, first: u64, path: &Path) -> Option<Arc<IndexFile>> {
        if let Some(f) = self.opened.lock().ok()?.get(&first) {
            return Some(Arc::clone(f));
        }
        let try_open = |partial: bool| {
            let p = self.index_dir.join(file_name(first, partial));
            let f = IndexFile::open(&p).ok()?;
            if f.first_seq != first || f.count == 0 {
                return None;
            }
            let seg = File::open(path).ok()?;
            let last = read_at(&seg, f.offset(f.last_seq())?, f.last_seq(), path).ok()??;
            (last.hash == f.last_hash).then_some(f)
        };
        let f = Arc::new(try_open(false).or_else(|| try_open(true))?);
        if !f.partial {
            if let Ok(mut o) = self.opened.lock() {
                o.insert(first, Arc::clone(&f));
            }
        }
        Some(f)
    }

    /// Where record `seq` stands in the segment starting at `first`, as its
    /// index file (sealed, else `.partial`) says; unchecked, and `None`
    /// when no file of it covers `seq`.
    pub fn index_offset(&self, first: u64, seq: u64) -> Option<u64> {
        [false, true].into_iter().find_map(|partial| {
            IndexFile::open(&self.index_dir.join(file_name(first, partial)))
                .ok()
                .filter(|f| f.first_seq == first && f.partial == partial)
                .and_then(|f| f.offset(seq))
        })
    }

    fn cover(&self, first: u64, path: &Path) -> Cover {
        let memory = self
            .active
            .read()
            .ok()
            .and_then(|a| a.clone())
            .filter(|m| m.read().is_ok_and(|i| i.first_seq == first));
        match (memory, self.index_file(first, path)) {
            (Some(m), _) => Cover::Memory(m),
            (None, Some(f)) => Cover::File(f),
            (None, None) => Cover::None,
        }
    }

    /// Seqs in the segment `first..` (up to `to`) naming `entity`, by scanning.
    fn scan_entity(
        &self,
        from: u64,
        to: u64,
        entity: &str,
        out: &mut Vec<u64>,
    ) -> Result<(), LogError> {
        if from > to {
            return Ok(());
        }
        scan_dir(
            &self.log_dir,
            from,
            to,
            &mut super::entity_collector(entity, out),
        )
        .map(|_| ())
    }
}

impl LogReader for LogFiles {
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        scan_dir(&self.log_dir, from, to, visit).map(|_| ())
    }

    fn check(&self, from: u64, to: u64) -> Result<(), LogError> {
        super::scan::check_dir(&self.log_dir, from, to)
    }

    fn check_opening(&self, to: u64) -> Result<(), LogError> {
        let walked = self.walked.lock().ok().and_then(|mut w| w.take());
        let how =
            super::open_check::check_through(&self.log_dir, &self.index_dir, to, true, walked)?;
        tracing::info!(
            by_seal = how.by_seal,
            by_frames = how.by_frames,
            by_walk = how.by_walk,
            sealed_now = how.sealed_now,
            "checked the log through seq {to}"
        );
        Ok(())
    }

    fn read(&self, seqs: &[u64], head: u64) -> Result<Vec<StoredRecord>, LogError> {
        if let Some(beyond) = seqs.iter().find(|s| **s > head || **s == 0) {
            return Err(LogError::BeyondHead { seq: *beyond, head });
        }
        let segments = list_segments(&self.log_dir)?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut rest = seqs;
        for (i, (first, path)) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map_or(u64::MAX, |s| s.0);
            let split = rest.partition_point(|s| *s < next);
            let (here, later) = rest.split_at(split);
            rest = later;
            if here.is_empty() {
                continue;
            }
            let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
            let cover = self.cover(*first, path);
            let mut walked: Option<Vec<u64>> = None;
            for &seq in here {
                let hint = match &cover {
                    Cover::File(f) => f.offset(seq),
                    Cover::Memory(m) => m
                        .read()
                        .ok()
                        .and_then(|i| i.offsets.get((seq - first) as usize).copied()),
                    Cover::None => None,
                };
                if let Some(r) = hint
                    .map(|o| read_at(&file, o, seq, path))
                    .transpose()?
                    .flatten()
                {
                    out.push(r);
                    continue;
                }
                // Missing or stale: walk the segment once.
                if walked.is_none() {
                    // Only as far as the last record wanted here.
                    let wanted = here.last().copied().unwrap_or(head);
                    walked = Some(walk_offsets(path, *first, wanted)?);
                }
                let offset = walked
                    .as_ref()
                    .and_then(|w| w.get((seq - first) as usize).copied());
                match offset
                    .map(|o| read_at(&file, o, seq, path))
                    .transpose()?
                    .flatten()
                {
                    Some(r) => out.push(r),
                    None => {
                        return Err(LogError::Corrupt {
                            seq,
                            reason: format!(
                                "record {seq} is not where the log says, or is damaged"
                            ),
                        })
                    }
                }
            }
        }
        if let Some(missing) = rest.first() {
            return Err(LogError::Corrupt {
                seq: *missing,
                reason: format!("seq {missing} is not in any segment"),
            });
        }
        Ok(out)
    }

    fn entity_seqs(&self, entity: &str, head: u64) -> Result<Vec<u64>, LogError> {
        let segments = list_segments(&self.log_dir)?;
        // Index files answer for their own segment only: the segments
        // before it must be there too, or the answer is a partial history.
        if let Some(first) = segments.first().map(|s| s.0).filter(|f| *f != 1) {
            return Err(LogError::Corrupt {
                seq: 1,
                reason: format!(
                    "the first segment in {} starts at seq {first}: the segments before it are missing",
                    self.log_dir.display()
                ),
            });
        }
        let mut out = Vec::new();
        for (i, (first, path)) in segments.iter().enumerate() {
            if *first > head {
                break;
            }
            let end = segments.get(i + 1).map_or(head, |s| (s.0 - 1).min(head));
            let covered = match self.cover(*first, path) {
                Cover::File(f) => match f.entity_seqs(entity) {
                    Ok(seqs) => {
                        out.extend(seqs.into_iter().filter(|s| *s <= end));
                        f.last_seq()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a damaged index file");
                        first - 1
                    }
                },
                Cover::Memory(m) => {
                    let i = m.read().map_err(|_| LogError::Poisoned("active index"))?;
                    if let Some(seqs) = i.entities.get(entity) {
                        out.extend(seqs.iter().copied().filter(|s| *s <= end));
                    }
                    i.last_seq()
                }
                Cover::None => first - 1,
            };
            self.scan_entity(covered + 1, end, entity, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
