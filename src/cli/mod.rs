//! The `parley` command line: the binary's edge, where errors get context.

mod escalations;
mod inspect;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::command::{Command, MAX_COMMAND_BYTES};
use crate::export::{export, import, ImportError};
use crate::ledger::{Ledger, OpenReport, Options, Ticket};
use crate::record::to_hex;
use crate::sequencer::AppendError;
use crate::verify::verify_dir;

/// Commands waiting for their acknowledgement in `parley run`.
const RUN_IN_FLIGHT: usize = 4096;

#[derive(Parser)]
#[command(name = "parley", version, about = "A coordination ledger for the AI agents that run an online store", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the seed's scenarios through a fresh ledger and compare them with the same agents uncoordinated.
    Demo {
        /// Where to write the ledger (default: a new directory under the system temp dir).
        #[arg(long)]
        data: Option<PathBuf>,
        /// One scenario, or `all`: conflict, redundancy, sequencing, price-war, viral, supply-delay, flash-sale.
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Seed of the simulated agents' timing and of the shoppers.
        #[arg(long, default_value_t = crate::demo::DEFAULT_SEED)]
        seed: u64,
        /// Print the figures as JSON instead of the timeline.
        #[arg(long)]
        json: bool,
    },
    /// Generate a large realistic ledger (many skus, agents, conflicts, escalations, workflows).
    Simulate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop once the log holds at least this many records.
        #[arg(long)]
        records: u64,
        #[arg(long, default_value_t = 1000)]
        skus: usize,
        #[arg(long)]
        json: bool,
    },
    /// Append commands from a JSON Lines file (or `-` for stdin); print one JSON result per line.
    Run {
        #[arg(long)]
        data: PathBuf,
        /// File of commands, one JSON object per line; `-` reads stdin.
        file: PathBuf,
    },
    /// Recompute the whole hash chain (read-only). Exit 1 on any damage.
    Verify {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also check that the derived store (sled) agrees with the log.
        #[arg(long)]
        derived: bool,
    },
    /// Write the log as JSON Lines (one record per line, with hashes).
    Export {
        #[arg(long)]
        data: PathBuf,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rebuild a ledger in a new directory from an export, only if every hash verifies.
    Import {
        #[arg(long)]
        data: PathBuf,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete the derived store (sled) and rebuild it from the log.
    Rebuild {
        #[arg(long)]
        data: PathBuf,
    },
    /// Re-derive every decision from the log and compare with the recorded ones. Exit 1 on a divergence.
    Replay {
        #[arg(long)]
        data: PathBuf,
        /// Stop at this seq.
        #[arg(long)]
        until: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The shared context as it was at a seq or a time, whole or for one entity (sku:SKU-1, order:O-9, customer:C-3).
    State {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        at: Option<u64>,
        /// An RFC 3339 time, e.g. 2025-11-26T09:00:00Z.
        #[arg(long)]
        at_time: Option<String>,
        entity: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every change of an entity's field, newest first, with the intention, decision, trace, resolution and losers.
    Audit {
        #[arg(long)]
        data: PathBuf,
        /// e.g. sku:SKU-1
        entity: String,
        /// e.g. price (default: every field)
        field: Option<String>,
        #[arg(long)]
        json: bool,
        /// `dot`: the causal graph for Graphviz.
        #[arg(long)]
        format: Option<String>,
    },
    /// Replay the log under other rules in memory and list every decision that would differ. Writes nothing.
    Whatif {
        #[arg(long)]
        data: PathBuf,
        /// The alternative rule set (TOML).
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Read and filter the log.
    Log {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// A record kind, e.g. decision, intend, catalog.
        #[arg(long)]
        kind: Option<String>,
        /// An entity, e.g. sku:SKU-1 (uses the entity index).
        #[arg(long)]
        entity: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List escalations (oldest first) with their options, the agents' reasoning and how each was closed.
    Escalations {
        #[arg(long)]
        data: PathBuf,
        /// Only escalations still waiting for a human.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// Settle an open escalation as a registered human: choose one of its options.
    Resolve {
        #[arg(long)]
        data: PathBuf,
        /// The escalation's id (the escalated intention's seq, as `parley escalations` lists it).
        escalation: u64,
        /// The option's number, from 0.
        #[arg(long)]
        option: u32,
        /// The human resolving (must be registered as a human in the ledger).
        #[arg(long = "as")]
        human: String,
        /// The rationale, recorded with the resolution.
        #[arg(long)]
        why: String,
        /// The resolution's time (RFC 3339) for ledgers on a scripted time line, such as the demo's (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schemas of the public formats, or write them into a directory.
    Schema {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`parley log | head`)
    // would panic. Restore the default: the process ends quietly, as Unix tools
    // do. Nothing is lost: a result is printed only after its record is durable.
    // SAFETY: setting a signal disposition to SIG_DFL before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let level = match std::env::var("PARLEY_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parley: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Demo {
            data,
            scenario,
            seed,
            json,
        } => crate::demo::run_cli(data, &scenario, seed, json),
        Cmd::Simulate {
            data,
            seed,
            records,
            skus,
            json,
        } => inspect::simulate(&data, seed, records, skus, json),
        Cmd::Run { data, file } => run(&data, &file),
        Cmd::Verify {
            data,
            json,
            derived,
        } => verify(&data, json, derived),
        Cmd::Export { data, out } => {
            let ledger = open(&data)?;
            let count = match &out {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = export(&ledger, &mut w)?;
                    w.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("write {}", path.display()))?;
                    n
                }
                None => export(&ledger, &mut std::io::stdout().lock())?,
            };
            ledger.close()?;
            let to = out.map_or("stdout".into(), |p| p.display().to_string());
            eprintln!("exported {count} records to {to}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import { data, file, json } => match import(&data, &file, Options::default()) {
            Ok((ledger, count)) => {
                let head = ledger.head().map(|h| (h.seq, to_hex(&h.hash)));
                ledger.close()?;
                let (seq, hash) = head.unwrap_or_default();
                if json {
                    let out = serde_json::json!({"ok": true, "records": count, "head_seq": seq, "head_hash": hash});
                    println!("{out}");
                } else {
                    println!(
                        "imported {count} records into {}; head seq {seq}, head hash {hash}",
                        data.display()
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ImportError::BadRecord { seq, reason }) => {
                if json {
                    let out =
                        serde_json::json!({"ok": false, "first_bad_seq": seq, "reason": reason});
                    println!("{out}");
                } else {
                    eprintln!("parley: import refused: record seq {seq} does not verify: {reason}");
                }
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e).context("import"),
        },
        Cmd::Rebuild { data } => {
            ensure_ledger(&data)?;
            let (ledger, _) = Ledger::open_rebuilding(&data, Options::default())
                .with_context(|| format!("open {}", data.display()))?;
            let head = ledger.head().map_or(0, |h| h.seq);
            let diff = ledger.derived_differences()?;
            ledger.close()?;
            if let Some(d) = diff {
                bail!("rebuilt store disagrees with the log: {d}");
            }
            println!(
                "rebuilt the derived store of {} from {head} records",
                data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Replay { data, until, json } => inspect::replay(&open(&data)?, until, json),
        Cmd::State {
            data,
            at,
            at_time,
            entity,
            json,
        } => inspect::state(
            &open(&data)?,
            at,
            at_time.as_deref(),
            entity.as_deref(),
            json,
        ),
        Cmd::Audit {
            data,
            entity,
            field,
            json,
            format,
        } => inspect::audit_cmd(
            &open(&data)?,
            &entity,
            field.as_deref(),
            json,
            format.as_deref(),
        ),
        Cmd::Whatif {
            data,
            rules,
            from,
            to,
            json,
        } => inspect::whatif(&open(&data)?, &rules, from, to, json),
        Cmd::Log {
            data,
            from,
            kind,
            entity,
            json,
        } => inspect::log(
            &open(&data)?,
            from,
            kind.as_deref(),
            entity.as_deref(),
            json,
        ),
        Cmd::Escalations {
            data,
            open: only_open,
            json,
        } => escalations::list(&open(&data)?, only_open, json),
        Cmd::Resolve {
            data,
            escalation,
            option,
            human,
            why,
            at,
            json,
        } => {
            ensure_ledger(&data)?;
            escalations::resolve(&data, escalation, option, &human, &why, at.as_deref(), json)
        }
        Cmd::Schema { out } => {
            for (name, text) in crate::schema::all() {
                match &out {
                    Some(dir) => {
                        let path = dir.join(name);
                        std::fs::write(&path, text)
                            .with_context(|| format!("write {}", path.display()))?;
                        eprintln!("wrote {}", path.display());
                    }
                    None => print!("{text}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ensure_ledger(data: &Path) -> Result<()> {
    if !data.join("log").is_dir() {
        bail!("{} holds no ledger (no log/ directory)", data.display());
    }
    Ok(())
}

/// Opens an existing ledger and tells the operator what recovery did.
/// Opens an existing ledger for reading only (no writer, no context fold).
fn open(data: &Path) -> Result<Ledger> {
    ensure_ledger(data)?;
    let opts = Options {
        read_only: true,
        ..Options::default()
    };
    let (ledger, report) =
        Ledger::open(data, opts).with_context(|| format!("open {}", data.display()))?;
    tell_recovery(&report);
    Ok(ledger)
}

fn tell_recovery(report: &OpenReport) {
    if let Some(t) = &report.recovery.torn_tail {
        eprintln!(
            "parley: recovered: cut off a torn final batch at seq {} ({} bytes at offset {} of {}; it was never acknowledged)",
            t.seq,
            t.bytes,
            t.offset,
            t.segment.display()
        );
    }
    if let Some(why) = &report.derived.rebuilt_because {
        eprintln!("parley: rebuilt the derived store from the log: {why}");
    }
}

fn verify(data: &Path, json: bool, derived: bool) -> Result<ExitCode> {
    let mut report = match verify_dir(data) {
        Ok(r) => r,
        Err(e) if json => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "reason": e.to_string()})
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e).context("verify"),
    };
    if report.ok && derived {
        let ledger = open(data)?;
        if let Some(d) = ledger.derived_differences()? {
            report.ok = false;
            report.reason = Some(format!("derived store disagrees with the log: {d}"));
        }
        ledger.close()?;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.ok {
        println!(
            "ok: {} records, head seq {}, head hash {}",
            report.records.unwrap_or(0),
            report.head_seq.unwrap_or(0),
            report.head_hash.as_deref().unwrap_or("")
        );
    } else {
        println!(
            "DAMAGED at seq {}: {}",
            report.first_bad_seq.map_or("-".into(), |s| s.to_string()),
            report.reason.as_deref().unwrap_or("")
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line of `parley run` output.
#[derive(Serialize)]
struct RunResult {
    line: u64,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

enum Pending {
    Ticket(u64, Ticket),
    Failed(u64, String),
}

fn result_of(pending: Pending) -> RunResult {
    let (line, outcome) = match pending {
        Pending::Ticket(line, t) => (line, t.wait().map_err(|e: AppendError| e.to_string())),
        Pending::Failed(line, e) => (line, Err(e)),
    };
    match outcome {
        Ok(ack) => RunResult {
            line,
            ok: true,
            seq: Some(ack.seq),
            hash: Some(to_hex(&ack.hash)),
            recorded_at_ms: Some(ack.recorded_at_ms),
            duplicate: ack.duplicate,
            decision: ack.decision.map(|(seq, d)| {
                let mut v = serde_json::to_value(&d).unwrap_or_default();
                if let Some(map) = v.as_object_mut() {
                    map.insert("seq".into(), seq.into());
                }
                v
            }),
            error: None,
        },
        Err(error) => RunResult {
            line,
            ok: false,
            seq: None,
            hash: None,
            recorded_at_ms: None,
            duplicate: false,
            decision: None,
            error: Some(error),
        },
    }
}

/// Reads one line of at most `MAX_COMMAND_BYTES`; `Ok(None)` at end of input.
fn read_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
) -> Result<Option<std::result::Result<(), String>>> {
    buf.clear();
    let limit = MAX_COMMAND_BYTES as u64 + 1;
    let n = (&mut *input).take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() as u64 == limit {
        // Skip the rest of the oversized line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = (&mut *input).take(1 << 16).read_until(b'\n', &mut rest)?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Err(format!(
            "line is longer than {MAX_COMMAND_BYTES} bytes"
        ))));
    }
    Ok(Some(Ok(())))
}

fn run(data: &Path, file: &Path) -> Result<ExitCode> {
    let mut input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    // A scripted run that creates the ledger starts its time line at the script's
    // first command (if it gives one), so the script's own times are never "backwards".
    let mut first = Vec::new();
    let mut first_read = None;
    let mut opts = Options::default();
    if !data.join("log").exists() {
        first_read = read_line(&mut *input, &mut first)?;
        if let Some(Ok(())) = first_read {
            let text = String::from_utf8_lossy(&first);
            if let Ok(cmd) = Command::parse(text.trim()) {
                opts.genesis_at_ms = cmd.envelope.at_ms;
            }
        }
    }
    if first_read.is_none() {
        first_read = read_line(&mut *input, &mut first)?;
    }
    // Scripted time (the first command carries `at_ms`): clock records would
    // inject the wall clock into a script's time line, so they stay off.
    if let Some(Ok(())) = &first_read {
        let text = String::from_utf8_lossy(&first);
        if Command::parse(text.trim()).is_ok_and(|c| c.envelope.at_ms.is_some()) {
            opts.auto_clock = false;
        }
    }
    let (ledger, report) =
        Ledger::open(data, opts).with_context(|| format!("open {}", data.display()))?;
    tell_recovery(&report);
    let (tx, rx) = crossbeam_channel::bounded::<Pending>(RUN_IN_FLIGHT);
    let printer = std::thread::spawn(move || -> Result<u64> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut failures = 0;
        while let Ok(p) = rx.recv() {
            let r = result_of(p);
            failures += u64::from(!r.ok);
            serde_json::to_writer(&mut out, &r)?;
            out.write_all(b"\n")?;
            if rx.is_empty() {
                out.flush()?;
            }
        }
        out.flush()?;
        Ok(failures)
    });
    let mut buf = first;
    let mut pending_first = first_read;
    let mut line_no = 0u64;
    let mut commands = 0u64;
    loop {
        let read = match pending_first.take() {
            Some(r) => r,
            None => match read_line(&mut *input, &mut buf)? {
                Some(r) => r,
                None => break,
            },
        };
        line_no += 1;
        let pending = match read {
            Err(e) => Pending::Failed(line_no, e),
            Ok(()) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match Command::parse(text).map_err(|e| e.to_string()) {
                    Ok(cmd) => match ledger.submit(cmd) {
                        Ok(t) => Pending::Ticket(line_no, t),
                        Err(e) => Pending::Failed(line_no, e.to_string()),
                    },
                    Err(e) => Pending::Failed(line_no, e),
                }
            }
        };
        commands += 1;
        if tx.send(pending).is_err() {
            break; // the printer stopped (stdout closed)
        }
    }
    drop(tx);
    let failures = printer
        .join()
        .map_err(|_| anyhow::anyhow!("the output thread panicked"))??;
    ledger.close()?;
    if failures > 0 {
        eprintln!("parley: {failures} of {commands} commands were not appended");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
