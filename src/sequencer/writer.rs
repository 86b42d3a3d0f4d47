//! The writer thread: group commit, admission, time, idempotency, follow-ups,
//! clock records; its batches go to the syncer ([`super::syncer`]), which
//! makes them durable and acknowledges them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::syncer::{Answer, Batch};
use super::{Ack, AppendError, Clock, Progress, Reply, Submission, FOLLOW_UPS_MAX};
use crate::bounds::{CLOCK_SKEW_MS_MAX, SCRIPTED_STEP_MS_MAX};
use crate::command::{CommandEnvelope, SYSTEM_PRODUCER};
use crate::context::Context;
use crate::derived::{content_digest, Derived};
use crate::log::{encode_record, Head};
use crate::record::{Body, Digest, Envelope, Record, StoredRecord, Timeline, FORMAT_VERSION};
use crate::resolver::{Refusal, Resolvers};

/// Longest the writer sleeps before it looks at the clock again.
const CLOCK_WAIT_MS_MAX: u64 = 1_000;
/// Most timer clock records written before one command (each settles every
/// timer due at its time; a bound, not an expectation).
mod signing;
mod snapshots;
mod timers;

pub(crate) use signing::Signing;

/// A record parley writes itself (a follow-up, a clock record), next after
/// `tail`, at `at_ms` or the tail's time if later.
fn system_record(
    tail: &Tail,
    at_ms: u64,
    (causation, correlation): (Option<u64>, Option<String>),
    body: Body,
) -> Record {
    Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq: tail.0 + 1,
            recorded_at_ms: at_ms.max(tail.2),
            producer: SYSTEM_PRODUCER.into(),
            idempotency_key: None,
            causation,
            correlation,
            credential: None,
        },
        body,
    }
}

pub(super) const TIMER_TICKS_MAX: usize = 100_000;

/// Idempotency keys of records not yet in sled: bounded by the projector's queue.
#[derive(Default)]
struct RecentKeys {
    by_key: BTreeMap<(String, String), (u64, Digest)>,
    order: VecDeque<(u64, (String, String))>,
}

impl RecentKeys {
    fn prune(&mut self, applied: u64) {
        while self.order.front().is_some_and(|(seq, _)| *seq <= applied) {
            if let Some((seq, k)) = self.order.pop_front() {
                if self.by_key.get(&k).is_some_and(|r| r.0 == seq) {
                    self.by_key.remove(&k);
                }
            }
        }
    }
}

/// The tail of the log as the batch grows: (seq, hash, time).
type Tail = (u64, crate::record::Hash, u64);

pub(crate) struct Writer {
    pub clock: Arc<dyn Clock>,
    pub resolvers: Resolvers,
    pub derived: Arc<Derived>,
    pub durable: Arc<Progress>,
    pub applied: Arc<Progress>,
    /// Where batches go to be made durable (`None` once the writer stops).
    to_syncer: Option<Sender<Batch>>,
    /// The last record handed to the syncer: (seq, hash, time). The context
    /// is folded up to it; the durable head is at most one or two batches behind.
    tail: Tail,
    pub max_batch: usize,
    /// The shared context at the head: the resolver's input.
    pub ctx: Context,
    pub timeline: Timeline,
    /// Append clock records when a deadline passes with nothing else arriving.
    pub auto_clock: bool,
    recent: RecentKeys,
    failed: Option<String>,
    /// The seq of the snapshot the derived store holds (0: none): a close
    /// writes one unless it is already at the head.
    pub snapshot_seq: u64,
    /// The last snapshot's length in bytes: the next one is encoded into a
    /// buffer a little larger, in one pass over the context.
    snapshot_bytes_last: usize,
    /// Records between snapshots (`Options::snapshot_every`).
    pub snapshot_every: u64,
    /// Signed checkpoints, when the ledger was given a key.
    pub signing: Option<Signing>,
    /// Where snapshots are stored off the write path.
    snapshots: snapshots::Snapshots,
}

/// Records between context snapshots in the derived store: a writer that
/// crashed folds at most this many at its next open (plus what the derived
/// store's flush had not reached).
pub const SNAPSHOT_EVERY: u64 = 131_072;

impl Writer {
    #[allow(clippy::too_many_arguments)] // the writer owns every part of the write path
    pub(crate) fn new(
        head: Option<Head>,
        clock: Arc<dyn Clock>,
        resolvers: Resolvers,
        derived: Arc<Derived>,
        progress: (Arc<Progress>, Arc<Progress>),
        to_syncer: Sender<Batch>,
        max_batch: usize,
        ctx: Context,
        auto_clock: bool,
    ) -> Writer {
        assert!(max_batch >= 1, "a batch holds at least one command");
        let timeline = ctx.authority.timeline.unwrap_or(Timeline::Wall);
        let tail = head.map_or((0, crate::record::ZERO_HASH, 0), |h| {
            (h.seq, h.hash, h.recorded_at_ms)
        });
        assert_eq!(ctx.seq, tail.0, "the writer's context is at the log's head");
        let snapshots = snapshots::Snapshots::new(Arc::clone(&derived), Arc::clone(&progress.0));
        Writer {
            clock,
            resolvers,
            derived,
            durable: progress.0,
            applied: progress.1,
            to_syncer: Some(to_syncer),
            tail,
            max_batch,
            ctx,
            timeline,
            auto_clock: auto_clock && timeline == Timeline::Wall,
            recent: RecentKeys::default(),
            failed: None,
            snapshot_seq: 0,
            snapshot_bytes_last: 0,
            snapshot_every: SNAPSHOT_EVERY,
            signing: None,
            snapshots,
        }
    }

    /// Takes the context as a snapshot every `snapshot_every` records: the
    /// snapshot thread stores it once it is durable. Only a writer that has
    /// not failed does: its context is exactly the fold of the log to its tail.
    fn snapshot(&mut self) {
        let (seq, hash, _) = self.tail;
        if self.failed.is_some() || seq == 0 || seq == self.snapshot_seq {
            return;
        }
        debug_assert_eq!(self.ctx.seq, seq, "the context is at the tail");
        let bytes = self.encode_snapshot();
        match self.snapshots.hand_over((seq, hash), bytes) {
            Ok(()) => self.snapshot_seq = seq,
            Err(bytes) => self.store_snapshot(seq, hash, &bytes),
        }
    }

    /// The context's snapshot bytes: in one pass into a buffer an eighth
    /// larger than the last snapshot (a context grows between snapshots);
    /// the first, sized exactly by a second pass (a buffer grown from
    /// nothing costs more than that pass).
    fn encode_snapshot(&mut self) -> Vec<u8> {
        let last = self.snapshot_bytes_last;
        let bytes = if last == 0 {
            self.ctx.to_snapshot()
        } else {
            self.ctx.to_snapshot_within(last.saturating_add(last / 8))
        };
        debug_assert!(!bytes.is_empty(), "a context encodes to some bytes");
        self.snapshot_bytes_last = bytes.len();
        bytes
    }

    /// Stores a snapshot on this thread, once the syncer made `seq` durable
    /// (at a close, or when no snapshot thread could be started).
    fn store_snapshot(&mut self, seq: u64, hash: crate::record::Hash, bytes: &[u8]) {
        if self.durable.wait_for(seq).is_err() {
            return;
        }
        match self.derived.put_snapshot(seq, hash, bytes) {
            Ok(()) => self.snapshot_seq = seq,
            // Derived state: a missed snapshot costs a longer fold at open.
            Err(e) => tracing::warn!(error = %e, seq, "context snapshot not written"),
        }
    }

    /// The writer stops: the syncer answers what it holds, then the last
    /// snapshot is written (after the one in flight, if any).
    fn finish(&mut self) {
        self.sign_unsigned_head();
        self.to_syncer = None;
        self.snapshots.finish();
        let (seq, hash, _) = self.tail;
        if self.failed.is_none() && seq != 0 && seq != self.snapshot_seq {
            debug_assert_eq!(self.ctx.seq, seq, "the context is at the tail");
            let bytes = self.encode_snapshot();
            self.store_snapshot(seq, hash, &bytes);
        }
    }

    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Submission>) {
        self.settle_owed();
        self.sign_unsigned_head();
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
                    Err(_) => return self.finish(),
                },
                Some(at) => {
                    // Wait at most CLOCK_WAIT_MS_MAX at a time: the clock may jump.
                    let wait = at
                        .saturating_sub(self.clock.now_ms())
                        .min(CLOCK_WAIT_MS_MAX);
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
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                            return self.finish()
                        }
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

    /// A log cut after a crash may end owing follow-ups (an intention whose
    /// decision was in the part never written): the writer appends them first.
    fn settle_owed(&mut self) {
        if self.resolvers.next_follow_up(&self.ctx).is_none() || self.tail.0 == 0 {
            return;
        }
        let mut tail = self.tail;
        let (cause, at_ms) = (tail.0, tail.2);
        let mut batch = Batch::default();
        if let Err(e) = self.follow_ups(cause, at_ms, None, &mut tail, &mut batch) {
            self.fail(e.to_string());
            return;
        }
        tracing::warn!(
            records = batch.encoded.len(),
            "appended the follow-ups a cut log owed"
        );
        self.write(batch, tail);
    }

    /// The log's state is unknown after this: no more appends, no clean close.
    fn fail(&mut self, reason: String) {
        self.durable.fail(reason.clone());
        self.failed = Some(reason);
    }

    fn lookup(&self, producer: &str, key: &str) -> Result<Option<(u64, Digest)>, AppendError> {
        let k = (producer.to_owned(), key.to_owned());
        if let Some(r) = self.recent.by_key.get(&k) {
            return Ok(Some(*r));
        }
        self.derived
            .keyed(producer, key)
            .map(|o| o.map(|k| (k.seq, k.content)))
            .map_err(|e| AppendError::Failed(e.to_string()))
    }

    /// Encodes `record`, folds it into the context and the batch.
    fn fold_in(
        &mut self,
        record: Record,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Result<(), AppendError> {
        debug_assert_eq!(record.envelope.seq, tail.0 + 1, "records fold in order");
        let enc = encode_record(&record, &tail.1)?;
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
        // The writer admitted the record: the fold takes it, or the log and
        // the context would part (the writer stops rather than diverge).
        self.ctx.apply(&s).map_err(|e| {
            AppendError::Failed(format!(
                "the fold refused seq {}: {e}",
                s.record.envelope.seq
            ))
        })?;
        batch.encoded.push(enc);
        batch.stored.push(s);
        Ok(())
    }

    /// Appends every follow-up owed after seq `cause`; returns them.
    fn follow_ups(
        &mut self,
        cause: u64,
        at_ms: u64,
        correlation: Option<String>,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Result<Vec<(u64, Body)>, AppendError> {
        let mut out = Vec::new();
        for _ in 0..FOLLOW_UPS_MAX {
            let Some(body) = self.resolvers.next_follow_up(&self.ctx) else {
                return Ok(out);
            };
            let record = system_record(tail, at_ms, (Some(cause), correlation.clone()), body);
            out.push((record.envelope.seq, record.body.clone()));
            // A follow-up that does not encode would leave the context ahead of
            // the log: the writer stops rather than diverge.
            self.fold_in(record, tail, batch)
                .map_err(|e| AppendError::Failed(format!("follow-up of seq {cause}: {e}")))?;
        }
        Err(AppendError::Failed(format!(
            "seq {cause} caused more than {FOLLOW_UPS_MAX} follow-ups"
        )))
    }

    /// The time a command is recorded at, by the ledger's time line.
    fn time_of(&self, at_ms: Option<u64>, last_ms: u64, now_ms: u64) -> Result<u64, AppendError> {
        let t = match (self.timeline, at_ms) {
            (Timeline::Scripted, None) => return Err(AppendError::TimeMissing),
            (Timeline::Wall, None) => return Ok(now_ms.max(last_ms)),
            (_, Some(t)) => t,
        };
        if t < last_ms {
            return Err(AppendError::TimeBackwards { at_ms: t, last_ms });
        }
        match self.timeline {
            Timeline::Wall if t > now_ms.saturating_add(CLOCK_SKEW_MS_MAX) => {
                Err(AppendError::TimeAhead {
                    at_ms: t,
                    ahead_ms: t - now_ms,
                    max_ms: CLOCK_SKEW_MS_MAX,
                })
            }
            Timeline::Scripted if t - last_ms > SCRIPTED_STEP_MS_MAX => {
                Err(AppendError::TimeJump {
                    at_ms: t,
                    jump_ms: t - last_ms,
                    max_ms: SCRIPTED_STEP_MS_MAX,
                })
            }
            _ => Ok(t),
        }
    }

    /// Admits one command into the batch, or says why not.
    fn admit(
        &mut self,
        s: Submission,
        tail: &mut Tail,
        now_ms: u64,
        batch: &mut Batch,
    ) -> (Reply, Answer) {
        let Submission {
            command,
            credential,
            reply,
        } = s;
        let answer = self.admit_command(
            command.envelope,
            command.body,
            credential,
            tail,
            now_ms,
            batch,
        );
        (reply, answer)
    }

    fn admit_command(
        &mut self,
        env: CommandEnvelope,
        body: Body,
        credential: Option<u64>,
        tail: &mut Tail,
        now_ms: u64,
        batch: &mut Batch,
    ) -> Answer {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: tail.0 + 1,
                recorded_at_ms: 0,
                producer: env.producer.clone(),
                idempotency_key: env.idempotency_key.clone(),
                causation: env.causation,
                correlation: env.correlation.clone(),
                credential,
            },
            body,
        };
        if matches!(record.body, Body::Clock) {
            return self.request_time(&record.envelope, &env, (tail, now_ms), batch);
        }
        // One digest per keyed command: compared here, kept at commit.
        let digest = env
            .idempotency_key
            .as_ref()
            .map(|_| content_digest(&record.body, env.causation, env.correlation.as_deref()));
        if let (Some(key), Some(digest)) = (&env.idempotency_key, digest) {
            match self.lookup(&env.producer, key) {
                Ok(Some((seq, d))) if d == digest => return Answer::Duplicate(seq),
                Ok(Some((seq, _))) => {
                    return Answer::Err(AppendError::KeyConflict {
                        key: key.clone(),
                        original: seq,
                    })
                }
                Ok(None) => {}
                Err(e) => return Answer::Err(e),
            }
        }
        let t = match self.check(&record.envelope, &env, &record.body, (tail, now_ms)) {
            Ok(t) => t,
            Err(e) => return Answer::Err(e),
        };
        self.timers_then_append((record, digest), &env, t, (tail, now_ms), batch)
    }

    /// Time, causation and admission (of the record's author: producer and
    /// credential).
    fn check(
        &self,
        record_env: &Envelope,
        env: &CommandEnvelope,
        body: &Body,
        (tail, now_ms): (&Tail, u64),
    ) -> Result<u64, AppendError> {
        let t = self.time_of(env.at_ms, tail.2, now_ms)?;
        if let Some(c) = env.causation.filter(|c| *c > tail.0) {
            return Err(Refusal::CausationUnknown {
                causation: c,
                head: tail.0,
            }
            .into());
        }
        let author = crate::resolver::Author::of(record_env);
        self.resolvers.admit(&self.ctx, author, body)?;
        Ok(t)
    }

    fn append_command(
        &mut self,
        (mut record, digest): (Record, Option<Digest>),
        at_ms: u64,
        timers: Vec<(u64, Body)>,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Answer {
        debug_assert_eq!(
            record.envelope.seq,
            tail.0 + 1,
            "the command follows the tail"
        );
        record.envelope.recorded_at_ms = at_ms;
        let seq = record.envelope.seq;
        debug_assert_eq!(
            digest.is_some(),
            record.envelope.idempotency_key.is_some(),
            "a keyed command carries its digest"
        );
        let keyed = record
            .envelope
            .idempotency_key
            .clone()
            .zip(digest)
            .map(|(k, d)| ((record.envelope.producer.clone(), k), d));
        let correlation = record.envelope.correlation.clone();
        if let Err(e) = self.fold_in(record, tail, batch) {
            // The record was admitted but did not encode or fold: nothing of
            // it is in the batch only if encoding failed before the fold.
            if !matches!(e, AppendError::Record(_)) {
                self.fail(e.to_string());
            }
            return Answer::Err(e);
        }
        let hash = tail.1;
        let follow_ups = match self.follow_ups(seq, at_ms, correlation, tail, batch) {
            Ok(f) => f,
            Err(e) => {
                self.fail(e.to_string());
                return Answer::Err(e);
            }
        };
        if let Some((k, d)) = keyed {
            self.recent.by_key.insert(k.clone(), (seq, d));
            self.recent.order.push_back((seq, k));
        }
        Answer::Ack(Ack {
            seq,
            hash,
            recorded_at_ms: at_ms,
            duplicate: false,
            follow_ups,
            timers,
        })
    }

    pub(super) fn commit(&mut self, pending: &mut Vec<Submission>, clock_tick: bool) {
        if self.failed.is_none() {
            self.failed = self.applied.failure().or_else(|| self.durable.failure());
        }
        if let Some(reason) = &self.failed {
            for s in pending.drain(..) {
                let _ = s.reply.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        self.recent.prune(self.applied.get());
        let mut tail = self.tail;
        let now = self.clock.now_ms();
        let mut batch = Batch::default();
        if clock_tick {
            if let Err(e) = self.due_timers(now, &mut tail, &mut batch) {
                self.fail(e.to_string());
            }
        }
        for s in pending.drain(..) {
            let reply = match &self.failed {
                Some(r) => (s.reply, Answer::Err(AppendError::Failed(r.clone()))),
                None => self.admit(s, &mut tail, now, &mut batch),
            };
            batch.replies.push(reply);
        }
        if self.failed.is_none() {
            if let Err(e) = self.checkpoint_if_due(&mut tail, &mut batch) {
                self.fail(e.to_string());
            }
        }
        if let Some(reason) = self.failed.clone() {
            tracing::error!(%reason, "the writer stops accepting commands");
            for (tx, _) in batch.replies {
                let _ = tx.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        self.write(batch, tail);
    }

    /// Hands the batch to the syncer, which makes it durable and answers;
    /// the context and the tail already include it.
    fn write(&mut self, batch: Batch, tail: Tail) {
        debug_assert!(tail.0 >= self.tail.0, "the tail only moves forward");
        debug_assert_eq!(
            batch
                .stored
                .last()
                .map_or(self.tail.0, |r| r.record.envelope.seq),
            tail.0,
            "the batch ends at the new tail"
        );
        self.tail = tail;
        let sent = match &self.to_syncer {
            Some(tx) => tx.send(batch).map_err(|e| e.into_inner()),
            None => Err(batch),
        };
        if let Err(batch) = sent {
            self.fail("the syncer stopped".into());
            for (tx, _) in batch.replies {
                let _ = tx.send(Err(AppendError::Failed("the syncer stopped".into())));
            }
            return;
        }
        // After the hand-off: a snapshot never delays this batch.
        if self.tail.0 >= self.snapshot_seq.saturating_add(self.snapshot_every) {
            self.snapshot();
        }
    }
}
