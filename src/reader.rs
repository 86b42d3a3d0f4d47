//! Reading a ledger without writing anything: what `verify`, `replay`,
//! `audit`, `state`, `log`, `export`, `escalations` and `whatif` open.
//!
//! A [`LogView`] takes no lock and creates, changes or removes nothing under
//! the data directory. Next to a running writer it reads up to the durable
//! head the writer publishes in `log/head` when it opens. Alone, after a
//! clean close it takes the head from the close's evidence once the last
//! record and the write unit it ends check out (`recovery::closed_head`);
//! otherwise it analyzes the tail as recovery would (`crate::log::recovery`),
//! refuses corruption, and reads up to the last valid record (reporting a
//! torn final write the next writer will cut off). Every record is checked
//! when it is read. Entity lookups use the segment index files and scan
//! whatever they do not cover. The context at a seq starts from the
//! writer's context snapshot (`DIR/derived/context.snapshot`, read as a
//! file) when one of this log is at or before it, after the records it
//! stands for are checked; else it is folded from the first record.

use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::entity::EntityRef;
use crate::log::head;
use crate::log::index::SegmentIndex;
use crate::log::read::{walk_offsets, LogFiles};
use crate::log::recovery::{analyze, closed_head, Proof, TornTail};
use crate::log::scan::list_segments;
use crate::log::segment::writer_running;
use crate::log::{Head, LogError, LogReader, Until};
use crate::record::StoredRecord;

/// Reading a ledger up to a fixed durable head: what audit, the CLI's
/// inspection commands and the server's reads need, from a writer's
/// [`crate::Ledger`] or a read-only [`LogView`]. The one difference from
/// [`LogReader`] (the engines' reader): a `LogReader` reads any range it is
/// given a head for; a `LedgerRead` knows its head and never reads past it.
pub trait LedgerRead {
    /// The last durable record's seq (0: an empty log).
    fn head_seq(&self) -> u64;
    /// Visits records `from..=to` (clamped to the head) in order, checked.
    fn scan(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(StoredRecord) -> Result<(), LogError>,
    ) -> Result<(), LogError>;
    /// As `scan`, until `visit` breaks (then `Ok`).
    fn scan_until(&self, from: u64, to: u64, visit: &mut Until<'_>) -> Result<(), LogError> {
        crate::log::until(visit, |v| self.scan(from, to, v))
    }
    /// The records at `seqs` (ascending, each at most the head), checked.
    fn read(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError>;
    /// Every seq that names `entity`, ascending.
    fn entity_seqs(&self, entity: &EntityRef) -> Result<Vec<u64>, LogError>;
}

/// The context folded over seqs `1..=to`.
pub fn fold(reader: &dyn LogReader, to: u64) -> Result<Context, LogError> {
    fold_onto(reader, Context::default(), to)
}

/// `ctx` (folded up to its seq) with seqs `ctx.seq + 1..=to` folded in; a
/// record the fold cannot take is refused at its seq.
pub fn fold_onto(reader: &dyn LogReader, mut ctx: Context, to: u64) -> Result<Context, LogError> {
    let from = ctx.seq + 1;
    if from <= to {
        reader.scan(from, to, &mut |r| {
            let seq = r.record.envelope.seq;
            ctx.apply(&r).map_err(|e| LogError::Corrupt {
                seq,
                reason: e.to_string(),
            })
        })?;
    }
    debug_assert!(ctx.seq == to || from > to, "folded to the seq asked for");
    Ok(ctx)
}

/// The context of the snapshot in `dir` when it can stand for records
/// `1..=its seq` of this log, its seq at most `to`; those records are checked
/// first (by their segments' seals where they match, else frame by frame,
/// writing no seal), so a damaged one is refused at its seq.
fn snapshot_context(files: &LogFiles, dir: &Path, to: u64) -> Result<Option<Context>, LogError> {
    let Some((seq, hash, bytes)) = crate::derived::read_snapshot_file(dir) else {
        return Ok(None);
    };
    if seq == 0 || seq > to {
        return Ok(None);
    }
    let at = files.read(&[seq], to)?;
    if at.first().is_none_or(|r| r.hash != hash) {
        tracing::info!(seq, "the context snapshot is not of this log; folding it");
        return Ok(None);
    }
    crate::log::open_check::check_through(files.log_dir(), files.index_dir(), seq, false, None)?;
    match Context::from_snapshot(&bytes) {
        Ok(ctx) if ctx.seq == seq => Ok(Some(ctx)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(seq, error = %e, "the context snapshot does not decode; folding the log");
            Ok(None)
        }
    }
}

/// Why a view could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{} holds no ledger (no log/ directory)", .0.display())]
    NoLedger(PathBuf),
    #[error("a writer holds {} but has not published its durable head yet; try again", .0.display())]
    NoLiveHead(PathBuf),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What opening a view found.
#[derive(Clone, Debug, Default)]
pub struct ViewReport {
    /// A writer was running: the view reads up to the head it published.
    pub writer_running: bool,
    /// A torn final write past the head (never acknowledged).
    pub torn_tail: Option<TornTail>,
    /// How the end of the log was found when no writer was running.
    pub end: EndCheck,
}

/// How a view alone found the end of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndCheck {
    /// A writer was running: its published head.
    #[default]
    LiveHead,
    /// A clean close's evidence, its last record and write unit checked.
    ClosedEvidence,
    /// Recovery's analysis: every frame of the last segment walked.
    Walked,
}

/// A read-only view of a ledger's log, up to a fixed durable head.
pub struct LogView {
    source: Source,
    head: Option<Head>,
    /// Where a writer leaves its context snapshot (`DIR/derived`), read
    /// as a plain file (`None`: another engine's log).
    snapshot_dir: Option<PathBuf>,
}

/// What a view reads: a data directory's segment files, or another
/// engine's reader (PostgreSQL).
enum Source {
    Files(LogFiles),
    Engine(std::sync::Arc<dyn LogReader>),
}

impl LogView {
    /// Opens `dir` for reading.
    pub fn open(dir: &Path) -> Result<(LogView, ViewReport), ViewError> {
        let log_dir = dir.join("log");
        if !log_dir.is_dir() {
            return Err(ViewError::NoLedger(dir.to_path_buf()));
        }
        let files = LogFiles::new(&log_dir, &dir.join("index"));
        let mut report = ViewReport::default();
        let file = head::read(&log_dir)?;
        let head = if writer_running(&log_dir) {
            report.writer_running = true;
            let (seq, hash) = file
                .live
                .ok_or_else(|| ViewError::NoLiveHead(log_dir.clone()))?;
            Some(live_head(&files, seq, hash)?)
        } else {
            let proof = Proof::gather(&log_dir, &dir.join("derived"))?;
            match closed_head(&log_dir, &proof, &|first, seq| {
                files.index_offset(first, seq)
            })? {
                Some(head) => {
                    report.end = EndCheck::ClosedEvidence;
                    Some(head)
                }
                None => {
                    let tail = analyze(&log_dir, proof)?;
                    report.end = EndCheck::Walked;
                    report.torn_tail = tail.torn;
                    tail.head
                }
            }
        };
        Ok((
            LogView {
                source: Source::Files(files),
                head,
                snapshot_dir: Some(dir.join("derived")),
            },
            report,
        ))
    }

    /// A view of another engine's log up to `head` (read by its reader).
    pub fn over(reader: std::sync::Arc<dyn LogReader>, head: Option<Head>) -> LogView {
        LogView {
            source: Source::Engine(reader),
            head,
            snapshot_dir: None,
        }
    }

    fn reader(&self) -> &dyn LogReader {
        match &self.source {
            Source::Files(f) => f,
            Source::Engine(r) => r.as_ref(),
        }
    }

    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// The segment and index files it reads (`None`: another engine's log).
    pub fn files(&self) -> Option<&LogFiles> {
        match &self.source {
            Source::Files(f) => Some(f),
            Source::Engine(_) => None,
        }
    }

    /// The shared context as of `seq` (clamped to the head).
    pub fn context_at(&self, seq: u64) -> Result<Context, LogError> {
        self.context_from_snapshot(seq).map(|(ctx, _)| ctx)
    }

    /// The shared context as of `seq` (clamped to the head), and the seq of
    /// the writer's context snapshot it started from (`None`: folded from
    /// the first record). A snapshot is used when it is at or before `seq`,
    /// whole, of this build, and of this log (its record has its hash); the
    /// records after it are folded. Architecture invariant: either way every
    /// record through `seq` is checked (hash, link, frame), so damage is
    /// refused at its seq whether a snapshot stands for it or not, and the
    /// context is the same as a fold from zero (the snapshot is one).
    pub fn context_from_snapshot(&self, seq: u64) -> Result<(Context, Option<u64>), LogError> {
        let to = seq.min(self.head_seq());
        let snapshot = match (&self.source, &self.snapshot_dir) {
            (Source::Files(files), Some(dir)) => snapshot_context(files, dir, to)?,
            _ => None,
        };
        let Some(ctx) = snapshot else {
            return Ok((fold(self.reader(), to)?, None));
        };
        let from = ctx.seq;
        debug_assert!(from >= 1 && from <= to, "the snapshot is within the view");
        let ctx = fold_onto(self.reader(), ctx, to)?;
        debug_assert_eq!(ctx.seq, to, "folded to the seq asked for");
        Ok((ctx, Some(from)))
    }
}

/// The record at the published live head must be there with that hash.
fn live_head(files: &LogFiles, seq: u64, hash: crate::record::Hash) -> Result<Head, LogError> {
    if seq == 0 {
        return Err(LogError::EmptyWriterLog);
    }
    let r = files.read(&[seq], seq)?;
    match r.first() {
        Some(r) if r.hash == hash => Ok(Head {
            seq,
            hash,
            recorded_at_ms: r.record.envelope.recorded_at_ms,
        }),
        _ => Err(LogError::Corrupt {
            seq,
            reason: "the writer's published head is not in the log with that hash".into(),
        }),
    }
}

impl LedgerRead for LogView {
    fn head_seq(&self) -> u64 {
        self.head.map_or(0, |h| h.seq)
    }

    fn scan(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(StoredRecord) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let to = to.min(self.head_seq());
        if from > to {
            return Ok(());
        }
        self.reader().scan(from, to, visit)
    }

    fn read(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError> {
        self.reader().read(seqs, self.head_seq())
    }

    fn entity_seqs(&self, entity: &EntityRef) -> Result<Vec<u64>, LogError> {
        self.reader()
            .entity_seqs(&entity.to_string(), self.head_seq())
    }
}

/// Feeds a what-if the records right after its range that the last command
/// in range brought (`WhatIf::follow_up`), reading at most
/// `FOLLOW_UPS_MAX` records past its end.
pub fn feed_follow_ups(
    reader: &dyn LedgerRead,
    run: &mut crate::whatif::WhatIf,
) -> Result<(), LogError> {
    let (to, head) = (run.to(), reader.head_seq());
    if to >= head {
        return Ok(());
    }
    let most = u64::try_from(crate::resolver::FOLLOW_UPS_MAX).unwrap_or(u64::MAX);
    reader.scan_until(to + 1, head.min(to.saturating_add(most)), &mut |r| {
        run.follow_up(&r)
    })
}

/// Brings the segment index files up to `head`: writes every sealed
/// segment's missing or damaged index file (when `write` is set) and returns
/// the last segment's index, built in memory (from its `.partial` file and
/// the records after it, when that file is sound), with the count written.
/// `walked`: the last segment's first seq and frame offsets, when the
/// caller's recovery walk just checked every frame of it.
pub fn build_indexes(
    files: &LogFiles,
    head: Option<Head>,
    write: bool,
    walked: Option<(u64, Vec<u64>)>,
) -> Result<(SegmentIndex, u32), LogError> {
    let Some(head) = head else {
        return Ok((SegmentIndex::new(1), 0));
    };
    let segments = list_segments(files.log_dir())?;
    let sealed = segments.len().saturating_sub(1);
    let sound = sound_indexes(files, &segments);
    let mut rebuilt = 0;
    for (i, (first, path)) in segments.iter().enumerate() {
        let last = segments.get(i + 1).map_or(head.seq, |s| s.0 - 1);
        if i == sealed {
            let offsets = match walked {
                Some((f, offsets)) if f == *first && offsets.len() as u64 == last + 1 - f => {
                    offsets
                }
                _ => walk_offsets(path, *first, last)?,
            };
            return Ok((active_index(files, *first, &offsets, last)?, rebuilt));
        }
        if sound.get(i).copied().unwrap_or(false) {
            continue;
        }
        let index = segment_index(files, *first, path, last)?;
        if write {
            index.write(files.index_dir(), false).map_err(|e| {
                LogError::io(
                    "write",
                    files
                        .index_dir()
                        .join(crate::log::index::file_name(*first, false)),
                    e,
                )
            })?;
            files.forget(*first);
            rebuilt += 1;
        }
    }
    Ok((SegmentIndex::new(head.seq + 1), rebuilt))
}

/// Most threads that check index files at once.
const INDEX_CHECK_THREADS_MAX: usize = 8;

/// Whether each sealed segment's index file (all of `segments` but the
/// last) is whole and covers exactly it (every byte checked), on several
/// threads.
fn sound_indexes(files: &LogFiles, segments: &[(u64, PathBuf)]) -> Vec<bool> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sealed = &segments[..segments.len().saturating_sub(1)];
    let sound_at = |i: usize| {
        let (first, last) = (segments[i].0, segments[i + 1].0 - 1);
        let path = files
            .index_dir()
            .join(crate::log::index::file_name(first, false));
        crate::log::index::IndexFile::open(&path)
            .is_ok_and(|f| f.first_seq == first && f.last_seq() == last && f.check_all().is_ok())
    };
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, INDEX_CHECK_THREADS_MAX);
    let found = std::sync::Mutex::new(vec![false; sealed.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sealed.len() {
                    break;
                }
                let ok = sound_at(i);
                if let Ok(mut f) = found.lock() {
                    f[i] = ok;
                }
            });
        }
    });
    // A poisoned lock (a panicked check) leaves every file to be rebuilt.
    found
        .into_inner()
        .unwrap_or_else(|_| vec![false; sealed.len()])
}

/// The active segment's index up to `last`: its `.partial` file when that
/// is sound and its last record is the log's (then only the records after
/// it are decoded), else built from the whole segment.
fn active_index(
    files: &LogFiles,
    first: u64,
    offsets: &[u64],
    last: u64,
) -> Result<SegmentIndex, LogError> {
    let partial = files
        .index_dir()
        .join(crate::log::index::file_name(first, true));
    let loaded = crate::log::index::IndexFile::open(&partial)
        .ok()
        .filter(|f| f.partial && f.first_seq == first && f.last_seq() <= last)
        .and_then(|f| SegmentIndex::load(&f).ok())
        .filter(|idx| {
            // Its offsets are the segment's, and its last hash the log's.
            offsets.get(..idx.offsets.len()) == Some(&idx.offsets[..])
                && files
                    .read(&[idx.last_seq()], last)
                    .is_ok_and(|r| r.first().is_some_and(|r| r.hash == idx.last_hash))
        });
    let index = loaded.unwrap_or_else(|| SegmentIndex::new(first));
    extend_index(files, index, offsets, last)
}

/// One segment's index, by walking and scanning it up to `last`.
pub(crate) fn segment_index(
    files: &LogFiles,
    first: u64,
    path: &Path,
    last: u64,
) -> Result<SegmentIndex, LogError> {
    let offsets = walk_offsets(path, first, last)?;
    extend_index(files, SegmentIndex::new(first), &offsets, last)
}

/// `index` (of the segment whose frames are at `offsets`) extended with the
/// records after it up to `last`, each decoded.
fn extend_index(
    files: &LogFiles,
    mut index: SegmentIndex,
    offsets: &[u64],
    last: u64,
) -> Result<SegmentIndex, LogError> {
    let (first, from) = (index.first_seq, index.last_seq() + 1);
    if from <= last {
        files.scan(from, last, &mut |r| {
            let i = usize::try_from(r.record.envelope.seq - first).unwrap_or(usize::MAX);
            let offset = offsets.get(i).copied().ok_or_else(|| LogError::Corrupt {
                seq: r.record.envelope.seq,
                reason: "frame offsets and records disagree".into(),
            })?;
            index.push_record(&r, offset);
            Ok(())
        })?;
    }
    debug_assert_eq!(index.last_seq(), last);
    Ok(index)
}
