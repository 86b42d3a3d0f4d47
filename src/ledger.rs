//! The ledger: a log engine, the sequencer in front of it, and the derived
//! state behind it, opened, recovered and caught up as one, by the one writer.
//!
//! A data directory holds `log/` (segment files and `log/head`: the truth and
//! its evidence), `index/` (segment index files) and `derived/` (sled), the
//! last two rebuildable from the log. The writer holds an exclusive `flock`
//! on `log/` itself. Readers use `crate::reader` and take no lock.
//!
//! `open.rs` holds what opening needs (a new ledger's first records, the
//! checked log and the context at its head); `rebuild.rs` rebuilds the
//! derived state from the log.

pub mod cluster;
mod open;
mod rebuild;

use open::{genesis_batch, genesis_hash, open_context};
pub use rebuild::{rebuild, RebuildReport};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};

use crate::command::Command;
use crate::context::Context;
use crate::derived::{Derived, DerivedError, DerivedOpen};
use crate::entity::EntityRef;
use crate::log::disk::{Disk, OsDisk};
use crate::log::head::{HeadWriter, State};
use crate::log::memory::MemoryLog;
use crate::log::recovery::Proof;
use crate::log::segment::{
    self, LockError, Recovery, SegmentLog, WriterLock, DEFAULT_SEGMENT_BYTES,
};
use crate::log::{Head, LogEngine, LogError, LogReader};
use crate::reader::{fold, LedgerRead};
use crate::record::{StoredRecord, Timeline, ZERO_HASH};
use crate::resolver::{Refusal, Resolvers, CURRENT};
use crate::sequencer::projector::{Committed, Feed, Files, Projector, Published};
use crate::sequencer::{
    Ack, AppendError, Batch, Clock, Progress, Submission, Syncer, SystemClock, Writer,
    SYNC_QUEUE_BATCHES,
};

/// The first admin of a new ledger unless another is named.
pub const DEFAULT_ADMIN: &str = "admin";
/// Batches the feed keeps for followers before a slow one falls behind.
pub const FEED_BATCHES: usize = 1024;

/// How a ledger is opened.
#[derive(Clone)]
pub struct Options {
    /// Preallocated size of each segment file.
    pub segment_bytes: u64,
    /// Most commands in one group commit.
    pub max_batch: usize,
    /// Commands that may wait for the writer.
    pub queue_capacity: usize,
    /// Id written into the genesis record of a new ledger (generated if `None`).
    pub ledger_id: Option<String>,
    /// Time of the genesis record of a new ledger (wall clock if `None`).
    pub genesis_at_ms: Option<u64>,
    /// Where time comes from for commands that do not carry their own.
    pub clock: Arc<dyn Clock>,
    /// The time line of a new ledger.
    pub timeline: Timeline,
    /// The first admin of a new ledger.
    pub first_admin: String,
    /// Rule text installed right after the genesis record of a new ledger
    /// (`None`: none; decisions are then rejected until rules are installed).
    pub initial_rules: Option<String>,
    /// Workflow definitions (TOML text) installed after the rules in a new ledger.
    pub initial_workflows: Vec<String>,
    /// Append clock records when a deferral or expiry comes due with nothing
    /// else arriving (wall-clock ledgers only).
    pub auto_clock: bool,
    /// The resolver versions this process knows.
    pub resolvers: Resolvers,
    /// The resolver version a new ledger starts with (its genesis names it).
    pub resolver_version: u32,
    /// Keep a context at the durable head for reads, and a feed of committed
    /// batches for live followers (the server does).
    pub serve: bool,
    /// Records between context snapshots in the derived store (also one on
    /// close); at least 1.
    pub snapshot_every: u64,
    /// The filesystem the log is written through (`log::disk`): the real
    /// one, or a recording and fault-injecting one in tests.
    pub disk: Arc<dyn Disk>,
    /// How often a running writer records its applied head as fsynced
    /// evidence in `log/head` (besides at open and at a clean close). A
    /// simulation sets it past its run, so its trace depends on its seed alone.
    pub evidence_every: std::time::Duration,
    /// The key the writer signs checkpoints with (`crate::checkpoint`);
    /// `None`: no checkpoints.
    pub signing_key: Option<Arc<crate::checkpoint::SigningKey>>,
    /// Records between signed checkpoints.
    pub checkpoint_every: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_batch: 1024,
            queue_capacity: 8192,
            ledger_id: None,
            genesis_at_ms: None,
            clock: Arc::new(SystemClock),
            timeline: Timeline::Wall,
            first_admin: DEFAULT_ADMIN.into(),
            initial_rules: Some(crate::rules::DEFAULT_RULES.to_owned()),
            initial_workflows: crate::workflow::SHIPPED.map(str::to_owned).to_vec(),
            auto_clock: true,
            resolvers: Resolvers::released(),
            resolver_version: CURRENT,
            serve: false,
            snapshot_every: crate::sequencer::SNAPSHOT_EVERY,
            disk: OsDisk::shared(),
            evidence_every: crate::sequencer::projector::EVIDENCE_EVERY,
            signing_key: None,
            checkpoint_every: crate::checkpoint::CHECKPOINT_EVERY,
        }
    }
}

/// What opening a ledger found.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// The seq of the context snapshot the open started from (`None`: the
    /// whole log was folded).
    pub context_from_snapshot: Option<u64>,
    pub created: bool,
    pub recovery: Recovery,
    pub derived: DerivedOpen,
    /// Segment index files that were missing or damaged and were rebuilt.
    pub indexes_rebuilt: u32,
}

/// Why a ledger could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Derived(#[from] DerivedError),
    #[error("{} is in use by another parley writer (parley serve or parley run); read commands work next to it; while `parley serve` holds it, write through it: `parley run --server URL FILE` or `parley resolve --server URL …` with PARLEY_TOKEN set, or POST /v1/commands", .0.display())]
    Locked(PathBuf),
    #[error("{} holds no ledger (no log/ directory)", .0.display())]
    NoLedger(PathBuf),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Append(#[from] AppendError),
    #[error("this ledger needs {0}")]
    Resolver(Refusal),
    #[error("{0}")]
    Setup(String),
    #[error("derived state: {0}")]
    DerivedFailed(String),
}

impl From<LockError> for LedgerError {
    fn from(e: LockError) -> LedgerError {
        match e {
            LockError::Held(p) => {
                LedgerError::Locked(p.parent().map_or(p.clone(), Path::to_path_buf))
            }
            LockError::Log(l) => LedgerError::Log(l),
        }
    }
}

/// A pending acknowledgement: wait for it from a thread, or await it.
pub struct Ticket(tokio::sync::oneshot::Receiver<Result<Ack, AppendError>>);

impl Ticket {
    /// Blocks until the command is durable (or refused). Not for async code.
    pub fn wait(self) -> Result<Ack, AppendError> {
        self.0.blocking_recv().unwrap_or(Err(AppendError::Closed))
    }

    /// Waits without blocking a thread.
    pub async fn outcome(self) -> Result<Ack, AppendError> {
        self.0.await.unwrap_or(Err(AppendError::Closed))
    }
}

/// An open ledger, with its writer running.
pub struct Ledger {
    tx: Option<Sender<Submission>>,
    reader: Arc<dyn LogReader>,
    derived: Arc<Derived>,
    durable: Arc<Progress>,
    head: Arc<Mutex<Option<Head>>>,
    applied: Arc<Progress>,
    threads: Vec<JoinHandle<()>>,
    evidence: Option<Arc<Mutex<HeadWriter>>>,
    published: Option<Published>,
    feed: Option<Feed>,
    _lock: Option<Arc<WriterLock>>,
    /// A node of a cluster on PostgreSQL (writing or following).
    cluster: Option<Arc<cluster::Membership>>,
}

impl Ledger {
    /// Opens the ledger in `dir` for writing, creating it if the directory
    /// holds no log. A failed creation leaves nothing behind.
    pub fn open(dir: &Path, opts: Options) -> Result<(Ledger, OpenReport), LedgerError> {
        let log_dir = dir.join("log");
        if log_dir.exists() {
            return Ledger::open_dir(dir, opts);
        }
        let made_dir = !dir.exists();
        let io = |op| {
            move |source| LedgerError::Io {
                op,
                path: dir.to_path_buf(),
                source,
            }
        };
        opts.disk
            .create_dir_all(&log_dir)
            .map_err(io("create directory"))?;
        // The new names are durable before anything in them is acknowledged.
        let mut synced = opts.disk.sync_dir(dir);
        if let (true, Ok(())) = (made_dir, &synced) {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            synced = opts.disk.sync_dir(parent.unwrap_or(Path::new(".")));
        }
        let opened = synced
            .map_err(io("fsync directory"))
            .and_then(|()| Ledger::open_dir(dir, opts));
        match opened {
            Ok(r) => Ok(r),
            Err(e) => {
                // Nothing was acknowledged in a ledger that never opened.
                for sub in ["log", "derived", "index"] {
                    let _ = std::fs::remove_dir_all(dir.join(sub));
                }
                if made_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                Err(e)
            }
        }
    }

    fn open_dir(dir: &Path, opts: Options) -> Result<(Ledger, OpenReport), LedgerError> {
        let log_dir = dir.join("log");
        let index_dir = dir.join("index");
        let lock = Arc::new(segment::lock(&log_dir)?);
        let (derived, rebuilt) = Derived::open(&dir.join("derived"))?;
        let proof = Proof::gather(&log_dir, &dir.join("derived"))?;
        let (mut engine, recovery) = SegmentLog::open(
            &log_dir,
            opts.segment_bytes,
            proof,
            &index_dir,
            Some(Arc::clone(&lock)),
            Arc::clone(&opts.disk),
        )?;
        let created = engine.head().is_none();
        if created {
            let mut at = Vec::new();
            engine.append(&genesis_batch(&opts, Some(dir))?, &mut at)?;
        }
        let mut report = OpenReport {
            created,
            recovery,
            ..OpenReport::default()
        };
        let evidence = engine.evidence();
        let files = engine.files();
        let walked = engine.take_walked();
        let (active, rebuilt_indexes) =
            crate::reader::build_indexes(&files, engine.head(), true, walked)?;
        report.indexes_rebuilt = rebuilt_indexes;
        let active = Arc::new(RwLock::new(active));
        files.share_active(Arc::clone(&active));
        let projector_files = Files {
            files,
            active,
            evidence: Arc::clone(&evidence),
            evidence_every: opts.evidence_every,
        };
        let mut ledger = Ledger::start(
            Box::new(engine),
            derived,
            &opts,
            &mut report,
            Some(projector_files),
        )?;
        if let Some(reason) = rebuilt {
            report.derived.rebuilt_because = Some(reason);
        }
        ledger.evidence = Some(evidence);
        ledger._lock = Some(lock);
        Ok((ledger, report))
    }

    /// A ledger that lives in memory only (tests, what-if).
    pub fn in_memory(opts: Options) -> Result<Ledger, LedgerError> {
        Ledger::with_engine(Box::new(MemoryLog::new()), opts)
    }

    /// A ledger on an engine the caller built: the seam other log engines
    /// plug into. An empty engine gets the new ledger's first records
    /// (genesis, rules, workflows); a non-empty one is continued after its
    /// log is checked and folded. Derived state (idempotency keys, the
    /// context snapshot) is kept in memory and rebuilt from the log.
    pub fn with_engine(
        mut engine: Box<dyn LogEngine>,
        opts: Options,
    ) -> Result<Ledger, LedgerError> {
        if engine.head().is_none() {
            engine.append(&genesis_batch(&opts, None)?, &mut Vec::new())?;
        }
        let mut report = OpenReport::default();
        Ledger::start(engine, Derived::temporary()?, &opts, &mut report, None)
    }

    fn start(
        mut engine: Box<dyn LogEngine>,
        derived: Derived,
        opts: &Options,
        report: &mut OpenReport,
        files: Option<Files>,
    ) -> Result<Ledger, LedgerError> {
        let reader = engine.reader();
        let head = engine.head();
        let genesis = genesis_hash(reader.as_ref(), head)?.unwrap_or(ZERO_HASH);
        report.derived = derived.catch_up(reader.as_ref(), head, genesis)?;
        let shared = Shared::new(derived, head);
        // The writer's context: the resolver's input, from the derived
        // store's snapshot and the log after it, or folded from the start.
        let head_seq = head.map_or(0, |h| h.seq);
        let (ctx, from_snapshot) = open_context(reader.as_ref(), &shared.derived, head_seq)?;
        report.context_from_snapshot = from_snapshot;
        opts.resolvers
            .check_known(&ctx)
            .map_err(LedgerError::Resolver)?;
        // Every check passed: from here on this process is the writer.
        engine.begin()?;
        let serving = Serving::new(opts, &ctx);
        let (tx, rx) = bounded::<Submission>(opts.queue_capacity.max(1));
        // The projector queue holds whole batches; with the records the
        // syncer holds while it is full (`HELD_RECORDS_MAX`), this bounds
        // the memory held for the projector.
        let (ptx, prx) = bounded::<Committed>(PROJECTOR_BATCHES);
        let projector = shared.spawn_projector(files, &serving, prx)?;
        let [writer, syncer] =
            shared.spawn_writer(engine, (ctx, from_snapshot.unwrap_or(0)), opts, ptx, rx)?;
        // Joined in this order: each stops once the one before it has.
        let threads = vec![writer, syncer, projector];
        Ok(shared.into_ledger(tx, reader, threads, serving, None))
    }

    /// Hands a command to the sequencer; blocks while the queue is full.
    pub fn submit(&self, command: Command) -> Result<Ticket, AppendError> {
        command.validate()?;
        self.check_writing()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(Submission {
            command,
            credential: None,
            reply,
        })
        .map_err(|_| AppendError::Closed)?;
        Ok(Ticket(rx))
    }

    /// Hands a command to the sequencer without waiting for room: a full
    /// queue answers `Busy` at once (the server's 503).
    pub fn try_submit(
        &self,
        command: crate::command::Checked,
        credential: Option<u64>,
    ) -> Result<Ticket, AppendError> {
        self.check_writing()?;
        let command = command.into_inner();
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        let s = Submission {
            command,
            credential,
            reply,
        };
        match tx.try_send(s) {
            Ok(()) => Ok(Ticket(rx)),
            Err(TrySendError::Full(_)) => Err(AppendError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(AppendError::Closed),
        }
    }

    /// A node that follows the ledger refuses, naming the writer.
    fn check_writing(&self) -> Result<(), AppendError> {
        match &self.cluster {
            Some(m) if !m.writing() => Err(AppendError::NotTheWriter(m.writer_address())),
            _ => Ok(()),
        }
    }

    /// Why the writer (or, on a follower, the takeover) stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.durable.failure().or_else(|| self.applied.failure())
    }

    /// How this node stands in its cluster (`None`: not on PostgreSQL).
    pub fn membership(&self) -> Option<&cluster::Membership> {
        self.cluster.as_deref()
    }

    /// Appends a command and waits until it is durable.
    pub fn append(&self, command: Command) -> Result<Ack, AppendError> {
        self.submit(command)?.wait()
    }

    /// The last durable record.
    pub fn head(&self) -> Option<Head> {
        self.head.lock().ok().and_then(|h| *h)
    }

    /// Commands waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    /// The context at the durable head (only with `Options::serve`).
    pub fn published(&self) -> Option<&Published> {
        self.published.as_ref()
    }

    /// Follows committed batches live (only with `Options::serve`).
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<Committed>>> {
        self.feed.as_ref().map(Feed::subscribe)
    }

    /// The seq the published context and the feed have reached.
    pub fn applied_seq(&self) -> u64 {
        self.applied.get()
    }

    /// Waits (bounded by the caller) until derived state reflects `seq`.
    pub fn wait_applied(&self, seq: u64) -> Result<(), LedgerError> {
        self.applied
            .wait_for(seq)
            .map_err(|e| LedgerError::DerivedFailed(e.to_string()))
    }

    /// The shared context as of `seq` (clamped to the head): a fold of the log.
    pub fn context_at(&self, seq: u64) -> Result<Context, LogError> {
        fold(self.reader.as_ref(), seq.min(self.durable.get()))
    }

    /// The seq of the context snapshot the derived store holds, if any.
    pub fn snapshot_seq(&self) -> Result<Option<u64>, LedgerError> {
        Ok(self.derived.snapshot()?.map(|(seq, _, _)| seq))
    }

    /// `None` when the derived store equals a fresh fold of the log.
    pub fn derived_differences(&self) -> Result<Option<String>, LedgerError> {
        let head = self.durable.get();
        self.wait_applied(head)?;
        Ok(self.derived.differences(self.reader.as_ref(), head)?)
    }

    /// Stops the writer and projector after they finish what they hold, and
    /// records the clean close.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LedgerError> {
        if self.tx.is_none() && self.threads.is_empty() {
            return Ok(());
        }
        self.tx = None;
        if let Some(m) = &self.cluster {
            // The follower's thread first (it may be promoting this node),
            // then the writer and syncer it started, then the rest.
            for t in m.stop() {
                if t.join().is_err() {
                    tracing::error!("a ledger thread panicked");
                    self.durable.fail("a ledger thread panicked".into());
                }
            }
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a ledger thread panicked");
                self.durable.fail("a ledger thread panicked".into());
            }
        }
        self.derived.flush()?;
        // A writer that failed left the log in an unknown state: no clean close.
        if self.durable.failure().is_none() {
            if let (Some(e), Some(h)) = (&self.evidence, self.head()) {
                e.lock()
                    .map_err(|_| LedgerError::Setup("head file lock poisoned".into()))?
                    .record(State::Closed, h.seq, h.hash)?;
            }
        }
        Ok(())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "closing the ledger");
        }
    }
}

/// Batches the projector's queue holds (whole batches: this bounds memory).
pub(crate) const PROJECTOR_BATCHES: usize = 64;

/// What a ledger's threads share: derived state and how far the log and
/// the projector have got.
#[derive(Clone)]
pub(crate) struct Shared {
    pub derived: Arc<Derived>,
    pub durable: Arc<Progress>,
    pub applied: Arc<Progress>,
    pub head: Arc<Mutex<Option<Head>>>,
}

impl Shared {
    /// The ledger over these parts: commands go in through `tx`; `threads`
    /// are joined in their order at close.
    fn into_ledger(
        self,
        tx: Sender<Submission>,
        reader: Arc<dyn LogReader>,
        threads: Vec<JoinHandle<()>>,
        serving: Serving,
        cluster: Option<Arc<cluster::Membership>>,
    ) -> Ledger {
        Ledger {
            tx: Some(tx),
            reader,
            derived: self.derived,
            durable: self.durable,
            head: self.head,
            applied: self.applied,
            threads,
            evidence: None,
            published: serving.published,
            feed: serving.feed,
            _lock: None,
            cluster,
        }
    }
}

/// The published context and the feed, when the ledger serves reads.
#[derive(Clone)]
pub(crate) struct Serving {
    pub published: Option<Published>,
    pub feed: Option<Feed>,
}

impl Serving {
    pub(crate) fn new(opts: &Options, ctx: &Context) -> Serving {
        Serving {
            published: opts.serve.then(|| Arc::new(RwLock::new(ctx.clone()))),
            feed: opts
                .serve
                .then(|| tokio::sync::broadcast::channel(FEED_BATCHES).0),
        }
    }
}

pub(crate) fn spawn(
    name: &str,
    f: Box<dyn FnOnce() + Send>,
) -> Result<JoinHandle<()>, LedgerError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| LedgerError::Io {
            op: "spawn thread",
            path: PathBuf::from(name),
            source,
        })
}

impl Shared {
    pub(crate) fn new(derived: Derived, head: Option<Head>) -> Shared {
        let head_seq = head.map_or(0, |h| h.seq);
        let durable = Arc::new(Progress::default());
        durable.publish(head_seq);
        let applied = Arc::new(Progress::default());
        applied.publish(head_seq);
        Shared {
            derived: Arc::new(derived),
            durable,
            applied,
            head: Arc::new(Mutex::new(head)),
        }
    }

    pub(crate) fn spawn_projector(
        &self,
        files: Option<Files>,
        serving: &Serving,
        prx: crossbeam_channel::Receiver<Committed>,
    ) -> Result<JoinHandle<()>, LedgerError> {
        let mut projector =
            Projector::new(Arc::clone(&self.derived), Arc::clone(&self.applied), files);
        projector.published = serving.published.clone();
        projector.feed = serving.feed.clone();
        spawn("parley-projector", Box::new(move || projector.run(prx)))
    }

    /// Starts the writer and the syncer on `engine`, whose head is the
    /// shared head and whose context (with its snapshot seq) is `ctx`.
    pub(crate) fn spawn_writer(
        &self,
        engine: Box<dyn LogEngine>,
        (ctx, snapshot_seq): (Context, u64),
        opts: &Options,
        ptx: Sender<Committed>,
        rx: crossbeam_channel::Receiver<Submission>,
    ) -> Result<[JoinHandle<()>; 2], LedgerError> {
        let head = engine.head();
        debug_assert_eq!(ctx.seq, head.map_or(0, |h| h.seq));
        let (stx, srx) = bounded::<Batch>(SYNC_QUEUE_BATCHES);
        let mut writer = Writer::new(
            head,
            Arc::clone(&opts.clock),
            opts.resolvers.clone(),
            Arc::clone(&self.derived),
            (Arc::clone(&self.durable), Arc::clone(&self.applied)),
            stx,
            opts.max_batch,
            ctx,
            opts.auto_clock,
        );
        writer.snapshot_every = opts.snapshot_every.max(1);
        writer.snapshot_seq = snapshot_seq;
        if let Some(key) = &opts.signing_key {
            let last_record = match head {
                Some(h) if last_is_checkpoint(engine.reader().as_ref(), h.seq)? => h.seq,
                _ => 0,
            };
            writer.signing = Some(crate::sequencer::Signing {
                key: Arc::clone(key),
                every: opts.checkpoint_every.clamp(
                    crate::checkpoint::CHECKPOINT_EVERY_MIN,
                    crate::checkpoint::CHECKPOINT_EVERY_MAX,
                ),
                last_record,
            });
        }
        let syncer = Syncer::new(
            engine,
            (Arc::clone(&self.durable), Arc::clone(&self.applied)),
            Arc::clone(&self.head),
            ptx,
        );
        let syncer = spawn("parley-syncer", Box::new(move || syncer.run(srx)))?;
        let writer = spawn("parley-writer", Box::new(move || writer.run(rx)))?;
        Ok([writer, syncer])
    }
}

/// True when the record at `seq` is a checkpoint (a writer that opens on
/// it has nothing unsigned).
fn last_is_checkpoint(reader: &dyn LogReader, seq: u64) -> Result<bool, LogError> {
    let mut found = false;
    reader.scan(seq, seq, &mut |r| {
        found = matches!(r.record.body, crate::record::Body::Checkpoint { .. });
        Ok(())
    })?;
    Ok(found)
}

impl LedgerRead for Ledger {
    fn head_seq(&self) -> u64 {
        self.durable.get()
    }

    fn scan(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(StoredRecord) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let to = to.min(self.durable.get());
        if from > to {
            return Ok(());
        }
        self.reader.scan(from, to, visit)
    }

    fn read(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError> {
        self.reader.read(seqs, self.durable.get())
    }

    fn entity_seqs(&self, entity: &EntityRef) -> Result<Vec<u64>, LogError> {
        let head = self.durable.get();
        // The active segment's index is the projector's: wait until it has
        // every durable record (a short wait, bounded by the batch in flight).
        if self.applied.wait_for(head).is_err() {
            return Err(LogError::IndexBehind {
                indexed: self.applied.get(),
                head,
            });
        }
        if self.derived.indexes_entities() {
            // An engine without index files (PostgreSQL): the node's own index.
            let mut seqs = self
                .derived
                .entity_seqs(&entity.to_string())
                .map_err(|e| LogError::EntityIndex(e.to_string()))?;
            seqs.retain(|s| *s <= head);
            return Ok(seqs);
        }
        self.reader.entity_seqs(&entity.to_string(), head)
    }
}
