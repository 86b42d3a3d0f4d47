//! A node of a cluster: several parley processes on one ledger in
//! PostgreSQL. One writes (it holds the lease); the others follow: they read
//! every record the writer commits, fold it into their own derived state and
//! context, serve reads, and take the lease when the writer's runs out.
//!
//! Every node starts as a follower. Its follower thread, woken by each
//! commit (LISTEN/NOTIFY) and at least every tenth of a lease
//! (`follow_poll`), reads the ledger's head seq and lease in one query
//! on the store's shared reading threads, then the records past its head
//! (checked as every read is), and hands them to its projector, exactly as
//! a writer's syncer hands over its own batches; then it looks at the
//! lease. When the lease is free or expired (and, under `--write-at-most`,
//! the node has a writer slot) it takes it (a new epoch, `PgLog::open`),
//! reads the records the old writer committed before that, waits until its
//! projector has folded them, and starts a writer and syncer on the engine
//! with that context: the same state a writer reopening the ledger would
//! build. Deferrals,
//! expiries and deadlines then come due as after a restart.
//!
//! Architecture invariant: a follower never writes, and a node writes only
//! while its lease holds (`log::postgres`: checked in every append). A writer
//! whose append is fenced stops; its node refuses commands from then on and
//! `parley serve` exits, to be restarted as a follower.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{genesis_batch, spawn, Ledger, LedgerError, Options, Serving, Shared};
use crate::context::Context;
use crate::derived::Derived;
use crate::log::postgres::{LeaseInfo, PgLog, PgOptions, PgReader, PgStore};
use crate::log::{Head, LogEngine, LogError, LogReader};
use crate::sequencer::projector::Committed;
use crate::sequencer::Submission;

/// How often, at the most, a follower looks for new records and at the lease.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Bounds on how often a follower polls.
const FOLLOW_POLL_MAX: Duration = Duration::from_secs(1);

/// How often a follower of a ledger with leases of `lease_ms` polls: a
/// tenth of the lease (so a dead writer is replaced within about 1.1
/// leases), within `FOLLOW_POLL..=FOLLOW_POLL_MAX`.
fn follow_poll(lease_ms: u64) -> Duration {
    Duration::from_millis(lease_ms / 10).clamp(FOLLOW_POLL, FOLLOW_POLL_MAX)
}

/// Most records a follower hands its projector in one batch.
const FOLLOW_BATCH_MAX: usize = 1024;

/// How this node stands: writing or following, and what it knows of the lease.
pub struct Membership {
    ledger: String,
    holder: String,
    writing: AtomicBool,
    stopping: AtomicBool,
    lease: Mutex<Option<LeaseInfo>>,
    follower: Mutex<Option<JoinHandle<()>>>,
    started: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes the follower thread early (on stop).
    wake: Sender<()>,
}

impl Membership {
    /// True while this node writes the ledger.
    pub fn writing(&self) -> bool {
        self.writing.load(Ordering::SeqCst)
    }

    /// The ledger's name in the store.
    pub fn ledger(&self) -> &str {
        &self.ledger
    }

    /// This node's name in the lease row.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease as this node last read it.
    pub fn lease(&self) -> Option<LeaseInfo> {
        self.lease.lock().ok().and_then(|l| l.clone())
    }

    /// The writer's address (for forwarding), if it gave one and is not us.
    pub fn writer_address(&self) -> Option<String> {
        self.lease()
            .filter(|l| l.holder != self.holder && !l.address.is_empty() && l.remaining_ms > 0)
            .map(|l| l.address)
    }

    /// Stops the follower thread (waiting for it) and hands back the writer
    /// and syncer it started, for the caller to join after the queue closed.
    pub(super) fn stop(&self) -> Vec<JoinHandle<()>> {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        let follower = self.follower.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = follower {
            if f.join().is_err() {
                tracing::error!("the follower thread panicked");
            }
        }
        self.started
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// How many ledgers one node writes at most, shared by its followers: a
/// follower takes a free lease only after reserving a slot.
pub struct WriterSlots {
    most: usize,
    taken: AtomicUsize,
}

impl WriterSlots {
    /// At most `most` ledgers (`usize::MAX`: no limit).
    pub fn new(most: usize) -> WriterSlots {
        WriterSlots {
            most,
            taken: AtomicUsize::new(0),
        }
    }

    /// Reserves a slot; `false` when the node writes its most already.
    fn reserve(&self) -> bool {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.most).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot reserved for a lease that was not taken.
    fn give_back(&self) {
        let before = self.taken.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "a slot given back was reserved");
    }

    /// Ledgers this node writes (or is taking over).
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }
}

/// How a node joins a ledger's cluster.
pub struct Joining {
    /// Where the ledger's derived state is kept (`cache_dir`), or memory.
    pub cache: Option<PathBuf>,
    /// The node's writer slots, shared by all its ledgers.
    pub slots: Arc<WriterSlots>,
}

impl Default for Joining {
    fn default() -> Joining {
        Joining {
            cache: None,
            slots: Arc::new(WriterSlots::new(usize::MAX)),
        }
    }
}

/// Where a node keeps the derived state of `ledger` under its `--data DIR`:
/// one directory per ledger, named by the ledger's percent-encoded name.
pub fn cache_dir(dir: &Path, ledger: &str) -> PathBuf {
    let name = percent_encoding::utf8_percent_encode(ledger, percent_encoding::NON_ALPHANUMERIC);
    dir.join("ledgers").join(name.to_string()).join("derived")
}

/// What the follower thread owns.
struct Follower {
    store: PgStore,
    node: PgOptions,
    opts: Options,
    reader: Arc<PgReader>,
    shared: Shared,
    serving: Serving,
    ptx: Sender<Committed>,
    rx: Receiver<Submission>,
    membership: Arc<Membership>,
    woken: Receiver<()>,
    slots: Arc<WriterSlots>,
}

impl Ledger {
    /// Joins the cluster of ledger `node.ledger` in `store` as a follower
    /// that takes over when the lease is free (at once, for a ledger nobody
    /// writes; a new ledger gets its first records from the first writer).
    /// Its derived state lives in `joining.cache` (see `cache_dir`) when
    /// given, checked against the ledger and rebuilt when it does not match;
    /// else in memory, rebuilt at every start.
    pub fn cluster(
        store: &PgStore,
        node: PgOptions,
        joining: &Joining,
        opts: Options,
    ) -> Result<Ledger, LedgerError> {
        let cache = joining.cache.as_deref();
        crate::log::postgres::check_ledger_name(&node.ledger)?;
        let reader = Arc::new(PgReader::new(store.clone(), &node.ledger));
        let head = reader.head()?;
        let derived = match cache {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| LedgerError::Setup(format!("create {}: {e}", dir.display())))?;
                Derived::open(dir)?.0
            }
            None => Derived::temporary()?,
        }
        // PostgreSQL has no index files: entity lookups use the node's own.
        .with_entity_index();
        let genesis =
            super::genesis_hash(reader.as_ref(), head)?.unwrap_or(crate::record::ZERO_HASH);
        let caught = derived.catch_up(reader.as_ref(), head, genesis)?;
        if let Some(why) = caught.rebuilt_because {
            tracing::info!(ledger = %node.ledger, %why, "the node's cached derived state was rebuilt");
        }
        let shared = Shared::new(derived, head);
        let head_seq = head.map_or(0, |h| h.seq);
        let (ctx, _) = super::open_context(reader.as_ref(), &shared.derived, head_seq)?;
        let serving = Serving::new(&opts, &ctx);
        let (tx, rx) = bounded::<Submission>(opts.queue_capacity.max(1));
        let (ptx, prx) = bounded::<Committed>(super::PROJECTOR_BATCHES);
        let projector = shared.spawn_projector(None, &serving, prx)?;
        let (wake, woken) = bounded(1);
        // Commits to the ledger wake the follower before its next poll.
        store.on_commit(&node.ledger, wake.clone());
        let membership = Arc::new(Membership {
            ledger: node.ledger.clone(),
            holder: node.holder.clone(),
            writing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            lease: Mutex::new(None),
            follower: Mutex::new(None),
            started: Mutex::new(Vec::new()),
            wake,
        });
        let follower = Follower {
            store: store.clone(),
            node,
            opts: opts.clone(),
            reader: Arc::clone(&reader),
            shared: shared.clone(),
            serving: serving.clone(),
            ptx,
            rx,
            membership: Arc::clone(&membership),
            woken,
            slots: Arc::clone(&joining.slots),
        };
        let thread = spawn("parley-follower", Box::new(move || follower.run()))?;
        if let Ok(mut f) = membership.follower.lock() {
            *f = Some(thread);
        }
        Ok(shared.into_ledger(tx, reader, vec![projector], serving, Some(membership)))
    }
}

impl Follower {
    fn stopping(&self) -> bool {
        self.membership.stopping.load(Ordering::SeqCst)
    }

    fn run(self) {
        let poll = follow_poll(self.node.lease_ms);
        loop {
            if self.stopping() {
                return;
            }
            match self.store.follow_point(&self.node.ledger) {
                Ok((head_seq, lease)) => {
                    if let Err(e) = self.catch_up(head_seq) {
                        tracing::warn!(ledger = %self.node.ledger, error = %e, "following the ledger");
                    }
                    match self.try_lead(lease) {
                        Ok(Some(engine)) => {
                            let durable = Arc::clone(&self.shared.durable);
                            if let Err(e) = self.lead(engine) {
                                tracing::error!(error = %e, "taking over as the writer failed");
                                durable.fail(format!("taking over as the writer failed: {e}"));
                            }
                            return;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(ledger = %self.node.ledger, error = %e, "taking the writer's lease")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(ledger = %self.node.ledger, error = %e, "reading the ledger's head and lease")
                }
            }
            let _ = self.woken.recv_timeout(poll);
        }
    }

    fn head(&self) -> Option<Head> {
        self.shared.head.lock().ok().and_then(|h| *h)
    }

    /// Hands every record past this node's head up to `to_seq` to the
    /// projector, in batches.
    fn catch_up(&self, to_seq: u64) -> Result<(), LedgerError> {
        let from = self.head().map_or(1, |h| h.seq + 1);
        if to_seq < from {
            return Ok(());
        }
        let mut batch = Vec::new();
        let flush = |batch: &mut Vec<crate::record::StoredRecord>| -> Result<(), LogError> {
            let Some(last) = batch.last() else {
                return Ok(());
            };
            let head = Head {
                seq: last.record.envelope.seq,
                hash: last.hash,
                recorded_at_ms: last.record.envelope.recorded_at_ms,
            };
            let records = std::mem::take(batch);
            let locations = records.iter().map(|r| (0, r.record.envelope.seq)).collect();
            if let Ok(mut h) = self.shared.head.lock() {
                *h = Some(head);
            }
            self.shared.durable.publish(head.seq);
            self.ptx
                .send(Committed { records, locations })
                .map_err(|_| LogError::ThreadPanicked("the projector"))
        };
        self.reader.scan(from, to_seq, &mut |r| {
            // The link to this node's head is checked: the ledger it follows
            // must continue what it already holds.
            if batch.is_empty() && r.record.envelope.seq == from {
                if let Some(h) = self.head() {
                    if r.prev_hash != h.hash {
                        return Err(LogError::Corrupt {
                            seq: from,
                            reason: "the ledger does not continue the records this node holds"
                                .into(),
                        });
                    }
                }
            }
            batch.push(r);
            if batch.len() >= FOLLOW_BATCH_MAX {
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        Ok(())
    }

    /// Notes the lease as read; takes it when it is free or expired.
    fn try_lead(&self, lease: Option<LeaseInfo>) -> Result<Option<PgLog>, LogError> {
        let free = lease.as_ref().is_none_or(|l| l.remaining_ms <= 0);
        if let Ok(mut l) = self.membership.lease.lock() {
            *l = lease;
        }
        if !free || self.stopping() {
            return Ok(None);
        }
        if !self.slots.reserve() {
            // Another node with room takes it (`--write-at-most`).
            return Ok(None);
        }
        let taken = PgLog::open(&self.store, self.node.clone());
        if taken.is_err() {
            self.slots.give_back();
        }
        match taken {
            Ok(engine) => Ok(Some(engine)),
            Err(LogError::LeaseHeld { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// This node holds the lease: it catches up to the head the engine read
    /// (the old writer's last commit), then starts writing from there.
    fn lead(self, mut engine: PgLog) -> Result<(), LedgerError> {
        if engine.head().is_none() && self.head().is_none() {
            engine.append(&genesis_batch(&self.opts, None)?, &mut Vec::new())?;
        }
        let head = engine.head();
        self.catch_up(head.map_or(0, |h| h.seq))?;
        let head_seq = head.map_or(0, |h| h.seq);
        debug_assert_eq!(self.head().map(|h| h.hash), head.map(|h| h.hash));
        self.shared
            .applied
            .wait_for(head_seq)
            .map_err(|e| LedgerError::DerivedFailed(e.to_string()))?;
        let ctx = self.context(head_seq)?;
        self.opts
            .resolvers
            .check_known(&ctx)
            .map_err(LedgerError::Resolver)?;
        let (durable, membership) = (
            Arc::clone(&self.shared.durable),
            Arc::clone(&self.membership),
        );
        engine.on_lost(Box::new(move |why| {
            membership.writing.store(false, Ordering::SeqCst);
            durable.fail(why);
        }));
        engine.begin()?;
        if let Ok(mut l) = self.membership.lease.lock() {
            *l = Some(LeaseInfo {
                epoch: engine.epoch(),
                holder: self.node.holder.clone(),
                address: self.node.address.clone(),
                remaining_ms: i64::try_from(self.node.lease_ms).unwrap_or(i64::MAX),
            });
        }
        let threads = self.shared.spawn_writer(
            Box::new(engine),
            (ctx, 0),
            &self.opts,
            self.ptx.clone(),
            self.rx.clone(),
        )?;
        if let Ok(mut s) = self.membership.started.lock() {
            s.extend(threads);
        }
        self.membership.writing.store(true, Ordering::SeqCst);
        tracing::info!(ledger = %self.node.ledger, head = head_seq, "this node now writes the ledger");
        Ok(())
    }

    /// The context at `seq`: the published one (it has folded exactly the
    /// records up to the head), else a fold of the log.
    fn context(&self, seq: u64) -> Result<Context, LedgerError> {
        if let Some(p) = &self.serving.published {
            let ctx = p.read().map_err(|_| {
                LedgerError::Setup("the published context lock was poisoned".into())
            })?;
            if ctx.seq == seq {
                return Ok(ctx.clone());
            }
        }
        Ok(crate::reader::fold(self.reader.as_ref(), seq)?)
    }
}

#[cfg(test)]
mod tests {
    use super::WriterSlots;

    #[test]
    fn a_node_reserves_at_most_its_slots_and_gets_back_what_it_did_not_use() {
        let slots = WriterSlots::new(2);
        assert!(slots.reserve());
        assert!(slots.reserve());
        assert!(!slots.reserve(), "a third ledger past --write-at-most 2");
        slots.give_back();
        assert_eq!(slots.taken(), 1);
        assert!(slots.reserve());
        assert!(!slots.reserve());
        let unlimited = WriterSlots::new(usize::MAX);
        assert!((0..1000).all(|_| unlimited.reserve()));
    }
}
