//! A simulated node, after TigerBeetle's VOPR: one seed drives a random mix
//! of commands (prices, promotions, stock, facts with payloads, workflow
//! runs and steps, people settling escalations, retries of earlier keys),
//! clock jumps (forward up to three days, backwards a little: refused),
//! power cuts at random points and planted disk faults (`parley::log::trace`),
//! through the real sequencer, resolver, projector and recovery. A power
//! cut rebuilds a state the crash may leave (`parley::log::crash_states`)
//! and reopens the ledger there.
//!
//! After every crash and at the end it checks: every acknowledged record is
//! present and identical and nothing else was invented (`traced::check`);
//! the chain verifies; replay is 0 divergent (every decision reproduced);
//! the live context (the projector's, which the server reads) equals the
//! replayed one and passes the context's invariant checks (intentions,
//! escalations, store, workflows); a retried key answers with its first seq.
//!
//! The seed alone fixes the run (periodic evidence is off: it follows the
//! wall clock). `PARLEY_SIM_SEED=S` runs one seed; `PARLEY_SIM_SECONDS=N`
//! runs seeds from `PARLEY_SIM_FROM` (default 1) for N seconds and prints
//! seeds per second; a failure prints the seed that reproduces it.
//! `tools/sim --seconds N` runs it on a release build.

// The long run is bounded by the wall clock (not a timed assertion).
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::traced::{self, T0_MS};
use parley::ledger::{Ledger, Options};
use parley::log::crash_states::{materialize, points, Crash};
use parley::log::trace::{Fault, FaultKind, OpKind, Target, TraceDisk};
use parley::record::Body;
use parley::replay::Replayer;
use parley::{AppendError, Command};

/// Steps one seed runs at most.
const STEPS_MAX: u64 = 160;
/// Largest forward clock jump, and largest step back.
const JUMP_MS_MAX: u64 = 3 * 86_400_000;
const BACK_MS_MAX: u64 = 60_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one seed did.
#[derive(Default, Debug, PartialEq, Eq)]
struct Stats {
    /// The head the run ended at, and its hash.
    head: Option<(u64, [u8; 32])>,
    commands: u64,
    acked: u64,
    crashes: u64,
    faults: u64,
    decisions: u64,
}

struct Sim {
    rng: Rng,
    root: tempfile::TempDir,
    epoch: u32,
    disk: TraceDisk,
    ledger: Option<Ledger>,
    at_ms: u64,
    /// Every seq up to this was acknowledged.
    acked: u64,
    escalated: Vec<u64>,
    /// Commands acknowledged, with their key's first seq (for retries).
    sent: Vec<(String, u64)>,
    runs: u64,
    stats: Stats,
}

fn opts(disk: &TraceDisk) -> Options {
    let mut o = traced::opts(Some(disk));
    o.serve = true;
    o.evidence_every = std::time::Duration::from_secs(86_400);
    o.snapshot_every = 37;
    o
}

impl Sim {
    fn dir(&self) -> PathBuf {
        self.root
            .path()
            .join(format!("e{}", self.epoch))
            .join("ledger")
    }

    /// A fresh disk, with a fault planted on one run in three.
    fn new_disk(&mut self) -> TraceDisk {
        let disk = TraceDisk::new();
        if self.rng.below(3) != 0 {
            return disk;
        }
        let (on, kind) = match self.rng.below(5) {
            0 => (OpKind::Sync, FaultKind::Eio),
            1 => (OpKind::Write, FaultKind::Eio),
            2 => (OpKind::Write, FaultKind::ShortWrite),
            3 => (OpKind::Allocate, FaultKind::NoSpace),
            _ => (OpKind::Create, FaultKind::NoSpace),
        };
        disk.plant(Fault {
            on,
            target: Target::Segments,
            nth: 1 + self.rng.below(12),
            kind,
        })
    }

    fn open(&mut self) -> Result<(), String> {
        self.disk = self.new_disk();
        let log = self.dir().join("log");
        if log.is_dir() {
            self.disk.adopt(&log).map_err(|e| e.to_string())?;
        }
        match Ledger::open(&self.dir(), opts(&self.disk)) {
            Ok((l, _)) => {
                self.ledger = Some(l);
                Ok(())
            }
            // A fault planted on the open's own writes: power cut, again.
            Err(e) if self.disk.ops().is_some_and(|o| o.iter().any(is_failure)) => {
                self.stats.faults += 1;
                Err(format!("fault at open: {e}"))
            }
            Err(e) => Err(format!("open: {e}")),
        }
    }
}

fn is_failure(op: &parley::log::trace::Op) -> bool {
    matches!(op, parley::log::trace::Op::Failed { .. })
}

fn json(text: &str) -> Command {
    Command::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

impl Sim {
    fn command(&mut self) -> String {
        let at = self.at_ms;
        let n = self.stats.commands;
        let key = format!("k{n}");
        let sku = 1 + self.rng.below(3);
        let text = match self.rng.below(9) {
            0 | 1 => format!(
                r#"{{"producer":"pricing","at_ms":{at},"idempotency_key":"{key}","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-{sku}","price_minor":{}}},"reasoning":"sim","impact":{{"revenue_minor":{},"margin_minor":{}}},"objective":"sales-growth"}}}}"#,
                1_000 + self.rng.below(8_000),
                self.rng.below(1_400_000) as i64 - 900_000,
                self.rng.below(200_000) as i64 - 100_000
            ),
            2 => {
                let start = at + self.rng.below(JUMP_MS_MAX);
                format!(
                    r#"{{"producer":"marketing","at_ms":{at},"idempotency_key":"{key}","kind":"intend","intention":{{"action":{{"type":"launch_promotion","target":{{"skus":["SKU-{sku}"]}},"discount_bp":{},"starts_at_ms":{start},"ends_at_ms":{}}},"reasoning":"sim","impact":{{"revenue_minor":5000,"margin_minor":-2000}},"objective":"sales-growth"}}}}"#,
                    100 + self.rng.below(3_000),
                    start + 1 + self.rng.below(JUMP_MS_MAX)
                )
            }
            3 | 4 => format!(
                r#"{{"producer":"inventory","at_ms":{at},"idempotency_key":"{key}","kind":"stock_changed","sku":"SKU-{sku}","stock":{}}}"#,
                self.rng.below(200)
            ),
            5 => format!(
                r#"{{"producer":"inventory","at_ms":{at},"idempotency_key":"{key}","kind":"fact","entity":"shelf:S{sku}","attribute":"note","value":"{}"}}"#,
                "p".repeat(self.rng.below(3_000) as usize)
            ),
            6 => {
                self.runs += 1;
                format!(
                    r#"{{"producer":"marketing","at_ms":{at},"idempotency_key":"{key}","kind":"workflow_started","run":"flash-{}","workflow":"flash-sale-preparation","version":1,"params":{{"skus":"SKU-{sku}"}}}}"#,
                    self.runs
                )
            }
            7 => {
                let (step, owner) = [
                    ("verify-inventory", "inventory"),
                    ("update-prices", "pricing"),
                    ("prepare-support-answers", "customer-service"),
                    ("queue-marketing-emails", "marketing"),
                ][self.rng.below(4) as usize];
                format!(
                    r#"{{"producer":"{owner}","at_ms":{at},"idempotency_key":"{key}","kind":"step_completed","run":"flash-{}","step":"{step}"}}"#,
                    1 + self.rng.below(self.runs.max(1))
                )
            }
            _ => match self
                .escalated
                .get(self.rng.below(self.escalated.len() as u64 + 1) as usize)
            {
                Some(seq) => format!(
                    r#"{{"producer":"maya","at_ms":{at},"idempotency_key":"{key}","kind":"human_resolution","intention":{seq},"option":{},"rationale":"sim"}}"#,
                    self.rng.below(3)
                ),
                None => format!(
                    r#"{{"producer":"inventory","at_ms":{at},"idempotency_key":"{key}","kind":"stock_changed","sku":"SKU-1","stock":7}}"#
                ),
            },
        };
        text
    }

    /// One step: a command, a retry, a clock jump or a power cut.
    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(20) {
            0..=13 => {
                let c = self.command();
                self.submit(&c, None)
            }
            14 if !self.sent.is_empty() => {
                let (text, seq) =
                    self.sent[self.rng.below(self.sent.len() as u64) as usize].clone();
                self.submit(&text, Some(seq))
            }
            15 | 16 => {
                self.at_ms += 1 + self.rng.below(JUMP_MS_MAX);
                Ok(())
            }
            17 => {
                self.at_ms -= self.rng.below(BACK_MS_MAX);
                Ok(())
            }
            _ => self.crash(),
        }
    }

    fn submit(&mut self, text: &str, retry_of: Option<u64>) -> Result<(), String> {
        let c = json(text);
        self.stats.commands += 1;
        let Some(ledger) = &self.ledger else {
            return self.crash();
        };
        match ledger.append(c) {
            Ok(ack) => {
                if let Some(first) = retry_of.filter(|s| *s <= self.acked) {
                    if !ack.duplicate || ack.seq != first {
                        return Err(format!(
                            "a retried key answered seq {} (duplicate: {}), its first was seq {first}",
                            ack.seq, ack.duplicate
                        ));
                    }
                }
                let last = ack.follow_ups.iter().map(|f| f.0).max().unwrap_or(0);
                self.acked = self.acked.max(ack.seq).max(last);
                self.disk.ack(self.acked);
                self.stats.acked += 1;
                for (seq, body) in ack.timers.iter().chain(&ack.follow_ups) {
                    if let Body::Decision { decision } = body {
                        self.stats.decisions += 1;
                        if decision.outcome.name() == "escalated" {
                            self.escalated.push(decision.intention);
                        }
                        let _ = seq;
                    }
                }
                if !ack.duplicate {
                    self.sent.push((text.to_owned(), ack.seq));
                }
                Ok(())
            }
            Err(AppendError::OutcomeUnknown(_) | AppendError::Failed(_) | AppendError::Closed) => {
                self.stats.faults += 1;
                self.crash()
            }
            Err(_) => Ok(()),
        }
    }
}

impl Sim {
    /// A power cut now: the ledger stops where it is; a state the cut may
    /// leave is rebuilt in the next epoch's directory, checked and reopened.
    fn crash(&mut self) -> Result<(), String> {
        self.stats.crashes += 1;
        if let Some(l) = &self.ledger {
            self.live_equals_replay(l)?;
        }
        let ops = self.disk.ops().ok_or("the trace overflowed")?;
        let point = *points(&ops).last().ok_or("no crash point")?;
        let before = self.dir();
        // The close after the cut point is not part of the state.
        drop(self.ledger.take());
        let written = if before.join("log").is_dir() {
            traced::hashes(&before)
        } else {
            BTreeMap::new()
        };
        let crash = Crash::Random(self.rng.next());
        let from = before.parent().ok_or("no epoch dir")?.to_path_buf();
        self.epoch += 1;
        let to = self.dir();
        let to_root = to.parent().ok_or("no epoch dir")?;
        materialize(&ops, point, crash, &from, to_root).map_err(|e| e.to_string())?;
        // Acknowledged in this epoch (the trace) or any before it.
        let acked = point.acked.max(self.acked);
        let r = traced::check(&to, acked, &written)
            .map_err(|why| format!("after a power cut ({crash:?}): {why}"))?;
        // What survived is now the ledger; unacknowledged records may be gone.
        self.escalated.retain(|s| *s <= r.head);
        self.sent.retain(|(_, s)| *s <= r.head);
        debug_assert!(r.head >= self.acked, "check() holds every acknowledged seq");
        // Faults may fire while opening, too: each is another cut.
        for _ in 0..8 {
            match self.open() {
                Ok(()) => return Ok(()),
                // Nothing was acknowledged by a failed open: again, on a
                // fresh disk.
                Err(e) if e.starts_with("fault at open") => continue,
                Err(e) => return Err(e),
            }
        }
        Err("the ledger did not open in 8 tries".into())
    }

    /// The projector's context (what readers see) equals a replay of the
    /// log to the same seq, and passes the context's invariant checks.
    fn live_equals_replay(&self, ledger: &Ledger) -> Result<(), String> {
        let Some(head) = ledger.head().map(|h| h.seq) else {
            return Ok(());
        };
        if ledger.failure().is_some() {
            return Ok(());
        }
        ledger.wait_applied(head).map_err(|e| e.to_string())?;
        let live = ledger.published().ok_or("no published context")?;
        let live = live.read().map_err(|_| "poisoned")?;
        live.check().map_err(|v| format!("live context: {v}"))?;
        let replayed = replay_to(&self.dir(), live.seq)?;
        replayed
            .check()
            .map_err(|v| format!("replayed context: {v}"))?;
        if replayed.state_hash() != live.state_hash() {
            return Err(format!(
                "the live context at seq {} differs from the replayed one",
                live.seq
            ));
        }
        Ok(())
    }
}

fn replay_to(dir: &Path, to: u64) -> Result<parley::context::Context, String> {
    use parley::reader::LedgerRead;
    let (view, _) = parley::reader::LogView::open(dir).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    view.scan(1, to, &mut |r| {
        records.push(r);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let mut replayer = Replayer::default();
    for r in &records {
        replayer
            .feed(r)
            .map_err(|d| format!("replay diverges: {d}"))?;
    }
    Ok(replayer.context().clone())
}

/// Runs one seed to the end; the error names what broke.
fn run_seed(seed: u64) -> Result<Stats, String> {
    let mut sim = Sim {
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        root: tempfile::tempdir().map_err(|e| e.to_string())?,
        epoch: 0,
        disk: TraceDisk::new(),
        ledger: None,
        at_ms: T0_MS + 1_000,
        acked: 0,
        escalated: Vec::new(),
        sent: Vec::new(),
        runs: 0,
        stats: Stats::default(),
    };
    std::fs::create_dir_all(sim.dir().parent().ok_or("root")?).map_err(|e| e.to_string())?;
    sim.disk = TraceDisk::new();
    let (ledger, _) = Ledger::open(&sim.dir(), opts(&sim.disk)).map_err(|e| e.to_string())?;
    for c in traced::store() {
        let ack = ledger.append(c).map_err(|e| e.to_string())?;
        sim.acked = ack.seq;
        sim.disk.ack(ack.seq);
    }
    sim.ledger = Some(ledger);
    let steps = 40 + sim.rng.below(STEPS_MAX - 40);
    for _ in 0..steps {
        sim.step()?;
    }
    let ledger = sim.ledger.take().ok_or("no ledger at the end")?;
    sim.live_equals_replay(&ledger)?;
    ledger.close().map_err(|e| e.to_string())?;
    let dir = sim.dir();
    let written = traced::hashes(&dir);
    traced::check(&dir, sim.acked, &written)?;
    sim.stats.head = written.iter().next_back().map(|(s, h)| (*s, *h));
    Ok(sim.stats)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn a_seed_reproduces_its_run_exactly() {
    let first = run_seed(5).unwrap();
    let again = run_seed(5).unwrap();
    assert_eq!(first, again, "the same seed, the same run");
    assert!(first.crashes > 0, "{first:?}");
}

#[test]
fn a_fixed_set_of_seeds_keeps_every_invariant() {
    if let Some(seed) = env_u64("PARLEY_SIM_SEED") {
        let stats = run_seed(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("seed {seed}: {stats:?}");
        return;
    }
    if let Some(seconds) = env_u64("PARLEY_SIM_SECONDS") {
        return run_for(seconds);
    }
    let mut total = Stats::default();
    for seed in 1..=env_u64("PARLEY_SIM_SEEDS").unwrap_or(12) {
        let s = run_seed(seed).unwrap_or_else(|e| {
            panic!("seed {seed} fails (PARLEY_SIM_SEED={seed} tools/sim reproduces it): {e}")
        });
        total.commands += s.commands;
        total.acked += s.acked;
        total.crashes += s.crashes;
        total.faults += s.faults;
        total.decisions += s.decisions;
    }
    println!("simulated: {total:?}");
    assert!(
        total.crashes > 0 && total.faults > 0 && total.decisions > 0,
        "{total:?}"
    );
}

/// Seeds from `PARLEY_SIM_FROM` for `seconds`; prints the rate and stops
/// at the first failing seed.
fn run_for(seconds: u64) {
    let started = std::time::Instant::now();
    let mut seed = env_u64("PARLEY_SIM_FROM").unwrap_or(1);
    let mut total = Stats::default();
    let mut seeds = 0u64;
    let mut last_report = 0;
    while started.elapsed().as_secs() < seconds {
        match run_seed(seed) {
            Ok(s) => {
                total.commands += s.commands;
                total.crashes += s.crashes;
                total.faults += s.faults;
                total.decisions += s.decisions;
            }
            Err(e) => panic!(
                "seed {seed} fails after {seeds} passing seeds and {} s (PARLEY_SIM_SEED={seed} tools/sim reproduces it): {e}",
                started.elapsed().as_secs()
            ),
        }
        seeds += 1;
        seed += 1;
        let elapsed = started.elapsed().as_secs();
        if elapsed >= last_report + 60 {
            last_report = elapsed;
            println!("{elapsed} s: {seeds} seeds, next seed {seed}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sim: {seeds} seeds in {secs:.0} s = {:.2} seeds/s, 0 failures; {} commands, {} decisions, {} power cuts, {} disk faults",
        seeds as f64 / secs,
        total.commands,
        total.decisions,
        total.crashes,
        total.faults
    );
}
