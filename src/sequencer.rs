//! The sequencer: the single writer. Producers hand it commands over a bounded
//! crossbeam channel; it takes whatever is waiting (at most `max_batch`), assigns
//! seq, time and hashes, appends the batch with one write and one fdatasync, then
//! acknowledges every command in it and hands the batch to the projector.
//!
//! Architecture invariant: an `Ack` is sent only after the engine's `append`
//! returned, i.e. after the batch is durable. A full channel blocks the producer
//! (backpressure); nothing is dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{Receiver, Sender};

use crate::command::{Command, SYSTEM_PRODUCER};
use crate::context::Context;
use crate::derived::{Derived, DerivedError, KeyedRecord};
use crate::log::{encode_record, Head, LogEngine};
use crate::record::{Body, Envelope, Hash, Record, RecordError, StoredRecord, FORMAT_VERSION};
use crate::resolver::{check_command, next_follow_up};
use crate::vocab::Decision;

/// What the ledger answers when a command is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
    pub hash: Hash,
    pub recorded_at_ms: u64,
    /// True when the idempotency key had been seen: nothing was appended and
    /// `seq` is the original record's.
    pub duplicate: bool,
    /// For an intention: the decision that answered it, with its seq.
    pub decision: Option<(u64, Decision)>,
}

/// Most follow-up records one record may cause (a bound, not an expectation:
/// each follow-up settles one pending intention).
const MAX_FOLLOW_UPS: usize = 100_000;
/// Longest the writer sleeps before it looks at the clock again.
const MAX_CLOCK_WAIT_MS: u64 = 1_000;

/// Why a command was not appended.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error(
        "time goes backwards: at_ms {at_ms} is before the last record's recorded_at_ms {last_ms}"
    )]
    TimeBackwards { at_ms: u64, last_ms: u64 },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the ledger stopped accepting appends after a failure ({0}); reopen it")]
    Failed(String),
    #[error("the ledger is closed")]
    Closed,
}

/// A source of wall-clock time in ms. The sequencer (shell) reads it; the pure
/// core only ever sees `recorded_at_ms` in envelopes.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A monotone value others can wait on (durable head, applied seq).
#[derive(Default)]
pub struct Progress {
    value: Mutex<u64>,
    changed: Condvar,
    failure: Mutex<Option<String>>,
}

impl Progress {
    pub fn get(&self) -> u64 {
        self.value.lock().map_or(0, |v| *v)
    }

    pub fn publish(&self, value: u64) {
        if let Ok(mut v) = self.value.lock() {
            debug_assert!(value >= *v, "progress never goes back");
            *v = value;
        }
        self.changed.notify_all();
    }

    pub fn fail(&self, reason: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(reason);
        }
        self.changed.notify_all();
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Blocks until the value reaches `target` or a failure is reported.
    pub fn wait_for(&self, target: u64) -> Result<(), String> {
        let mut v = self.value.lock().map_err(|_| "progress lock poisoned")?;
        while *v < target {
            if let Some(f) = self.failure() {
                return Err(f);
            }
            v = self
                .changed
                .wait_timeout(v, std::time::Duration::from_millis(100))
                .map_err(|_| "progress lock poisoned")?
                .0;
        }
        Ok(())
    }
}

pub(crate) struct Submission {
    pub command: Command,
    pub reply: Sender<Result<Ack, AppendError>>,
}

/// Idempotency keys of records not yet in sled: bounded by the projector's queue.
#[derive(Default)]
struct RecentKeys {
    by_key: BTreeMap<(String, String), KeyedRecord>,
    order: VecDeque<(u64, (String, String))>,
}

impl RecentKeys {
    fn prune(&mut self, applied: u64) {
        while self.order.front().is_some_and(|(seq, _)| *seq <= applied) {
            if let Some((seq, k)) = self.order.pop_front() {
                if self.by_key.get(&k).is_some_and(|r| r.seq == seq) {
                    self.by_key.remove(&k);
                }
            }
        }
    }
}

pub(crate) struct Writer {
    pub engine: Box<dyn LogEngine>,
    pub clock: Arc<dyn Clock>,
    pub derived: Arc<Derived>,
    pub durable: Arc<Progress>,
    pub head: Arc<Mutex<Option<Head>>>,
    pub applied: Arc<Progress>,
    pub to_projector: Sender<Vec<StoredRecord>>,
    pub max_batch: usize,
    /// The shared context at the head: the resolver's input.
    pub ctx: Context,
    /// Append clock records when a deadline passes with nothing else arriving.
    pub auto_clock: bool,
    recent: RecentKeys,
    failed: Option<String>,
}

type Reply = (Sender<Result<Ack, AppendError>>, Result<Ack, AppendError>);

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Box<dyn LogEngine>,
        clock: Arc<dyn Clock>,
        derived: Arc<Derived>,
        durable: Arc<Progress>,
        head: Arc<Mutex<Option<Head>>>,
        applied: Arc<Progress>,
        to_projector: Sender<Vec<StoredRecord>>,
        max_batch: usize,
        ctx: Context,
        auto_clock: bool,
    ) -> Writer {
        assert!(max_batch >= 1, "a batch holds at least one command");
        Writer {
            engine,
            clock,
            derived,
            durable,
            head,
            applied,
            to_projector,
            max_batch,
            ctx,
            auto_clock,
            recent: RecentKeys::default(),
            failed: None,
        }
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, rx: Receiver<Submission>) {
        let mut pending = Vec::with_capacity(self.max_batch);
        loop {
            let deadline = if self.auto_clock && self.failed.is_none() {
                self.ctx.next_deadline_ms()
            } else {
                None
            };
            let first = match deadline {
                None => match rx.recv() {
                    Ok(s) => s,
                    Err(_) => return,
                },
                Some(at) => {
                    // Wait at most MAX_CLOCK_WAIT_MS at a time: the clock may jump.
                    let wait = at
                        .saturating_sub(self.clock.now_ms())
                        .min(MAX_CLOCK_WAIT_MS);
                    match rx.recv_timeout(std::time::Duration::from_millis(wait)) {
                        Ok(s) => s,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            if self.clock.now_ms() >= at {
                                // Time passed with nothing arriving: a clock record
                                // lets deferrals and expiries be decided, in the log.
                                self.commit(&mut pending, true);
                            }
                            continue;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            pending.push(first);
            while pending.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(s) => pending.push(s),
                    Err(_) => break,
                }
            }
            self.commit(&mut pending, false);
            debug_assert!(pending.is_empty());
        }
    }

    fn lookup(&self, producer: &str, key: &str) -> Result<Option<KeyedRecord>, DerivedError> {
        let k = (producer.to_owned(), key.to_owned());
        match self.recent.by_key.get(&k) {
            Some(r) => Ok(Some(*r)),
            None => self.derived.keyed(producer, key),
        }
    }

    /// Folds an encoded record into the context and the batch.
    fn fold_in(
        &mut self,
        record: Record,
        enc: crate::log::EncodedRecord,
        tail: &mut (u64, Hash, u64),
        encoded: &mut Vec<crate::log::EncodedRecord>,
        stored: &mut Vec<StoredRecord>,
    ) {
        debug_assert_eq!(record.envelope.seq, tail.0 + 1, "records fold in order");
        *tail = (
            record.envelope.seq,
            enc.hash,
            record.envelope.recorded_at_ms,
        );
        let s = StoredRecord {
            prev_hash: enc.prev_hash,
            hash: enc.hash,
            record,
        };
        self.ctx.apply(&s);
        encoded.push(enc);
        stored.push(s);
    }

    /// Encodes `record`, folds it into the context, then does the same for every
    /// follow-up it causes. Returns the decision that answers it, if any.
    fn append_with_follow_ups(
        &mut self,
        record: Record,
        tail: &mut (u64, Hash, u64),
        encoded: &mut Vec<crate::log::EncodedRecord>,
        stored: &mut Vec<StoredRecord>,
    ) -> Result<(Hash, Option<(u64, Decision)>), AppendError> {
        let cause = record.envelope.seq;
        let at_ms = record.envelope.recorded_at_ms;
        let correlation = record.envelope.correlation.clone();
        let enc = encode_record(&record, &tail.1)?;
        let own_hash = enc.hash;
        self.fold_in(record, enc, tail, encoded, stored);
        let mut answer = None;
        for _ in 0..MAX_FOLLOW_UPS {
            let Some(body) = next_follow_up(&self.ctx) else {
                return Ok((own_hash, answer));
            };
            let record = Record {
                envelope: Envelope {
                    format: FORMAT_VERSION,
                    seq: tail.0 + 1,
                    recorded_at_ms: at_ms,
                    producer: SYSTEM_PRODUCER.into(),
                    idempotency_key: None,
                    causation: Some(cause),
                    correlation: correlation.clone(),
                },
                body,
            };
            // A follow-up that does not encode would leave the context ahead of
            // the log: the writer stops rather than diverge.
            let enc = encode_record(&record, &tail.1)
                .map_err(|e| AppendError::Failed(format!("follow-up of seq {cause}: {e}")))?;
            if let Body::Decision { decision } = &record.body {
                if decision.intention == cause && answer.is_none() {
                    answer = Some((record.envelope.seq, (**decision).clone()));
                }
            }
            self.fold_in(record, enc, tail, encoded, stored);
        }
        Err(AppendError::Failed(format!(
            "seq {cause} caused more than {MAX_FOLLOW_UPS} follow-ups"
        )))
    }

    fn commit(&mut self, pending: &mut Vec<Submission>, clock_tick: bool) {
        if self.failed.is_none() {
            self.failed = self.applied.failure();
        }
        if let Some(reason) = &self.failed {
            for s in pending.drain(..) {
                let _ = s.reply.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        self.recent.prune(self.applied.get());
        let head = self.engine.head();
        let mut tail = head.map_or((0, crate::record::ZERO_HASH, 0), |h| {
            (h.seq, h.hash, h.recorded_at_ms)
        });
        let now = self.clock.now_ms();
        let mut encoded = Vec::with_capacity(pending.len());
        let mut stored = Vec::with_capacity(pending.len());
        let mut replies: Vec<Reply> = Vec::with_capacity(pending.len());
        let mut fatal = None;
        if clock_tick {
            let record = Record {
                envelope: Envelope {
                    format: FORMAT_VERSION,
                    seq: tail.0 + 1,
                    recorded_at_ms: now.max(tail.2),
                    producer: SYSTEM_PRODUCER.into(),
                    idempotency_key: None,
                    causation: None,
                    correlation: None,
                },
                body: Body::Clock,
            };
            if let Err(e) =
                self.append_with_follow_ups(record, &mut tail, &mut encoded, &mut stored)
            {
                fatal = Some(e.to_string());
            }
        }
        for Submission { command, reply } in pending.drain(..) {
            let Command {
                envelope: env,
                body,
            } = command;
            if fatal.is_some() {
                replies.push((reply, Err(AppendError::Failed("the batch failed".into()))));
                continue;
            }
            if let Some(key) = &env.idempotency_key {
                match self.lookup(&env.producer, key) {
                    Ok(Some(orig)) => {
                        let ack = Ack {
                            seq: orig.seq,
                            hash: orig.hash,
                            recorded_at_ms: orig.recorded_at_ms,
                            duplicate: true,
                            decision: None,
                        };
                        replies.push((reply, Ok(ack)));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        replies.push((reply, Err(AppendError::Failed(e.to_string()))));
                        continue;
                    }
                }
            }
            let recorded_at_ms = match env.at_ms {
                Some(t) if t < tail.2 => {
                    let e = AppendError::TimeBackwards {
                        at_ms: t,
                        last_ms: tail.2,
                    };
                    replies.push((reply, Err(e)));
                    continue;
                }
                Some(t) => t,
                None => now.max(tail.2),
            };
            if let Err(why) = check_command(&self.ctx, &env.producer, &body) {
                replies.push((reply, Err(AppendError::Refused(why))));
                continue;
            }
            let record = Record {
                envelope: Envelope {
                    format: FORMAT_VERSION,
                    seq: tail.0 + 1,
                    recorded_at_ms,
                    producer: env.producer.clone(),
                    idempotency_key: env.idempotency_key.clone(),
                    causation: env.causation,
                    correlation: env.correlation.clone(),
                },
                body,
            };
            let seq = tail.0 + 1;
            match self.append_with_follow_ups(record, &mut tail, &mut encoded, &mut stored) {
                Ok((hash, decision)) => {
                    if let Some(key) = &env.idempotency_key {
                        let k = (env.producer.clone(), key.clone());
                        let keyed = KeyedRecord {
                            seq,
                            hash,
                            recorded_at_ms,
                        };
                        self.recent.by_key.insert(k.clone(), keyed);
                        self.recent.order.push_back((seq, k));
                    }
                    let ack = Ack {
                        seq,
                        hash,
                        recorded_at_ms,
                        duplicate: false,
                        decision,
                    };
                    replies.push((reply, Ok(ack)));
                }
                // The command's own record did not encode: nothing was folded
                // into the context, so only this command is refused.
                Err(e @ AppendError::Record(_)) => replies.push((reply, Err(e))),
                Err(e) => {
                    fatal = Some(e.to_string());
                    replies.push((reply, Err(e)));
                }
            }
        }
        if let Some(reason) = fatal {
            tracing::error!(%reason, "the writer stops accepting commands");
            self.failed = Some(reason.clone());
            for (tx, _) in replies {
                let _ = tx.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        if !encoded.is_empty() {
            if let Err(e) = self.engine.append(&encoded) {
                let reason = e.to_string();
                tracing::error!(%reason, "append failed; the writer stops accepting commands");
                self.failed = Some(reason.clone());
                for (tx, _) in replies {
                    let _ = tx.send(Err(AppendError::Failed(reason.clone())));
                }
                return;
            }
            debug_assert_eq!(self.engine.head().map(|h| h.seq), Some(tail.0));
            for (segment, offsets) in self.engine.take_sealed_offsets() {
                crate::log::offsets::put_all(self.derived.as_ref(), segment, &offsets);
            }
            if let Ok(mut h) = self.head.lock() {
                *h = self.engine.head();
            }
            self.durable.publish(tail.0);
        }
        for (tx, result) in replies {
            // A producer that stopped waiting is not an error for the ledger.
            let _ = tx.send(result);
        }
        if !stored.is_empty() && self.to_projector.send(stored).is_err() {
            self.failed = Some("the projector stopped".into());
        }
    }
}

/// Applies committed batches to the derived store, in order.
pub(crate) fn run_projector(
    rx: Receiver<Vec<StoredRecord>>,
    derived: Arc<Derived>,
    applied: Arc<Progress>,
) {
    let idle = std::time::Duration::from_millis(crate::derived::FLUSH_IDLE_MS);
    loop {
        let result = match rx.recv_timeout(idle) {
            Ok(batch) => {
                let Some(last) = batch.last().map(|r| r.record.envelope.seq) else {
                    continue;
                };
                derived.apply(&batch).map(|()| applied.publish(last))
            }
            // Quiet: write the pending layer to sled.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => derived.flush_pending(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "derived store failed; reopen the ledger to rebuild it");
            applied.fail(format!("derived store failed: {e}"));
            return;
        }
    }
}
