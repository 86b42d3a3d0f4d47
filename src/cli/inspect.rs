//! The read commands: `verify`, `export`, `replay`, `state`, `audit`,
//! `whatif`, `log`, and `simulate` (which writes a new ledger). They open a
//! read-only view: no lock, nothing written, next to a running writer too.

use super::place::At;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use crate::audit::{audit, to_dot, AuditReport};
use crate::entity::EntityRef;
use crate::reader::LedgerRead;
use crate::reader::LogView;
use crate::record::{Body, StoredRecord};
use crate::render;
use crate::replay::{Problem, Replayer};
use crate::resolver::Resolvers;
use crate::rules::RuleSet;
use crate::time::format_rfc3339;
use crate::whatif::{Alternative, WhatIf, WhatIfReport};

/// A progress bar on a terminal, nothing when stderr is piped.
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} records ({per_sec}, {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_owned());
    bar
}

pub(super) fn check_seq(ledger: &dyn LedgerRead, seq: u64, flag: &str) -> Result<()> {
    let head = ledger.head_seq();
    if seq == 0 || seq > head {
        bail!("{flag} {seq} is beyond the log: seqs run from 1 to {head}");
    }
    Ok(())
}

pub(super) fn verify(at: &At, json: bool, derived: bool) -> Result<ExitCode> {
    let verified = match at {
        At::Dir(data) => crate::verify::verify_dir(data),
        At::Pg { .. } if derived => anyhow::bail!(
            "--derived checks a data directory's index files and derived store; a ledger in PostgreSQL keeps neither"
        ),
        At::Pg { store, ledger } => {
            let reader = crate::log::postgres::PgReader::new((**store).clone(), ledger);
            if matches!(reader.head(), Ok(None)) {
                anyhow::bail!("{at}: no such ledger (it holds no records)");
            }
            crate::verify::verify_reader(&reader, || reader.head())
        }
    };
    let mut report = match verified {
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
    if let (true, true, At::Dir(data)) = (report.ok, derived, at) {
        if let Some(d) = crate::verify::derived_differences(data)? {
            report.ok = false;
            report.reason = Some(format!("derived state disagrees with the log: {d}"));
        }
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.ok {
        let running = if report.writer_running {
            " (a writer is running: verified up to the head it published)"
        } else {
            ""
        };
        println!(
            "ok: {} records, head seq {}, head hash {}{running}",
            report.records.unwrap_or(0),
            report.head_seq.unwrap_or(0),
            report.head_hash.as_deref().unwrap_or("")
        );
    } else {
        println!(
            "DAMAGED at seq {} ({}): {}",
            report.first_bad_seq.map_or("-".into(), |s| s.to_string()),
            report.damage.unwrap_or("-"),
            report.reason.as_deref().unwrap_or("")
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn export(ledger: &LogView, out: Option<&Path>) -> Result<ExitCode> {
    let count = match out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let n = crate::export::export(ledger, &mut w)?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("write {}", path.display()))?;
            n
        }
        None => crate::export::export(ledger, &mut std::io::stdout().lock())?,
    };
    let to = out.map_or("stdout".into(), |p| p.display().to_string());
    eprintln!("exported {count} records to {to}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn replay(ledger: &LogView, until: Option<u64>, json: bool) -> Result<ExitCode> {
    let head = ledger.head_seq();
    let to = until.unwrap_or(head);
    check_seq(ledger, to, "--until")?;
    let bar = progress(to, "replay");
    let mut replayer = Replayer::new(Resolvers::released());
    let mut divergence = None;
    let mut records = 0u64;
    // Replay stops at the first divergence: what follows it was decided
    // from a context the replay no longer shares.
    ledger.scan_until(1, to, &mut |r| {
        records += 1;
        bar.inc(1);
        divergence = replayer.feed(&r).err();
        if divergence.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    bar.finish_and_clear();
    if divergence.is_none() && to == head {
        divergence = replayer.finish().err();
    }
    let (decisions, workflow) = (replayer.decisions(), replayer.workflow_records());
    let Some(d) = divergence else {
        let hash = replayer.context().state_hash();
        if json {
            let out = serde_json::json!({"ok": true, "records": records, "decisions": decisions, "workflow_records": workflow, "divergent": 0, "state_hash": hash});
            println!("{out}");
        } else {
            println!("replay ok: {records} records, {decisions} decisions and {workflow} workflow records re-derived, 0 divergent; state hash {hash}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (recorded, replayed) = match &d.problem {
        Problem::Derived { recorded, expected } => (
            serde_json::to_value(recorded)?,
            serde_json::to_value(expected)?,
        ),
        _ => (serde_json::Value::Null, serde_json::Value::Null),
    };
    if json {
        let out = serde_json::json!({"ok": false, "records": records, "decisions": decisions, "divergent": 1, "first_divergent_seq": d.seq, "problem": d.to_string(), "recorded": recorded, "replayed": replayed});
        println!("{out}");
    } else {
        println!("DIVERGENT at {d} (after {decisions} matching decisions)");
        if !recorded.is_null() || !replayed.is_null() {
            println!("  recorded: {recorded}");
            println!("  replayed: {replayed}");
        }
    }
    Ok(ExitCode::FAILURE)
}

/// The last seq recorded at or before `ms`.
pub(super) fn seq_at_time(ledger: &dyn LedgerRead, ms: u64) -> Result<u64> {
    let mut found = 0;
    ledger.scan(1, u64::MAX, &mut |r| {
        if r.record.envelope.recorded_at_ms <= ms {
            found = r.record.envelope.seq;
        }
        Ok(())
    })?;
    if found == 0 {
        bail!(
            "the ledger has no record at or before {}",
            format_rfc3339(ms)
        );
    }
    Ok(found)
}

fn print_audit(report: &AuditReport, out: &mut impl Write) -> std::io::Result<()> {
    let field = report.field.as_deref().unwrap_or("every field");
    writeln!(
        out,
        "audit of {} ({field}): {} changes, newest first",
        report.entity,
        report.changes.len()
    )?;
    for c in &report.changes {
        let value = serde_json::to_string(&c.value).unwrap_or_default();
        let op = if c.addition { "+=" } else { "=" };
        writeln!(
            out,
            "\nseq {} at {}: {} {op} {value} ({} by {})",
            c.seq,
            format_rfc3339(c.at_ms),
            c.field,
            c.kind,
            c.producer
        )?;
        if let Some(i) = &c.intention {
            writeln!(
                out,
                "  intention #{} by {}: {} ({})",
                i.seq,
                i.agent,
                render::action(&i.action),
                i.reasoning
            )?;
            let step = i.workflow_step.as_ref().map_or(String::new(), |s| {
                let wf = s
                    .workflow
                    .as_ref()
                    .map_or(String::new(), |w| format!(" ({w})"));
                format!(", workflow step `{}` of run `{}`{wf}", s.step, s.run)
            });
            writeln!(
                out,
                "    impact revenue {} margin {}, objective {}{step}",
                render::money(i.impact.revenue_minor),
                render::money(i.impact.margin_minor),
                i.objective.name()
            )?;
        }
        if let Some(d) = &c.decision {
            writeln!(
                out,
                "  decision: {} (resolver v{}, rules {}, context seq {})",
                render::decision_line(d),
                d.resolver,
                d.rules_hash
                    .map_or("none".into(), |h| crate::record::to_hex(&h.0)[..12]
                        .to_owned()),
                d.context_seq
            )?;
            for t in &d.trace {
                writeln!(out, "    {}", render::trace_step(t))?;
                for r in &t.reads {
                    writeln!(out, "      read {}", render::read(r))?;
                }
            }
        }
        if let Some(r) = &c.resolution {
            writeln!(
                out,
                "  human resolution #{} by {}: option {}: {}",
                r.seq, r.human, r.option, r.rationale
            )?;
        }
        for l in &c.lost {
            writeln!(
                out,
                "  lost: #{} by {} ({} by {}): {}",
                l.seq, l.agent, l.outcome, l.rule, l.reasoning
            )?;
        }
    }
    Ok(())
}

pub(super) fn audit_cmd(
    ledger: &LogView,
    entity: &str,
    field: Option<&str>,
    json: bool,
    format: Option<&str>,
) -> Result<ExitCode> {
    let entity = EntityRef::parse(entity).map_err(anyhow::Error::msg)?;
    let report = audit(ledger, &entity, field)?;
    match (json, format) {
        (true, _) => println!("{}", serde_json::to_string(&report)?),
        (false, Some("dot")) => print!("{}", to_dot(&report)),
        (false, Some(other)) => bail!("unknown --format `{other}` (only `dot`)"),
        (false, None) => print_audit(&report, &mut std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn whatif(
    ledger: &LogView,
    rules_path: Option<&Path>,
    resolver: Option<u32>,
    (from, to): (Option<u64>, Option<u64>),
    json: bool,
) -> Result<ExitCode> {
    let rules = match rules_path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            let parsed =
                RuleSet::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some((text, parsed))
        }
        None => None,
    };
    let resolvers = Resolvers::released();
    if let Some(v) = resolver.filter(|v| resolvers.get(*v).is_none()) {
        let known: Vec<String> = resolvers.known().iter().map(u32::to_string).collect();
        bail!(
            "--resolver {v}: this build knows resolver versions {}",
            known.join(", ")
        );
    }
    if rules.is_none() && resolver.is_none() {
        bail!("give --rules FILE, --resolver N, or both: the alternative to replay");
    }
    let head = ledger.head_seq();
    let (from, to) = (from.unwrap_or(1), to.unwrap_or(head));
    check_seq(ledger, from, "--from")?;
    check_seq(ledger, to, "--to")?;
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let bar = progress(to, "what-if");
    let mut run = WhatIf::new(Alternative { rules, resolver }, from, to, resolvers);
    ledger.scan(1, to, &mut |r: StoredRecord| {
        bar.inc(1);
        run.feed(&r);
        Ok(())
    })?;
    crate::reader::feed_follow_ups(ledger, &mut run)?;
    bar.finish_and_clear();
    let report = run.finish();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_whatif(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_whatif(r: &WhatIfReport) {
    let rules = r.rules_hash.map_or("the recorded rules".to_owned(), |h| {
        format!("rules {}", &crate::record::to_hex(&h.0)[..12])
    });
    let resolver = r
        .resolver
        .map_or("the recorded resolver versions".to_owned(), |v| {
            format!("resolver v{v}")
        });
    println!(
        "what-if over seqs {}..={} under {rules} and {resolver} (nothing was written or executed)",
        r.from, r.to
    );
    println!("{} decisions differ:", r.changed.len());
    let show = |v: &Option<crate::whatif::Verdict>| {
        v.as_ref()
            .map_or("-".to_owned(), |v| format!("{} ({})", v.outcome, v.rule))
    };
    for c in &r.changed {
        let would = if r.would_have.contains(&c.seq) {
            "  would have"
        } else {
            ""
        };
        println!(
            "  #{:<6} {:<18} {:<16} {:<16} {:<36} -> {}{would}",
            c.seq,
            c.agent,
            c.action.name(),
            c.entity.to_string(),
            show(&c.recorded),
            show(&c.whatif)
        );
    }
    let (a, b) = (&r.summary.recorded, &r.summary.whatif);
    println!("\n{:<28} {:>12} {:>12}", "", "recorded", "what-if");
    for (name, x, y) in [
        ("approved", a.approved, b.approved),
        ("deferred", a.deferred, b.deferred),
        ("rejected", a.rejected, b.rejected),
        (
            "awaiting a human at the end",
            a.awaiting_human,
            b.awaiting_human,
        ),
        ("expired", a.expired, b.expired),
        ("escalation decisions", a.escalations, b.escalations),
    ] {
        println!("{name:<28} {x:>12} {y:>12}");
    }
    println!(
        "{:<28} {:>12} {:>12}",
        "approved revenue impact",
        render::money(a.approved_revenue_impact_minor),
        render::money(b.approved_revenue_impact_minor)
    );
}

fn summary_of(r: &StoredRecord) -> String {
    let mut text = match &r.record.body {
        Body::Decision { decision } => format!(
            "#{} {}",
            decision.intention,
            render::decision_line(decision)
        ),
        Body::Intend { intention } => format!(
            "{} ({})",
            render::action(&intention.action),
            intention.reasoning
        ),
        body => serde_json::to_string(body).unwrap_or_default(),
    };
    if text.len() > 160 {
        let cut = (0..=157)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

pub(super) fn log(
    ledger: &LogView,
    from: u64,
    kind: Option<&str>,
    entity: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    if from > 1 {
        check_seq(ledger, from, "--from")?;
    }
    if let Some(k) = kind.filter(|k| !Body::KINDS.contains(k)) {
        bail!(
            "`{k}` is not a record kind; kinds: {}",
            Body::KINDS.join(", ")
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut emit = |r: &StoredRecord| -> std::io::Result<()> {
        if kind.is_some_and(|k| k != r.record.body.kind()) {
            return Ok(());
        }
        if json {
            serde_json::to_writer(&mut out, &crate::export::ExportedRecord::from(r))?;
            return writeln!(out);
        }
        let e = &r.record.envelope;
        writeln!(
            out,
            "{:>8}  {}  {:<20} {:<18} {}",
            e.seq,
            format_rfc3339(e.recorded_at_ms),
            e.producer,
            r.record.body.kind(),
            summary_of(r)
        )
    };
    if let Some(e) = entity {
        let e = EntityRef::parse(e).map_err(anyhow::Error::msg)?;
        let seqs: Vec<u64> = ledger
            .entity_seqs(&e)?
            .into_iter()
            .filter(|s| *s >= from)
            .collect();
        if seqs.is_empty() && from <= 1 {
            bail!("no record names entity `{e}`");
        }
        for r in ledger.read(&seqs)? {
            emit(&r)?;
        }
    } else {
        let mut err = None;
        ledger.scan(from, u64::MAX, &mut |r| {
            if err.is_none() {
                err = emit(&r).err();
            }
            Ok(())
        })?;
        if let Some(e) = err.filter(|e| e.kind() != std::io::ErrorKind::BrokenPipe) {
            return Err(e.into());
        }
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}

/// `parley simulate`: writes the ledger, then reports time and size.
#[allow(clippy::disallowed_methods)] // reports elapsed time to the user; not state
pub(super) fn simulate(
    data: &Path,
    seed: u64,
    records: u64,
    skus: usize,
    json: bool,
) -> Result<ExitCode> {
    let bar = progress(records, "simulate");
    let started = std::time::Instant::now();
    let report = crate::demo::simulate::simulate(data, seed, records, skus, &mut |n| {
        bar.set_position(n.min(records))
    })?;
    bar.finish_and_clear();
    let elapsed_ms = started.elapsed().as_millis();
    let (apparent, allocated) = dir_size(data)?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["elapsed_ms"] = serde_json::json!(elapsed_ms);
        v["dir_bytes"] = apparent.into();
        v["dir_allocated_bytes"] = allocated.into();
        println!("{v}");
    } else {
        println!(
            "simulated {} records ({} commands, {} refused, {} escalations resolved, {} workflow runs) into {} in {}.{} s; directory {} bytes ({} allocated)",
            report.records,
            report.commands,
            report.refused,
            report.escalations_resolved,
            report.workflow_runs,
            data.display(),
            elapsed_ms / 1000,
            elapsed_ms % 1000 / 100,
            apparent,
            allocated
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// (apparent, allocated) bytes of every file under `dir`.
fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = dir_size(&entry.path())?;
            total = (total.0 + a, total.1 + b);
        } else {
            total = (total.0 + meta.len(), total.1 + meta.blocks() * 512);
        }
    }
    Ok(total)
}
