//! The projector thread: everything that follows a durable batch, off the
//! acknowledgement path. In order, for each committed batch:
//! - the derived store (idempotency keys) takes it;
//! - the segment index grows (a sealed segment's index file is written; the
//!   active segment's index is kept in memory, shared with readers, and
//!   written as a `.partial` now and then);
//! - the published context (when the ledger serves reads) folds it;
//! - the feed (when someone follows the log live) carries it;
//! - about once a second, the durable head is recorded as evidence.
//!
//! A failure here never loses an acknowledged record (the log has it); the
//! writer then refuses new commands until the ledger is reopened.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::Progress;
use crate::context::Context;
use crate::derived::{Derived, FLUSH_IDLE_MS};
use crate::log::head::{HeadWriter, State};
use crate::log::index::SegmentIndex;
use crate::log::read::{LogFiles, SharedIndex};
use crate::log::Location;
use crate::record::StoredRecord;

/// How often the durable head is recorded as evidence while a writer runs.
pub const EVIDENCE_EVERY: Duration = Duration::from_secs(1);
/// How many records the active segment's index may gain before its
/// `.partial` file is rewritten.
pub const PARTIAL_EVERY: u64 = 16_384;

/// What stopped the projector (the log keeps every acknowledged record).
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Derived(#[from] crate::derived::DerivedError),
    #[error("the {0} lock was poisoned (a thread panicked holding it)")]
    Poisoned(&'static str),
    #[error("write the index of segment {segment}: {source}")]
    SealIndex {
        segment: u64,
        source: std::io::Error,
    },
    #[error("write the partial index: {0}")]
    PartialIndex(std::io::Error),
    #[error("fold into the published context: {0}")]
    Fold(#[from] crate::context::Inconsistent),
    #[error("record the durable head: {0}")]
    Evidence(#[from] crate::log::LogError),
}

/// A durable batch: its records and where each frame stands.
#[derive(Clone, Debug)]
pub struct Committed {
    pub records: Vec<StoredRecord>,
    pub locations: Vec<Location>,
}

/// The shared context at the durable head, for reads.
pub type Published = Arc<RwLock<Context>>;

/// The feed of committed batches, for live followers.
pub type Feed = tokio::sync::broadcast::Sender<Arc<Committed>>;

/// The segment-file parts the projector keeps (absent for in-memory ledgers).
pub struct Files {
    pub files: Arc<LogFiles>,
    pub active: SharedIndex,
    pub evidence: Arc<Mutex<HeadWriter>>,
    /// How often the applied head is recorded as fsynced evidence
    /// ([`EVIDENCE_EVERY`] unless a test steers it).
    pub evidence_every: Duration,
}

pub(crate) struct Projector {
    pub derived: Arc<Derived>,
    pub applied: Arc<Progress>,
    pub files: Option<Files>,
    pub published: Option<Published>,
    pub feed: Option<Feed>,
    last_evidence: Instant,
    evidence_seq: u64,
    partial_seq: u64,
}

impl Projector {
    pub(crate) fn new(
        derived: Arc<Derived>,
        applied: Arc<Progress>,
        files: Option<Files>,
    ) -> Projector {
        let partial_seq = files
            .as_ref()
            .and_then(|f| f.active.read().ok().map(|i| i.last_seq()))
            .unwrap_or(0);
        Projector {
            derived,
            applied,
            files,
            published: None,
            feed: None,
            last_evidence: evidence_clock(),
            evidence_seq: 0,
            partial_seq,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Committed>) {
        let idle = Duration::from_millis(FLUSH_IDLE_MS);
        loop {
            let result = match rx.recv_timeout(idle) {
                Ok(batch) => self.take(batch),
                // Quiet: write what is pending.
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => self.quiet(),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.quiet() {
                        tracing::warn!(error = %e, "closing the derived store");
                    }
                    return;
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "derived state failed; the writer refuses new commands");
                self.applied.fail(format!("derived state failed: {e}"));
                return;
            }
        }
    }

    fn take(&mut self, batch: Committed) -> Result<(), ProjectorError> {
        let Some(last) = batch
            .records
            .last()
            .map(|r| (r.record.envelope.seq, r.hash))
        else {
            return Ok(());
        };
        self.derived.apply(&batch.records)?;
        self.index(&batch)?;
        if let Some(p) = &self.published {
            let mut ctx = p
                .write()
                .map_err(|_| ProjectorError::Poisoned("published context"))?;
            for r in &batch.records {
                ctx.apply(r)?;
            }
        }
        // Applied before the feed: a reader that subscribes, then sees
        // `applied` short of a seq, is sure to receive the batch reaching it
        // (the server's read-your-writes waits rely on this order).
        self.applied.publish(last.0);
        if let Some(feed) = &self.feed {
            // No follower is fine; a slow one lags and is told where to resume.
            let _ = feed.send(Arc::new(batch));
        }
        if self.evidence_due() {
            self.evidence(last)?;
        }
        Ok(())
    }

    /// Records go into the active segment's index; a new segment seals the
    /// old one into its index file.
    fn index(&mut self, batch: &Committed) -> Result<(), ProjectorError> {
        let Some(f) = &self.files else {
            return Ok(());
        };
        let mut active = f
            .active
            .write()
            .map_err(|_| ProjectorError::Poisoned("active index"))?;
        for (r, (segment, offset)) in batch.records.iter().zip(&batch.locations) {
            if *segment != active.first_seq {
                let sealed = std::mem::replace(&mut *active, SegmentIndex::new(*segment));
                if !sealed.offsets.is_empty() {
                    sealed.write(f.files.index_dir(), false).map_err(|source| {
                        ProjectorError::SealIndex {
                            segment: sealed.first_seq,
                            source,
                        }
                    })?;
                    // The sealed index supersedes the partial one; a partial
                    // left behind is ignored next to it, so failing to remove
                    // it costs nothing.
                    let _ = std::fs::remove_file(
                        f.files
                            .index_dir()
                            .join(crate::log::index::file_name(sealed.first_seq, true)),
                    );
                }
                self.partial_seq = 0;
            }
            active.push_record(r, *offset);
        }
        let grown = active.last_seq().saturating_sub(self.partial_seq);
        drop(active);
        if grown >= PARTIAL_EVERY {
            self.write_partial()?;
        }
        Ok(())
    }

    fn write_partial(&mut self) -> Result<(), ProjectorError> {
        let Some(f) = &self.files else {
            return Ok(());
        };
        let active = f
            .active
            .read()
            .map_err(|_| ProjectorError::Poisoned("active index"))?;
        if active.offsets.is_empty() || active.last_seq() == self.partial_seq {
            return Ok(());
        }
        let dir: PathBuf = f.files.index_dir().to_path_buf();
        active
            .write(&dir, true)
            .map_err(ProjectorError::PartialIndex)?;
        self.partial_seq = active.last_seq();
        Ok(())
    }

    fn evidence_due(&self) -> bool {
        let every = self
            .files
            .as_ref()
            .map_or(EVIDENCE_EVERY, |f| f.evidence_every);
        self.last_evidence.elapsed() >= every
    }

    fn evidence(&mut self, (seq, hash): (u64, crate::record::Hash)) -> Result<(), ProjectorError> {
        self.last_evidence = evidence_clock();
        let Some(f) = &self.files else {
            return Ok(());
        };
        if seq == self.evidence_seq {
            return Ok(());
        }
        f.evidence
            .lock()
            .map_err(|_| ProjectorError::Poisoned("head file"))?
            .record(State::Open, seq, hash)?;
        self.evidence_seq = seq;
        Ok(())
    }

    fn quiet(&mut self) -> Result<(), ProjectorError> {
        self.derived.flush_pending()?;
        self.write_partial()?;
        let last = self
            .files
            .as_ref()
            .and_then(|f| f.active.read().ok().map(|i| (i.last_seq(), i.last_hash)));
        if let Some(last) = last.filter(|l| l.0 > 0) {
            if self.evidence_due() {
                self.evidence(last)?;
            }
        }
        Ok(())
    }
}

/// When evidence was last recorded: paces the once-a-second evidence write.
/// Shell timing only; it never reaches a record or a decision.
#[allow(clippy::disallowed_methods)] // pacing I/O, not state
fn evidence_clock() -> Instant {
    Instant::now()
}
