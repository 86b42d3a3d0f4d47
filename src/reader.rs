//! Reading a ledger without writing anything: what `verify`, `replay`,
//! `audit`, `state`, `log`, `export`, `escalations` and `whatif` open.
//!
//! A [`LogView`] takes no lock and creates, changes or removes nothing under
//! the data directory. Next to a running writer it reads up to the durable
//! head the writer publishes in `log/head` when it opens; alone, it analyzes
//! the tail as recovery would (`crate::log::recovery`), refuses corruption,
//! and reads up to the last valid record (reporting a torn final write the
//! next writer will cut off). Entity lookups use the segment index files and
//! scan whatever they do not cover.

use std::path::{Path, PathBuf};

use crate::audit::LedgerRead;
use crate::context::Context;
use crate::entity::EntityRef;
use crate::log::head;
use crate::log::index::SegmentIndex;
use crate::log::read::{walk_offsets, LogFiles};
use crate::log::recovery::{analyze, Proof, TornTail};
use crate::log::scan::list_segments;
use crate::log::segment::writer_running;
use crate::log::{Head, LogError, LogReader};
use crate::record::StoredRecord;

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
}

/// A read-only view of a ledger's log, up to a fixed durable head.
pub struct LogView {
    files: LogFiles,
    head: Option<Head>,
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
            let tail = analyze(&log_dir, Proof::gather(&log_dir, &dir.join("derived"))?)?;
            report.torn_tail = tail.torn;
            tail.head
        };
        Ok((LogView { files, head }, report))
    }

    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// The shared context as of `seq` (clamped to the head).
    pub fn context_at(&self, seq: u64) -> Result<Context, LogError> {
        crate::ledger::fold(&self.files, seq.min(self.head_seq()))
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
        self.files.scan(from, to, visit)
    }

    fn read(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError> {
        self.files.read(seqs, self.head_seq())
    }

    fn entity_seqs(&self, entity: &EntityRef) -> Result<Vec<u64>, LogError> {
        self.files.entity_seqs(&entity.to_string(), self.head_seq())
    }
}

/// Brings the segment index files up to `head`: writes every sealed
/// segment's missing or damaged index file (when `write` is set) and returns
/// the last segment's index, built in memory, with the count written.
pub fn build_indexes(
    files: &LogFiles,
    head: Option<Head>,
    write: bool,
) -> Result<(SegmentIndex, u32), LogError> {
    let Some(head) = head else {
        return Ok((SegmentIndex::new(1), 0));
    };
    let segments = list_segments(files.log_dir())?;
    let mut rebuilt = 0;
    for (i, (first, path)) in segments.iter().enumerate() {
        let last = segments.get(i + 1).map_or(head.seq, |s| s.0 - 1);
        let is_last = i + 1 == segments.len();
        let path_of = files
            .index_dir()
            .join(crate::log::index::file_name(*first, false));
        let sound = crate::log::index::IndexFile::open(&path_of)
            .is_ok_and(|f| f.first_seq == *first && f.last_seq() == last && f.check_all().is_ok());
        if !is_last && sound {
            continue;
        }
        let index = segment_index(files, *first, path, last)?;
        if is_last {
            return Ok((index, rebuilt));
        }
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

/// One segment's index, by walking and scanning it up to `last`.
fn segment_index(
    files: &LogFiles,
    first: u64,
    path: &Path,
    last: u64,
) -> Result<SegmentIndex, LogError> {
    let offsets = walk_offsets(path, first)?;
    let mut index = SegmentIndex::new(first);
    files.scan(first, last, &mut |r| {
        let i = usize::try_from(r.record.envelope.seq - first).unwrap_or(usize::MAX);
        let offset = offsets.get(i).copied().ok_or_else(|| LogError::Corrupt {
            seq: r.record.envelope.seq,
            reason: "frame offsets and records disagree".into(),
        })?;
        crate::sequencer::projector::index_record(&mut index, &r, offset);
        Ok(())
    })?;
    Ok(index)
}

/// `verify --derived`: every sealed segment's index file must equal one
/// rebuilt from the log, and (when no writer holds it) the derived store must
/// equal a fresh fold. The store is compared through a copy, so nothing under
/// `dir` is written. `None` when all agree.
pub fn derived_differences(dir: &Path) -> Result<Option<String>, crate::ledger::LedgerError> {
    let (view, _) =
        LogView::open(dir).map_err(|e| crate::ledger::LedgerError::Setup(e.to_string()))?;
    let files = &view.files;
    let head = view.head_seq();
    let segments = list_segments(files.log_dir())?;
    for (i, (first, path)) in segments.iter().enumerate() {
        let Some((next, _)) = segments.get(i + 1) else {
            break;
        };
        let index_path = files
            .index_dir()
            .join(crate::log::index::file_name(*first, false));
        let Ok(on_disk) = std::fs::read(&index_path) else {
            return Ok(Some(format!(
                "the index file of segment {first} is missing ({})",
                index_path.display()
            )));
        };
        let rebuilt = segment_index(files, *first, path, next - 1)?;
        if on_disk != rebuilt.encode(false) {
            return Ok(Some(format!(
                "the index file of segment {first} differs from the log ({})",
                index_path.display()
            )));
        }
    }
    if writer_running(files.log_dir()) {
        return Ok(None);
    }
    let store = dir.join("derived");
    if !store.is_dir() {
        return Ok(Some(
            "the derived store is missing (the next writer, or `parley rebuild`, rebuilds it)"
                .into(),
        ));
    }
    // The copy is removed when `copy` drops, after the store that uses it.
    let copy = tempfile::Builder::new()
        .prefix("parley-verify-")
        .tempdir()
        .map_err(|source| crate::ledger::LedgerError::Io {
            op: "create a temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;
    copy_dir(&store, &copy.path().join("derived"))?;
    let (derived, rebuilt) = crate::derived::Derived::open(&copy.path().join("derived"))?;
    let result = match rebuilt {
        Some(why) => Some(format!("the derived store does not open: {why}")),
        None => derived.differences(files, head)?,
    };
    drop(derived);
    Ok(result)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), crate::ledger::LedgerError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::ledger::LedgerError::Io { op, path, source }
    };
    std::fs::create_dir_all(to).map_err(io("create directory", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read directory", from))? {
        let entry = entry.map_err(io("read directory", from))?;
        let target = to.join(entry.file_name());
        if entry
            .file_type()
            .map_err(io("stat", &entry.path()))?
            .is_dir()
        {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io("copy", &entry.path()))?;
        }
    }
    Ok(())
}
