//! The ledger: a log engine, the sequencer in front of it, and the derived store
//! behind it, opened, recovered and caught up as one.
//!
//! A data directory holds `log/` (segment files, the truth), `derived/` (sled,
//! rebuildable) and `LOCK` (one process at a time).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::command::{Command, SYSTEM_PRODUCER};
use crate::context::Context;
use crate::derived::{Derived, DerivedError, DerivedOpen};
use crate::log::memory::MemoryLog;
use crate::log::segment::{Recovery, SegmentLog, DEFAULT_SEGMENT_BYTES};
use crate::log::{encode_record, Head, LogEngine, LogError, LogReader, Visit};
use crate::record::{to_hex, Body, Envelope, Record, StoredRecord, FORMAT_VERSION, ZERO_HASH};
use crate::sequencer::{
    run_projector, Ack, AppendError, Clock, Progress, Submission, SystemClock, Writer,
};

/// How a ledger is opened.
#[derive(Clone)]
pub struct Options {
    /// Preallocated size of each segment file.
    pub segment_bytes: u64,
    /// Most commands in one group commit.
    pub max_batch: usize,
    /// Commands that may wait for the writer before producers block.
    pub queue_capacity: usize,
    /// Id written into the genesis record of a new ledger (generated if `None`).
    pub ledger_id: Option<String>,
    /// Time of the genesis record of a new ledger (wall clock if `None`).
    pub genesis_at_ms: Option<u64>,
    /// Where time comes from for commands that do not carry their own.
    pub clock: Arc<dyn Clock>,
    /// Rule text installed right after the genesis record of a new ledger
    /// (`None`: none; decisions are then rejected until rules are installed).
    pub initial_rules: Option<String>,
    /// Workflow definitions (TOML text) installed after the rules in a new
    /// ledger (default: the shipped `flash-sale-preparation` and
    /// `supplier-delay-response`).
    pub initial_workflows: Vec<String>,
    /// Append clock records when a deferral or expiry comes due with nothing else
    /// arriving. Off for scripted runs, whose time comes from their commands.
    pub auto_clock: bool,
    /// Open for reading only: no writer, no context fold at open (`submit`
    /// answers `Closed`). What `audit`, `log`, `state`, `replay`, `whatif` and
    /// `export` use: they read the log and the derived store, nothing else.
    pub read_only: bool,
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
            initial_rules: Some(crate::rules::DEFAULT_RULES.to_owned()),
            initial_workflows: crate::workflow::SHIPPED.map(str::to_owned).to_vec(),
            auto_clock: true,
            read_only: false,
        }
    }
}

/// What opening a ledger found.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    pub created: bool,
    pub recovery: Recovery,
    pub derived: DerivedOpen,
}

/// Why a ledger could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Derived(#[from] DerivedError),
    #[error("{} is in use by another parley process", .0.display())]
    Locked(PathBuf),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Append(#[from] AppendError),
    #[error("derived store: {0}")]
    DerivedFailed(String),
}

/// A pending acknowledgement.
pub struct Ticket(Receiver<Result<Ack, AppendError>>);

impl Ticket {
    /// Waits until the command is durable (or refused).
    pub fn wait(self) -> Result<Ack, AppendError> {
        self.0.recv().unwrap_or(Err(AppendError::Closed))
    }
}

/// An open ledger.
pub struct Ledger {
    tx: Option<Sender<Submission>>,
    reader: Arc<dyn LogReader>,
    derived: Arc<Derived>,
    durable: Arc<Progress>,
    head: Arc<Mutex<Option<Head>>>,
    applied: Arc<Progress>,
    threads: Vec<JoinHandle<()>>,
    _lock: Option<File>,
}

fn lock_dir(dir: &Path) -> Result<File, LedgerError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LedgerError::Io {
            op: "open",
            path: path.clone(),
            source,
        })?;
    // SAFETY: the fd is open and owned by `file`; flock has no memory effects.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(LedgerError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}

fn new_ledger_id(dir: Option<&Path>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    if let Some(d) = dir {
        h.update(d.as_os_str().as_encoded_bytes());
    }
    format!("ldg-{}", &to_hex(h.finalize().as_bytes())[..16])
}

fn write_genesis(
    engine: &mut dyn LogEngine,
    opts: &Options,
    dir: Option<&Path>,
) -> Result<(), LedgerError> {
    let record = Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq: 1,
            recorded_at_ms: opts.genesis_at_ms.unwrap_or_else(|| opts.clock.now_ms()),
            producer: SYSTEM_PRODUCER.into(),
            idempotency_key: None,
            causation: None,
            correlation: None,
        },
        body: Body::Genesis {
            ledger_id: opts.ledger_id.clone().unwrap_or_else(|| new_ledger_id(dir)),
            format: FORMAT_VERSION,
        },
    };
    let at = record.envelope.recorded_at_ms;
    let enc = encode_record(&record, &ZERO_HASH).map_err(LogError::from)?;
    let mut batch = vec![enc];
    let mut bodies = Vec::new();
    if let Some(text) = &opts.initial_rules {
        crate::rules::RuleSet::parse(text)
            .map_err(|e| LedgerError::DerivedFailed(format!("initial rules: {e}")))?;
        bodies.push(Body::RulesInstalled { text: text.clone() });
    }
    for text in &opts.initial_workflows {
        crate::workflow::Definition::parse(text)
            .map_err(|e| LedgerError::DerivedFailed(format!("initial workflow: {e}")))?;
        bodies.push(Body::WorkflowDefined { text: text.clone() });
    }
    for (seq, body) in (2..).zip(bodies) {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq,
                recorded_at_ms: at,
                producer: SYSTEM_PRODUCER.into(),
                idempotency_key: None,
                causation: Some(1),
                correlation: None,
            },
            body,
        };
        let prev = batch.last().map_or(ZERO_HASH, |e| e.hash);
        batch.push(encode_record(&record, &prev).map_err(LogError::from)?);
    }
    engine.append(&batch)?;
    Ok(())
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it if the directory has no log.
    /// Recovers a torn tail, catches the derived store up (rebuilding it when it is
    /// missing, damaged or from elsewhere), then starts the writer.
    pub fn open(dir: &Path, opts: Options) -> Result<(Ledger, OpenReport), LedgerError> {
        Ledger::open_inner(dir, opts, false)
    }

    /// Opens the ledger after deleting its derived store, which is rebuilt from
    /// the log from zero (`parley rebuild`).
    pub fn open_rebuilding(dir: &Path, opts: Options) -> Result<(Ledger, OpenReport), LedgerError> {
        Ledger::open_inner(dir, opts, true)
    }

    fn open_inner(
        dir: &Path,
        opts: Options,
        rebuild: bool,
    ) -> Result<(Ledger, OpenReport), LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
            op: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        if rebuild {
            remove_derived(dir)?;
        }
        let (mut engine, recovery) = SegmentLog::open(&dir.join("log"), opts.segment_bytes)?;
        let (derived, rebuilt) = Derived::open(&dir.join("derived"))?;
        let mut report = OpenReport {
            created: engine.head().is_none(),
            recovery,
            derived: DerivedOpen::default(),
        };
        if report.created {
            write_genesis(&mut engine, &opts, Some(dir))?;
        }
        let mut ledger = Ledger::start(Box::new(engine), derived, &opts, &mut report)?;
        if let Some(reason) = rebuilt {
            report.derived.rebuilt_because = Some(reason);
        }
        ledger._lock = Some(lock);
        Ok((ledger, report))
    }

    /// A ledger that lives in memory only (tests, what-if).
    pub fn in_memory(opts: Options) -> Result<Ledger, LedgerError> {
        let mut engine = MemoryLog::new();
        write_genesis(&mut engine, &opts, None)?;
        let mut report = OpenReport::default();
        Ledger::start(Box::new(engine), Derived::temporary()?, &opts, &mut report)
    }

    fn start(
        engine: Box<dyn LogEngine>,
        derived: Derived,
        opts: &Options,
        report: &mut OpenReport,
    ) -> Result<Ledger, LedgerError> {
        let reader = engine.reader();
        let head = engine.head();
        report.derived = derived.catch_up(reader.as_ref(), head)?;
        let head_seq = head.map_or(0, |h| h.seq);
        let derived = Arc::new(derived);
        let durable = Arc::new(Progress::default());
        durable.publish(head_seq);
        let applied = Arc::new(Progress::default());
        applied.publish(head_seq);
        let head = Arc::new(Mutex::new(head));
        if opts.read_only {
            return Ok(Ledger {
                tx: None,
                reader,
                derived,
                durable,
                head,
                applied,
                threads: Vec::new(),
                _lock: None,
            });
        }
        // The writer's context: the resolver's input, folded once here.
        let mut ctx = Context::default();
        reader.scan(1, head_seq, &mut |r| {
            ctx.apply(&r);
            Ok(())
        })?;
        let (tx, rx) = bounded::<Submission>(opts.queue_capacity.max(1));
        // The projector queue holds whole batches: this bounds memory held for it.
        let (ptx, prx) = bounded(64);
        let writer = Writer::new(
            engine,
            Arc::clone(&opts.clock),
            Arc::clone(&derived),
            Arc::clone(&durable),
            Arc::clone(&head),
            Arc::clone(&applied),
            ptx,
            opts.max_batch,
            ctx,
            opts.auto_clock,
        );
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|source| LedgerError::Io {
                    op: "spawn thread",
                    path: PathBuf::from(name),
                    source,
                })
        };
        let projector = {
            let derived = Arc::clone(&derived);
            let applied = Arc::clone(&applied);
            spawn(
                "parley-projector",
                Box::new(move || run_projector(prx, derived, applied)),
            )?
        };
        let writer = spawn("parley-writer", Box::new(move || writer.run(rx)))?;
        Ok(Ledger {
            tx: Some(tx),
            reader,
            derived,
            durable,
            head,
            applied,
            threads: vec![writer, projector],
            _lock: None,
        })
    }

    /// Hands a command to the sequencer; blocks while the queue is full.
    pub fn submit(&self, command: Command) -> Result<Ticket, AppendError> {
        command.validate().map_err(AppendError::Invalid)?;
        let (reply, rx) = bounded(1);
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(Submission { command, reply })
            .map_err(|_| AppendError::Closed)?;
        Ok(Ticket(rx))
    }

    /// Appends a command and waits until it is durable.
    pub fn append(&self, command: Command) -> Result<Ack, AppendError> {
        self.submit(command)?.wait()
    }

    /// The last durable record.
    pub fn head(&self) -> Option<Head> {
        self.head.lock().ok().and_then(|h| *h)
    }

    /// Visits durable records `from..=to` (clamped to the head) in order.
    pub fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        let to = to.min(self.durable.get());
        if from > to {
            return Ok(());
        }
        self.reader.scan(from, to, visit)
    }

    /// The records at `seqs` (ascending); each must be durable.
    pub fn read(&self, seqs: &[u64]) -> Result<Vec<StoredRecord>, LogError> {
        let head = self.durable.get();
        if let Some(&beyond) = seqs.iter().find(|s| **s > head || **s == 0) {
            return Err(LogError::Layout(format!(
                "seq {beyond} is beyond the head (seq {head})"
            )));
        }
        self.reader.read_indexed(seqs, self.derived.as_ref())
    }

    /// The shared context as of `seq` (clamped to the head): a fold of the log.
    pub fn context_at(&self, seq: u64) -> Result<Context, LogError> {
        let mut ctx = Context::default();
        self.scan(1, seq, &mut |r| {
            ctx.apply(&r);
            Ok(())
        })?;
        Ok(ctx)
    }

    /// The derived store, once it reflects every durable record.
    pub fn derived(&self) -> Result<&Derived, LedgerError> {
        self.applied
            .wait_for(self.durable.get())
            .map_err(LedgerError::DerivedFailed)?;
        Ok(&self.derived)
    }

    /// `None` when the derived store equals a fresh fold of the log.
    pub fn derived_differences(&self) -> Result<Option<String>, LedgerError> {
        let head = self.durable.get();
        let derived = self.derived()?;
        Ok(derived.differences(self.reader.as_ref(), head)?)
    }

    /// Stops the writer and projector after they finish what they hold.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LedgerError> {
        self.tx = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a ledger thread panicked");
            }
        }
        self.derived.flush()?;
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

fn remove_derived(dir: &Path) -> Result<bool, LedgerError> {
    let path = dir.join("derived");
    match std::fs::remove_dir_all(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(LedgerError::Io {
            op: "remove",
            path,
            source,
        }),
    }
}
