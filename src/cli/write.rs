//! The commands that write: `run`, `import`, `rebuild`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::place::At;
use crate::answer::{CommandAnswer, ErrorAnswer};
use crate::command::{Command, CommandError, COMMAND_BYTES_MAX};
use crate::export::{import as import_export, ImportError};
use crate::ledger::{OpenReport, Options, Ticket};
use crate::log::postgres::{PgLog, PgOptions};
use crate::log::segment::DEFAULT_SEGMENT_BYTES;
use crate::record::{to_hex, Timeline};
use crate::sequencer::AppendError;

/// Options for the ledger a command writes (and may create).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Create {
    /// Sign checkpoints with the ed25519 key in FILE (`parley checkpoint
    /// keygen`): at open, every --checkpoint-every records and at close.
    #[arg(long, env = "PARLEY_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Records between signed checkpoints (with --signing-key).
    #[arg(long, requires = "signing_key")]
    pub checkpoint_every: Option<u64>,
    /// The ledger id written into a new ledger's genesis record (default: a
    /// fresh one); the same commands and id give the same head hash anywhere.
    #[arg(long)]
    pub ledger_id: Option<String>,
    /// The first admin of a new ledger (default: `admin`).
    #[arg(long)]
    pub admin: Option<String>,
    /// Preallocated size of each segment file, in MiB (default 64).
    #[arg(long)]
    pub segment_mib: Option<u64>,
    /// Create the ledger without the default rule set and workflow
    /// definitions (the commands install their own).
    #[arg(long)]
    pub bare: bool,
}

/// Commands waiting for their acknowledgement in `parley run`.
const RUN_IN_FLIGHT: usize = 4096;

/// The options of a ledger this command may create.
pub(super) fn options(create: &Create) -> Result<Options> {
    let mut opts = Options::default();
    if let Some(mib) = create.segment_mib {
        if !(1..=4096).contains(&mib) {
            bail!("--segment-mib {mib}: a segment is 1 to 4096 MiB");
        }
        opts.segment_bytes = mib << 20;
    } else if let Ok(v) = std::env::var("PARLEY_SEGMENT_MIB") {
        let mib: u64 = v
            .parse()
            .ok()
            .filter(|m| (1..=4096).contains(m))
            .with_context(|| format!("PARLEY_SEGMENT_MIB={v}: a segment is 1 to 4096 MiB"))?;
        opts.segment_bytes = mib << 20;
    } else {
        opts.segment_bytes = DEFAULT_SEGMENT_BYTES;
    }
    opts.ledger_id.clone_from(&create.ledger_id);
    if create.bare {
        opts.initial_rules = None;
        opts.initial_workflows = Vec::new();
    }
    if let Some(a) = &create.admin {
        opts.first_admin.clone_from(a);
    }
    if let Some(path) = &create.signing_key {
        let key = crate::checkpoint::SigningKey::load(path)?;
        opts.signing_key = Some(std::sync::Arc::new(key));
    }
    if let Some(n) = create.checkpoint_every {
        let (min, max) = (
            crate::checkpoint::CHECKPOINT_EVERY_MIN,
            crate::checkpoint::CHECKPOINT_EVERY_MAX,
        );
        if !(min..=max).contains(&n) {
            bail!("--checkpoint-every {n}: between {min} and {max} records");
        }
        opts.checkpoint_every = n;
    }
    Ok(opts)
}

pub(super) fn tell_recovery(report: &OpenReport) {
    let r = &report.recovery;
    if let Some(t) = &r.torn_tail {
        eprintln!(
            "parley: recovered: cut off a torn final write at seq {} ({} bytes at offset {} of {}: {}); it was never acknowledged",
            t.seq,
            t.bytes,
            t.offset,
            t.segment.display(),
            t.reason
        );
    }
    if r.head_file_missing {
        eprintln!("parley: note: log/head was missing; recovery had only the frames themselves as evidence");
    }
    if r.reextended {
        eprintln!("parley: note: the last segment had lost part of its preallocated space after a clean close; it was extended again (nothing was missing)");
    }
    if let Some(why) = &report.derived.rebuilt_because {
        eprintln!("parley: rebuilt the derived store from the log: {why}");
    }
}

/// One line of `parley run` output.
#[derive(Serialize)]
struct RunLine {
    line: u64,
    ok: bool,
    #[serde(flatten)]
    answer: Option<CommandAnswer>,
    #[serde(flatten)]
    error: Option<ErrorAnswer>,
}

enum Pending {
    Ticket(u64, Ticket),
    Failed(u64, AppendError),
}

fn line_of(pending: Pending) -> RunLine {
    let (line, outcome) = match pending {
        Pending::Ticket(line, t) => (line, t.wait()),
        Pending::Failed(line, e) => (line, Err(e)),
    };
    match outcome {
        Ok(ack) => RunLine {
            line,
            ok: true,
            answer: Some(ack.into()),
            error: None,
        },
        Err(e) => RunLine {
            line,
            ok: false,
            answer: None,
            error: Some(ErrorAnswer::from(&e)),
        },
    }
}

/// Reads one line of at most `COMMAND_BYTES_MAX`; `Ok(None)` at end of input.
pub(super) fn read_line(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
) -> Result<Option<Result<String, CommandError>>> {
    buf.clear();
    let limit = COMMAND_BYTES_MAX as u64 + 1;
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
        return Ok(Some(Err(CommandError::TooLong(buf.len()))));
    }
    Ok(Some(match std::str::from_utf8(buf) {
        Ok(t) => Ok(t.trim().to_owned()),
        Err(e) => Err(CommandError::NotJson(format!(
            "the line is not valid UTF-8 (byte {})",
            e.valid_up_to()
        ))),
    }))
}

pub(super) fn open_input(file: &Path) -> Result<Box<dyn BufRead>> {
    if file == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

pub(super) fn run(at: &At, file: &Path, create: &Create) -> Result<ExitCode> {
    let mut input = open_input(file)?;
    let mut buf = Vec::new();
    let mut first = read_line(&mut *input, &mut buf)?;
    let mut opts = options(create)?;
    // A run that creates a ledger whose first command carries `at_ms` makes a
    // scripted ledger starting then; otherwise a wall-clock one.
    let first_at = match &first {
        Some(Ok(text)) => Command::parse(text).ok().and_then(|c| c.envelope.at_ms),
        _ => None,
    };
    if let Some(first_at) = first_at {
        if !at.holds_ledger()? {
            opts.timeline = Timeline::Scripted;
            opts.genesis_at_ms = Some(first_at);
        }
    }
    let (ledger, report) = at.open(opts)?;
    tell_recovery(&report);
    let (tx, rx) = crossbeam_channel::bounded::<Pending>(RUN_IN_FLIGHT);
    let printer = std::thread::spawn(move || -> Result<u64> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut failures = 0;
        while let Ok(p) = rx.recv() {
            let r = line_of(p);
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
    let (mut line_no, mut commands) = (0u64, 0u64);
    loop {
        let read = match first.take() {
            Some(r) => r,
            None => match read_line(&mut *input, &mut buf)? {
                Some(r) => r,
                None => break,
            },
        };
        line_no += 1;
        let pending = match read {
            Ok(text) if text.is_empty() => continue,
            Ok(text) => match Command::parse(&text) {
                Ok(cmd) => match ledger.submit(cmd) {
                    Ok(t) => Pending::Ticket(line_no, t),
                    Err(e) => Pending::Failed(line_no, e),
                },
                Err(e) => Pending::Failed(line_no, e.into()),
            },
            Err(e) => Pending::Failed(line_no, e.into()),
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

pub(super) fn import(at: &At, file: &Path, json: bool) -> Result<ExitCode> {
    let imported = match at {
        At::Dir(data) => import_export(data, file, Options::default()),
        At::Pg { store, ledger } => crate::export::import_engine(
            || PgLog::open(store, PgOptions::new(ledger)),
            file,
            Options::default(),
        ),
    };
    match imported {
        Ok((ledger, count)) => {
            let head = ledger.head().map(|h| (h.seq, to_hex(&h.hash)));
            ledger.close()?;
            let (seq, hash) = head.unwrap_or_default();
            if json {
                let out = serde_json::json!({"ok": true, "records": count, "head_seq": seq, "head_hash": hash});
                println!("{out}");
            } else {
                println!("imported {count} records into {at}; head seq {seq}, head hash {hash}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::BadRecord { seq, reason }) => {
            if json {
                let out = serde_json::json!({"ok": false, "first_bad_seq": seq, "reason": reason});
                println!("{out}");
            } else {
                eprintln!("parley: import refused: record seq {seq} does not verify: {reason}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("import"),
    }
}

pub(super) fn rebuild(data: &Path) -> Result<ExitCode> {
    let report =
        crate::ledger::rebuild(data).with_context(|| format!("rebuild {}", data.display()))?;
    if let Some(t) = &report.torn_tail {
        eprintln!(
            "parley: note: the log ends in a torn final write at seq {} (never acknowledged); it stays in log/ for the next writer to cut off",
            t.seq
        );
    }
    println!(
        "rebuilt the derived state of {} from {} records ({} index files); the log was not written",
        data.display(),
        report.records,
        report.index_files
    );
    Ok(ExitCode::SUCCESS)
}

/// Appends one command with `body` as `producer` (at `at`, RFC 3339, on a
/// scripted ledger) to the ledger at `place`, and closes it: the append's
/// own result, or the error of opening or closing the ledger.
pub(super) fn append_one(
    place: &At,
    producer: &str,
    body: crate::record::Body,
    at: Option<&str>,
) -> Result<Result<crate::sequencer::Ack, crate::sequencer::AppendError>> {
    if !place.holds_ledger()? {
        anyhow::bail!("{place} holds no ledger");
    }
    let at_ms = at
        .map(crate::time::parse_rfc3339)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let (ledger, report) = place.open(crate::ledger::Options::default())?;
    tell_recovery(&report);
    let command = crate::command::Command {
        envelope: crate::command::CommandEnvelope {
            producer: producer.to_owned(),
            at_ms,
            ..crate::command::CommandEnvelope::default()
        },
        body,
    };
    let result = ledger.append(command);
    ledger.close()?;
    Ok(result)
}
