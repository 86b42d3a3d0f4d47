//! Timers: a command's time, or a wall clock tick, past a due deadline
//! writes parley's clock records first, each at the time it fell due, with
//! the decisions it brings (see `Writer::due_timers`).

use super::{system_record, Answer, Tail, Writer, TIMER_TICKS_MAX};
use crate::command::CommandEnvelope;
use crate::record::{Body, Digest, Envelope, Record};
use crate::sequencer::{Ack, AppendError, Batch};

impl Writer {
    /// A `clock` command: the requester says the ledger's time has reached
    /// its `at_ms`; parley records the timers due by then (clock records of
    /// its own and their decisions). Nothing of the request is recorded: no
    /// producer writes clock records. The answer names the log's head after it.
    pub(super) fn request_time(
        &mut self,
        record_env: &Envelope,
        env: &CommandEnvelope,
        (tail, now_ms): (&mut Tail, u64),
        batch: &mut Batch,
    ) -> Answer {
        let t = match self.time_of(env.at_ms, tail.2, now_ms) {
            Ok(t) => t,
            Err(e) => return Answer::Err(e),
        };
        let author = crate::resolver::Author::of(record_env);
        if let Err(r) = self.resolvers.may_request_time(&self.ctx, author) {
            return Answer::Err(r.into());
        }
        let timers = match self.due_timers(t, tail, batch) {
            Ok(timers) => timers,
            Err(e) => {
                self.fail(e.to_string());
                return Answer::Err(e);
            }
        };
        Answer::Ack(Ack {
            seq: tail.0,
            hash: tail.1,
            recorded_at_ms: tail.2,
            duplicate: false,
            follow_ups: Vec::new(),
            timers,
        })
    }

    /// Records the timers due by the command's time `t` first (only for a
    /// command its author may write: a refused one moves no time), then
    /// admits the command again against the context they leave (an
    /// escalation they expired is no longer open to settle) and appends it.
    pub(super) fn timers_then_append(
        &mut self,
        (mut record, digest): (Record, Option<Digest>),
        env: &CommandEnvelope,
        t: u64,
        (tail, now_ms): (&mut Tail, u64),
        batch: &mut Batch,
    ) -> Answer {
        if self.ctx.next_deadline_ms().is_none_or(|d| d > t) {
            return self.append_command((record, digest), t, Vec::new(), tail, batch);
        }
        let timers = match self.due_timers(t, tail, batch) {
            Ok(timers) => timers,
            Err(e) => {
                // Part of them is folded in: the context is ahead of the batch.
                self.fail(e.to_string());
                return Answer::Err(e);
            }
        };
        debug_assert!(!timers.is_empty(), "a due timer writes a clock record");
        record.envelope.seq = tail.0 + 1;
        match self.check(&record.envelope, env, &record.body, (tail, now_ms)) {
            Ok(t) => self.append_command((record, digest), t, timers, tail, batch),
            Err(e) => Answer::Err(e),
        }
    }

    /// One clock record at `at_ms` and the follow-ups it brings; returns them
    /// (the clock first).
    fn clock_tick(
        &mut self,
        at_ms: u64,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Result<Vec<(u64, Body)>, AppendError> {
        let record = system_record(tail, at_ms, (None, None), Body::Clock);
        let (seq, at) = (record.envelope.seq, record.envelope.recorded_at_ms);
        self.fold_in(record, tail, batch)?;
        let mut out = vec![(seq, Body::Clock)];
        out.extend(self.follow_ups(seq, at, None, tail, batch)?);
        Ok(out)
    }

    /// Records every timer due at or before `until_ms` (an escalation's
    /// expiry, a deferral's end, a step's deadline, an intention's longest
    /// wait): a clock record at each due time, with the decisions it brings,
    /// so they are on the log, stamped when they were due, before whatever
    /// comes next. Returns the records written.
    pub(super) fn due_timers(
        &mut self,
        until_ms: u64,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Result<Vec<(u64, Body)>, AppendError> {
        let mut out = Vec::new();
        for _ in 0..TIMER_TICKS_MAX {
            let Some(due) = self.ctx.next_deadline_ms().filter(|d| *d <= until_ms) else {
                return Ok(out);
            };
            let at = due.max(tail.2);
            out.extend(self.clock_tick(at, tail, batch)?);
            // The clock settled every timer due by then (the resolver owes
            // nothing once its follow-ups are written): time moves on.
            if self.ctx.next_deadline_ms().is_some_and(|d| d <= at) {
                return Err(AppendError::Failed(format!(
                    "a timer due at {due} ms was not settled by the clock record at {at} ms"
                )));
            }
        }
        Err(AppendError::Failed(format!(
            "more than {TIMER_TICKS_MAX} timers fell due before one command"
        )))
    }
}
