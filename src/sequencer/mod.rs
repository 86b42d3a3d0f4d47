//! The sequencer: the single writer. Producers hand it commands over a bounded
//! channel; it takes whatever is waiting (at most `max_batch`), assigns seq,
//! time and hashes, admits each command and hands the batch to the syncer
//! ([`syncer`]), which appends it (one write and one fdatasync per write
//! unit), then acknowledges every command in it and hands the batch to the
//! projector ([`projector`]). The writer makes the next batch meanwhile.
//!
//! Architecture invariant: an `Ack` is sent only after the engine's `append`
//! returned, i.e. after the batch is durable; the writer's context may be up
//! to `SYNC_QUEUE_BATCHES` batches ahead (plus those being synced) of the durable head, and if an
//! append fails none of those batches is acknowledged. A full channel blocks a
//! producer that waits, or is refused at once to one that asks not to wait
//! (`Ledger::try_submit`); nothing is dropped. Acknowledgements are one-shot
//! channels that both threads and async tasks can wait on.

pub mod projector;
mod syncer;
mod writer;
pub(crate) use crate::resolver::FOLLOW_UPS_MAX;
pub use writer::SNAPSHOT_EVERY;

use std::sync::{Condvar, Mutex};

pub(crate) use syncer::{Batch, Syncer, SYNC_QUEUE_BATCHES};
pub(crate) use writer::{Signing, Writer};

use crate::command::{Command, CommandError};
use crate::record::{Body, Hash, RecordError};
use crate::resolver::Refusal;
use crate::vocab::Decision;

/// What the ledger answers when a command is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
    pub hash: Hash,
    pub recorded_at_ms: u64,
    /// True when the idempotency key had been seen: nothing was appended, and
    /// this is the original command's result, read back from the log.
    pub duplicate: bool,
    /// Every record the command caused, in log order: its own decision (for
    /// an intention), decisions of other intentions, workflow progress.
    pub follow_ups: Vec<(u64, Body)>,
    /// What parley recorded just before the command because its time passed
    /// due timers: a clock record at each due time and the decisions it
    /// brought (expiries, re-decided deferrals, step timeouts), in log order.
    pub timers: Vec<(u64, Body)>,
}

impl Ack {
    /// The first decision about this command's own intention, with its seq.
    pub fn decision(&self) -> Option<(u64, &Decision)> {
        self.follow_ups.iter().find_map(|(seq, b)| match b {
            Body::Decision { decision } if decision.intention == self.seq => {
                Some((*seq, decision.as_ref()))
            }
            _ => None,
        })
    }
}

/// Why a command was not appended.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("invalid command: {0}")]
    Invalid(#[from] CommandError),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(
        "time goes backwards: at_ms {at_ms} is before the last record's recorded_at_ms {last_ms}"
    )]
    TimeBackwards { at_ms: u64, last_ms: u64 },
    #[error("at_ms {at_ms} is {ahead_ms} ms ahead of this ledger's clock (at most {max_ms} ms is accepted)")]
    TimeAhead {
        at_ms: u64,
        ahead_ms: u64,
        max_ms: u64,
    },
    #[error("this ledger runs on scripted time: every command gives `at_ms`")]
    TimeMissing,
    #[error("at_ms {at_ms} jumps {jump_ms} ms past the last record (a scripted ledger moves at most {max_ms} ms at once)")]
    TimeJump {
        at_ms: u64,
        jump_ms: u64,
        max_ms: u64,
    },
    #[error("idempotency key `{key}` was used at seq {original} for a different command; use a new key for a new command")]
    KeyConflict { key: String, original: u64 },
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The command was not appended: the writer had stopped after a failure.
    #[error("the ledger stopped accepting appends after a failure ({0}); reopen it")]
    Failed(String),
    /// Writing the batch that held the command failed part way: it may or
    /// may not be in the log. Never reported as a failure: a client that
    /// retries must use the same idempotency key.
    #[error("the ledger could not confirm this command was written ({0}): it may or may not be in the log; once the ledger is reopened, send it again with the same idempotency key and it is appended at most once (without a key, check the log first)")]
    OutcomeUnknown(String),
    #[error("the ledger is closed")]
    Closed,
    #[error("the ledger's queue is full; retry shortly")]
    Busy,
    /// A node of a cluster that follows the ledger: another node writes it.
    #[error("this node follows the ledger and does not write it; {}", match .0 { Some(a) => format!("its writer serves at {a}"), None => "no writer is known yet; retry shortly".into() })]
    NotTheWriter(Option<String>),
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
        u64::try_from(wall_ns() / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// Nanoseconds since the Unix epoch by the wall clock (0 before 1970).
/// The shell's one wall-clock read: envelopes of `wall` timelines and
/// ledger ids come from here; the core never calls it.
#[allow(clippy::disallowed_methods)] // the shell's clock, see above
pub fn wall_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
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
    pub fn wait_for(&self, target: u64) -> Result<(), Halted> {
        let mut v = self.value.lock().map_err(|_| Halted::Poisoned)?;
        while *v < target {
            if let Some(reason) = self.failure() {
                return Err(Halted::Failed(reason));
            }
            v = self
                .changed
                .wait_timeout(v, std::time::Duration::from_millis(100))
                .map_err(|_| Halted::Poisoned)?
                .0;
        }
        Ok(())
    }
}

/// Why a [`Progress`] will not reach a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Halted {
    /// The stage behind it failed; the text is its error, rendered where it
    /// happened (on another thread).
    #[error("{0}")]
    Failed(String),
    #[error("a progress lock was poisoned (a thread panicked holding it)")]
    Poisoned,
}

/// Where an acknowledgement goes.
pub type Reply = tokio::sync::oneshot::Sender<Result<Ack, AppendError>>;

pub(crate) struct Submission {
    pub command: Command,
    /// The credential the command came with (the server's bearer token).
    pub credential: Option<u64>,
    pub reply: Reply,
}
