//! The syncer thread: makes the writer's batches durable, in order, then
//! acknowledges them and hands them to the projector. While it waits on a
//! batch's fdatasync, the writer admits, decides and encodes the next one:
//! the CPU work of batch n+1 overlaps the disk wait of batch n.
//!
//! Architecture invariant: a batch's answers are sent only after the
//! engine's `append` of it returned (it is durable), and batches reach the
//! engine, the answers and the projector in the order the writer made them.
//! After a failed append nothing more is appended: every later batch is
//! answered with the failure.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use super::projector::Committed;
use super::{Ack, AppendError, Progress, Reply};
use crate::command::SYSTEM_PRODUCER;
use crate::log::{EncodedRecord, Head, LogEngine, LogReader};
use crate::record::StoredRecord;

/// Most follow-ups a retried command's original answer lists (as the writer).
use super::FOLLOW_UPS_MAX;

/// Batches the writer may have made ahead of the one being synced. The
/// syncer takes every batch waiting into one append (one fdatasync): while
/// it syncs, the writer keeps batching, so group commit stays as wide as
/// without the syncer.
pub(crate) const SYNC_QUEUE_BATCHES: usize = 16;

/// A batch the writer made: records in log order and what each submission
/// will be answered once they are durable.
#[derive(Default)]
pub(crate) struct Batch {
    pub encoded: Vec<EncodedRecord>,
    pub stored: Vec<StoredRecord>,
    pub replies: Vec<(Reply, Answer)>,
}

/// What a submission will be answered.
pub(crate) enum Answer {
    Ack(Ack),
    /// A retry: the original's result, read once the batch is durable.
    Duplicate(u64),
    Err(AppendError),
}

pub(crate) struct Syncer {
    pub engine: Box<dyn LogEngine>,
    pub reader: Arc<dyn LogReader>,
    pub durable: Arc<Progress>,
    /// Told when the projector is gone, so the writer stops taking commands.
    pub applied: Arc<Progress>,
    pub head: Arc<Mutex<Option<Head>>>,
    pub to_projector: Sender<Committed>,
    failed: Option<String>,
}

impl Syncer {
    pub(crate) fn new(
        engine: Box<dyn LogEngine>,
        (durable, applied): (Arc<Progress>, Arc<Progress>),
        head: Arc<Mutex<Option<Head>>>,
        to_projector: Sender<Committed>,
    ) -> Syncer {
        Syncer {
            reader: engine.reader(),
            engine,
            durable,
            applied,
            head,
            to_projector,
            failed: None,
        }
    }

    /// Runs until the writer is gone and every batch it made is answered.
    pub(crate) fn run(mut self, rx: Receiver<Batch>) {
        while let Ok(mut batch) = rx.recv() {
            // Everything the writer made meanwhile shares this fdatasync.
            for _ in 1..SYNC_QUEUE_BATCHES {
                let Ok(more) = rx.try_recv() else { break };
                batch.encoded.extend(more.encoded);
                batch.stored.extend(more.stored);
                batch.replies.extend(more.replies);
            }
            self.write(batch);
        }
    }

    /// Answers a batch that was never handed to the engine: nothing of it
    /// was written.
    fn refuse(replies: Vec<(Reply, Answer)>, reason: &str) {
        for (tx, _) in replies {
            let _ = tx.send(Err(AppendError::Failed(reason.to_owned())));
        }
    }

    /// Answers a batch whose append failed part way: some of its write units
    /// may be durable, so its commands' outcome is unknown (a command refused
    /// before writing keeps its own answer).
    fn unknown(replies: Vec<(Reply, Answer)>, reason: &str) {
        for (tx, answer) in replies {
            let result = match answer {
                Answer::Err(e) => Err(e),
                Answer::Ack(_) | Answer::Duplicate(_) => {
                    Err(AppendError::OutcomeUnknown(reason.to_owned()))
                }
            };
            let _ = tx.send(result);
        }
    }

    /// Appends the batch durably, then answers and hands it to the projector.
    fn write(&mut self, batch: Batch) {
        let Batch {
            encoded,
            stored,
            replies,
        } = batch;
        debug_assert_eq!(encoded.len(), stored.len(), "one frame per record");
        if let Some(reason) = &self.failed {
            return Self::refuse(replies, reason);
        }
        let mut locations = Vec::with_capacity(encoded.len());
        if !encoded.is_empty() {
            if let Err(e) = self.engine.append(&encoded, &mut locations) {
                let reason = e.to_string();
                tracing::error!(%reason, "append failed; the writer stops accepting commands");
                self.durable.fail(reason.clone());
                self.failed = Some(reason.clone());
                return Self::unknown(replies, &reason);
            }
            let head = self.engine.head();
            assert_eq!(
                head.map(|h| h.seq),
                stored.last().map(|r| r.record.envelope.seq),
                "the engine's head is the batch's last record"
            );
            if let Ok(mut h) = self.head.lock() {
                *h = head;
            }
            self.durable.publish(head.map_or(0, |h| h.seq));
        }
        for (tx, answer) in replies {
            let result = match answer {
                Answer::Ack(a) => Ok(a),
                Answer::Err(e) => Err(e),
                Answer::Duplicate(seq) => self.original(seq, &stored),
            };
            // A producer that stopped waiting is not an error for the ledger.
            let _ = tx.send(result);
        }
        if !stored.is_empty() {
            let committed = Committed {
                records: stored,
                locations,
            };
            if self.to_projector.send(committed).is_err() {
                self.applied.fail("the projector stopped".into());
            }
        }
    }

    /// A retried command's original result: the record and its follow-ups
    /// (contiguous after it), from this batch or the log (every earlier
    /// batch is durable by now).
    fn original(&self, seq: u64, batch: &[StoredRecord]) -> Result<Ack, AppendError> {
        let durable = self.durable.get();
        let fetch = |s: u64| -> Result<Option<StoredRecord>, AppendError> {
            if let Some(r) = batch.iter().find(|r| r.record.envelope.seq == s) {
                return Ok(Some(r.clone()));
            }
            if s > durable {
                return Ok(None);
            }
            let mut got = self
                .reader
                .read(&[s], durable)
                .map_err(|e| AppendError::Failed(e.to_string()))?;
            Ok(got.pop())
        };
        let first = fetch(seq)?
            .ok_or_else(|| AppendError::Failed(format!("seq {seq} is not in the log")))?;
        let mut follow_ups = Vec::new();
        let mut next = seq + 1;
        while let Some(r) = fetch(next)? {
            let caused = r.record.envelope.causation == Some(seq)
                && r.record.envelope.producer == SYSTEM_PRODUCER;
            if !caused || follow_ups.len() >= FOLLOW_UPS_MAX {
                break;
            }
            follow_ups.push((next, r.record.body));
            next += 1;
        }
        Ok(Ack {
            seq,
            hash: first.hash,
            recorded_at_ms: first.record.envelope.recorded_at_ms,
            duplicate: true,
            follow_ups,
            timers: Vec::new(),
        })
    }
}
