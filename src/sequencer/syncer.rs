//! The syncer thread: makes the writer's batches durable, in order, then
//! acknowledges them and hands them to the projector (holding them, merged
//! in order, while the projector's queue is full). While it waits on a
//! batch's fdatasync, the writer admits, decides and encodes the next one:
//! the CPU work of batch n+1 overlaps the disk wait of batch n.
//!
//! Architecture invariant: a batch's answers are sent only after the
//! engine's `append` of it returned (it is durable), and batches reach the
//! engine, the answers and the projector in the order the writer made them.
//! After a failed append nothing more is appended: every later batch is
//! answered with the failure.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Select, Sender, TrySendError};

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

/// Most records the syncer holds for the projector while the projector's
/// queue is full (merged into one batch, in order). A projector that pauses
/// (its evidence fsync, an index file) no longer stops acknowledgements
/// until this many records wait; then the syncer waits for it. Of the order
/// of one merged append of full writer batches, so a batch on the feed
/// (`FEED_BATCHES` of them) is no larger than before.
pub(crate) const HELD_RECORDS_MAX: usize = 16_384;

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
    /// Durable records the projector's queue had no room for yet.
    held: Option<Committed>,
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
            held: None,
            failed: None,
        }
    }

    /// Runs until the writer is gone and every batch it made is answered
    /// (and handed to the projector).
    pub(crate) fn run(mut self, rx: Receiver<Batch>) {
        while let Some(mut batch) = self.next_batch(&rx) {
            // Everything the writer made meanwhile shares this fdatasync.
            for _ in 1..SYNC_QUEUE_BATCHES {
                let Ok(more) = rx.try_recv() else { break };
                batch.encoded.extend(more.encoded);
                batch.stored.extend(more.stored);
                batch.replies.extend(more.replies);
            }
            self.write(batch);
        }
        if let Some(held) = self.held.take() {
            self.send_waiting(held);
        }
    }

    /// The writer's next batch; meanwhile, records held for the projector
    /// go to it as soon as its queue has room. `None`: the writer is gone.
    fn next_batch(&mut self, rx: &Receiver<Batch>) -> Option<Batch> {
        while let Some(held) = self.held.take() {
            let mut sel = Select::new();
            let from_writer = sel.recv(rx);
            let to_projector = sel.send(&self.to_projector);
            let op = sel.select();
            if op.index() == from_writer {
                self.held = Some(held);
                return op.recv(rx).ok();
            }
            debug_assert_eq!(op.index(), to_projector);
            if op.send(&self.to_projector, held).is_err() {
                self.projector_gone();
            }
        }
        rx.recv().ok()
    }

    /// Hands durable records to the projector after those it holds, in
    /// order; waits only when it holds `HELD_RECORDS_MAX` already.
    fn hand_to_projector(&mut self, committed: Committed) {
        let next = match self.held.take() {
            Some(mut held) => {
                held.records.extend(committed.records);
                held.locations.extend(committed.locations);
                held
            }
            None => committed,
        };
        // An engine without frame offsets (PostgreSQL) gives no locations.
        debug_assert!(
            next.locations.is_empty() || next.locations.len() == next.records.len(),
            "one location a record"
        );
        match self.to_projector.try_send(next) {
            Ok(()) => {}
            Err(TrySendError::Full(next)) if next.records.len() < HELD_RECORDS_MAX => {
                self.held = Some(next);
            }
            Err(TrySendError::Full(next)) => self.send_waiting(next),
            Err(TrySendError::Disconnected(_)) => {
                self.projector_gone();
            }
        }
    }

    /// The projector is gone: the writer refuses new commands (the log
    /// keeps every acknowledged record).
    fn projector_gone(&self) {
        self.applied.fail("the projector stopped".into());
    }

    fn send_waiting(&mut self, committed: Committed) {
        if self.to_projector.send(committed).is_err() {
            self.projector_gone();
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
            self.hand_to_projector(committed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::memory::MemoryLog;
    use crate::record::{Body, Envelope, Record, FORMAT_VERSION, ZERO_HASH};

    /// A batch of `n` clock records after `prev` (seq, hash), one reply each.
    fn batch(
        prev: (u64, [u8; 32]),
        n: u64,
    ) -> (
        Batch,
        Vec<tokio::sync::oneshot::Receiver<Result<Ack, AppendError>>>,
    ) {
        let (mut seq, mut hash) = prev;
        let (mut b, mut answers) = (Batch::default(), Vec::new());
        for _ in 0..n {
            seq += 1;
            let record = Record {
                envelope: Envelope {
                    format: FORMAT_VERSION,
                    seq,
                    recorded_at_ms: 1_000 + seq,
                    producer: SYSTEM_PRODUCER.into(),
                    idempotency_key: None,
                    causation: None,
                    correlation: None,
                    credential: None,
                },
                body: Body::Clock,
            };
            let e = crate::log::encode_record(&record, &hash).unwrap();
            b.stored.push(StoredRecord {
                prev_hash: hash,
                hash: e.hash,
                record,
            });
            hash = e.hash;
            b.encoded.push(e);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let ack = Ack {
                seq,
                hash,
                recorded_at_ms: 1_000 + seq,
                duplicate: false,
                follow_ups: Vec::new(),
                timers: Vec::new(),
            };
            b.replies.push((tx, Answer::Ack(ack)));
            answers.push(rx);
        }
        (b, answers)
    }

    #[test]
    fn a_projector_that_does_not_read_holds_back_no_acknowledgement_and_loses_no_record() {
        let (ptx, prx) = crossbeam_channel::bounded::<Committed>(1);
        let progress = (Arc::new(Progress::default()), Arc::new(Progress::default()));
        let mut syncer = Syncer::new(
            Box::new(MemoryLog::new()),
            progress,
            Arc::new(Mutex::new(None)),
            ptx,
        );
        // The projector reads nothing while six batches are written: the
        // first fills its queue, the rest are held, merged, in order.
        let (mut prev, mut answers) = ((0, ZERO_HASH), Vec::new());
        for n in [3, 1, 4, 1, 5, 9] {
            let (b, mut a) = batch(prev, n);
            prev = b
                .stored
                .last()
                .map(|r| (r.record.envelope.seq, r.hash))
                .unwrap();
            syncer.write(b);
            answers.append(&mut a);
        }
        for (i, mut a) in answers.into_iter().enumerate() {
            let ack = a
                .try_recv()
                .expect("answered before the projector read")
                .unwrap();
            assert_eq!(ack.seq, i as u64 + 1);
        }
        assert_eq!(prx.len(), 1, "the queue is full");
        let held = syncer.held.as_ref().map(|h| h.records.len());
        assert_eq!(held, Some(1 + 4 + 1 + 5 + 9));
        // The writer is gone: the syncer hands over what it holds and stops.
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(1);
        drop(tx);
        let run = std::thread::spawn(move || syncer.run(rx));
        let seqs: Vec<u64> = prx
            .iter()
            .flat_map(|c| c.records.into_iter().map(|r| r.record.envelope.seq))
            .collect();
        run.join().unwrap();
        assert_eq!(seqs, (1..=23).collect::<Vec<u64>>());
    }
}
