//! `parley replay | state | audit | whatif | log`: reading the ledger back.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use crate::audit::{audit, entity_view, to_dot, AuditReport};
use crate::ledger::Ledger;
use crate::record::{Body, StoredRecord};
use crate::replay::Replayer;
use crate::rules::RuleSet;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::whatif::{WhatIf, WhatIfReport};

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

fn head_seq(ledger: &Ledger) -> u64 {
    ledger.head().map_or(0, |h| h.seq)
}

fn check_seq(ledger: &Ledger, seq: u64, flag: &str) -> Result<()> {
    let head = head_seq(ledger);
    if seq == 0 || seq > head {
        bail!("{flag} {seq} is beyond the log: seqs run from 1 to {head}");
    }
    Ok(())
}

pub fn replay(ledger: &Ledger, until: Option<u64>, json: bool) -> Result<ExitCode> {
    let head = head_seq(ledger);
    let to = until.unwrap_or(head);
    check_seq(ledger, to, "--until")?;
    let bar = progress(to, "replay");
    let mut replayer = Replayer::new();
    let mut divergence = None;
    let mut records = 0u64;
    ledger.scan(1, to, &mut |r| {
        records += 1;
        bar.inc(1);
        if divergence.is_none() {
            if let Err(d) = replayer.feed(&r) {
                divergence = Some(d);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if divergence.is_none() && to == head {
        divergence = replayer.finish().err();
    }
    match divergence {
        None => {
            let hash = replayer.context().state_hash();
            if json {
                let out = serde_json::json!({"ok": true, "records": records, "decisions": replayer.decisions(), "divergent": 0, "state_hash": hash});
                println!("{out}");
            } else {
                println!("replay ok: {records} records, {} decisions re-derived, 0 divergent; state hash {hash}", replayer.decisions());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(d) => {
            if json {
                let out = serde_json::json!({"ok": false, "records": records, "decisions": replayer.decisions(), "divergent": 1, "first_divergent_seq": d.seq, "recorded": d.recorded, "replayed": d.expected});
                println!("{out}");
            } else {
                println!(
                    "DIVERGENT at seq {} (after {} matching decisions)",
                    d.seq,
                    replayer.decisions()
                );
                println!("  recorded: {}", serde_json::to_string(&d.recorded)?);
                println!("  replayed: {}", serde_json::to_string(&d.expected)?);
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The last seq recorded at or before `ms`.
fn seq_at_time(ledger: &Ledger, ms: u64) -> Result<u64> {
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

pub fn state(
    ledger: &Ledger,
    at: Option<u64>,
    at_time: Option<&str>,
    entity: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let seq = match (at, at_time) {
        (Some(_), Some(_)) => bail!("give --at or --at-time, not both"),
        (Some(s), None) => {
            check_seq(ledger, s, "--at")?;
            s
        }
        (None, Some(t)) => seq_at_time(ledger, parse_rfc3339(t).map_err(anyhow::Error::msg)?)?,
        (None, None) => head_seq(ledger),
    };
    let ctx = ledger.context_at(seq)?;
    let view = match entity {
        Some(e) => entity_view(&ctx, e)?,
        None if json => serde_json::to_value(&ctx)?,
        None => {
            let escalated = ctx
                .intentions
                .values()
                .filter(|s| matches!(s.status, crate::context::Status::Escalated { .. }))
                .count();
            println!("state as of seq {seq} ({})", format_rfc3339(ctx.now_ms));
            println!(
                "  skus {}, orders {}, agents {}, humans {}",
                ctx.skus.len(),
                ctx.orders.len(),
                ctx.agents.len(),
                ctx.humans.len()
            );
            println!(
                "  intentions {}, open {}, escalated {}",
                ctx.intentions.len(),
                ctx.open.len(),
                escalated
            );
            println!(
                "  promotions {}, precedents {}",
                ctx.promotions.len(),
                ctx.precedents.len()
            );
            println!(
                "  rules {}",
                ctx.rules
                    .as_ref()
                    .map_or("none".into(), |r| format!("{} (seq {})", r.hash, r.seq))
            );
            let defs: Vec<String> = ctx
                .workflows
                .definitions
                .iter()
                .flat_map(|(n, v)| v.keys().map(move |k| format!("{n} v{k}")))
                .collect();
            println!(
                "  workflows {}",
                if defs.is_empty() {
                    "none".into()
                } else {
                    defs.join(", ")
                }
            );
            for r in ctx.workflows.runs.values() {
                println!("  run {}: {}", r.run, run_line(r));
            }
            println!("  state hash {}", ctx.state_hash());
            return Ok(ExitCode::SUCCESS);
        }
    };
    if json {
        println!("{}", serde_json::json!({"seq": seq, "state": view}));
    } else {
        println!("as of seq {seq} ({}):", format_rfc3339(ctx.now_ms));
        println!("{}", serde_json::to_string_pretty(&view)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// A run's status and each step's, on one line.
fn run_line(r: &crate::workflow::run::RunState) -> String {
    use crate::workflow::run::{RunStatus, StepStatus};
    let status = match &r.status {
        RunStatus::Running => "running".to_owned(),
        RunStatus::Compensating { step, .. } => format!("compensating for {step}"),
        RunStatus::Ended { outcome } => outcome.name().to_owned(),
    };
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|s| {
            let st = match &s.status {
                StepStatus::Waiting => "waiting",
                StepStatus::Ready { .. } => "ready",
                StepStatus::Completed { .. } => "completed",
                StepStatus::Failed { .. } => "failed",
                StepStatus::TimedOut { .. } => "timed out",
                StepStatus::Skipped => "skipped",
            };
            format!("{} {st}", s.name)
        })
        .collect();
    format!(
        "{} v{} {status} [{}]",
        r.workflow,
        r.version,
        steps.join(", ")
    )
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
        writeln!(
            out,
            "\nseq {} at {}: {} = {value} ({} by {})",
            c.seq,
            format_rfc3339(c.at_ms),
            c.field,
            c.kind,
            c.producer
        )?;
        if let Some(i) = &c.intention {
            writeln!(
                out,
                "  intention #{} by {}: {}",
                i.seq, i.agent, i.reasoning
            )?;
            writeln!(
                out,
                "    impact revenue {} margin {}, objective {:?}{}",
                i.impact.revenue_minor,
                i.impact.margin_minor,
                i.objective,
                i.workflow_step.as_ref().map_or(String::new(), |s| format!(
                    ", workflow step `{}` of run `{}`{}",
                    s.step,
                    s.run,
                    s.workflow
                        .as_ref()
                        .map_or(String::new(), |w| format!(" ({w})"))
                ))
            )?;
        }
        if let Some(d) = &c.decision {
            writeln!(
                out,
                "  decision: {} by rule {} (rules {}, context seq {})",
                d.outcome.name(),
                d.rule,
                &d.rules_hash.get(..12).unwrap_or(""),
                d.context_seq
            )?;
            for t in &d.trace {
                let reads: Vec<String> = t
                    .reads
                    .iter()
                    .map(|r| {
                        format!(
                            "{}={}@{}",
                            r.name,
                            serde_json::to_string(&r.value).unwrap_or_default(),
                            r.seq
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "    {:<26} {:<8} {} [{}]",
                    t.rule,
                    t.verdict,
                    t.note,
                    reads.join(", ")
                )?;
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

pub fn audit_cmd(
    ledger: &Ledger,
    entity: &str,
    field: Option<&str>,
    json: bool,
    format: Option<&str>,
) -> Result<ExitCode> {
    let report = audit(ledger, entity, field)?;
    match (json, format) {
        (true, _) => println!("{}", serde_json::to_string(&report)?),
        (false, Some("dot")) => print!("{}", to_dot(&report)),
        (false, Some(other)) => bail!("unknown --format `{other}` (only `dot`)"),
        (false, None) => print_audit(&report, &mut std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn whatif(
    ledger: &Ledger,
    rules_path: &Path,
    from: Option<u64>,
    to: Option<u64>,
    json: bool,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(rules_path)
        .with_context(|| format!("read {}", rules_path.display()))?;
    let rules =
        RuleSet::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", rules_path.display()))?;
    let head = head_seq(ledger);
    let (from, to) = (from.unwrap_or(1), to.unwrap_or(head));
    check_seq(ledger, from, "--from")?;
    check_seq(ledger, to, "--to")?;
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let bar = progress(to, "what-if");
    let mut run = WhatIf::new(&text, rules, from, to);
    ledger.scan(1, to, &mut |r: StoredRecord| {
        bar.inc(1);
        run.feed(&r);
        Ok(())
    })?;
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
    println!(
        "what-if over seqs {}..={} under rules {} (nothing was written or executed)",
        r.from,
        r.to,
        &r.rules_hash[..12]
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
            c.action,
            c.entity,
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
        ("escalated (final)", a.escalated, b.escalated),
        ("expired", a.expired, b.expired),
        ("escalations", a.escalations, b.escalations),
    ] {
        println!("{name:<28} {x:>12} {y:>12}");
    }
    println!(
        "{:<28} {:>12} {:>12}",
        "approved revenue impact", a.approved_revenue_impact_minor, b.approved_revenue_impact_minor
    );
}

fn summary_of(r: &StoredRecord) -> String {
    let mut text = serde_json::to_string(&r.record.body).unwrap_or_default();
    if text.len() > 140 {
        let cut = (0..=137)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

pub fn log(
    ledger: &Ledger,
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
            writeln!(out)
        } else {
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
        }
    };
    match entity {
        Some(e) => {
            let seqs: Vec<u64> = ledger
                .derived()?
                .entity_seqs(e)?
                .into_iter()
                .filter(|s| *s >= from)
                .collect();
            if seqs.is_empty() && from <= 1 {
                bail!("no record names entity `{e}`");
            }
            for r in ledger.read(&seqs)? {
                emit(&r)?;
            }
        }
        None => {
            let mut err = None;
            ledger.scan(from, u64::MAX, &mut |r| {
                if err.is_none() {
                    err = emit(&r).err();
                }
                Ok(())
            })?;
            if let Some(e) = err {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}

/// `parley simulate`: writes the ledger, then reports time and size.
pub fn simulate(data: &Path, seed: u64, records: u64, skus: usize, json: bool) -> Result<ExitCode> {
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
