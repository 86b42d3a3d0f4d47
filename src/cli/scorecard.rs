//! `parley scorecard`: what followed the decisions (realized from outcome
//! records), and what other rule sets would have changed (estimated, and
//! labelled so). Reads only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use super::place::Place;
use crate::reader::{LedgerRead, LogView};
use crate::render::money;
use crate::rules::RuleSet;
use crate::scorecard::estimate::AlternativeScore;
use crate::scorecard::{scorecard, Report};

/// Most `--rules` alternatives one run compares.
const ALTERNATIVES_MAX: usize = 8;

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    place: Place,
    /// Another rule set to compare (TOML); repeat for several (at most 8).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Days and decisions from this time on (RFC 3339, or a date `YYYY-MM-DD`).
    #[arg(long)]
    from: Option<String>,
    /// Days and decisions before this time.
    #[arg(long)]
    to: Option<String>,
    /// Print JSON (schemas/scorecard.schema.json) instead of words.
    #[arg(long)]
    json: bool,
}

/// A time flag: RFC 3339, or a UTC date.
fn time_flag(flag: &str, text: &str) -> Result<u64> {
    crate::time::parse_day_or_time(text).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {text}: {e} (give RFC 3339, e.g. 2025-11-26T09:00:00Z, or a date 2025-11-26)"
        )
    })
}

pub(super) fn run(args: &Args) -> Result<ExitCode> {
    if args.rules.len() > ALTERNATIVES_MAX {
        bail!(
            "--rules given {} times: compare at most {ALTERNATIVES_MAX} rule sets per run",
            args.rules.len()
        );
    }
    let from = args
        .from
        .as_deref()
        .map(|t| time_flag("--from", t))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| time_flag("--to", t))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            bail!("--from is not before --to: the range is empty");
        }
    }
    let ledger = args.place.at()?.view()?;
    let head = ledger.head_seq();
    let ctx = ledger.context_at(head)?;
    let mut alternatives = Vec::new();
    for path in &args.rules {
        alternatives.push(alternative(&ledger, &ctx, path)?);
    }
    let report = Report {
        scorecard: scorecard(&ctx, from, to),
        alternatives,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_words(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the what-if of the rule set in a file.
fn alternative(
    ledger: &LogView,
    ctx: &crate::context::Context,
    path: &std::path::Path,
) -> Result<AlternativeScore> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let name = path.display().to_string();
    let parsed = RuleSet::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(crate::alternatives::score(
        ledger,
        ctx,
        &name,
        (text, parsed),
    )?)
}

fn print_words(r: &Report) {
    let s = &r.scorecard;
    let t = &s.realized;
    println!(
        "scorecard as of seq {} ({} sales records)",
        s.ledger_seq,
        s.records.get("sales").copied().unwrap_or(0)
    );
    println!(
        "  realized: {} units, revenue {}, margin {}, refunds {}, complaints {}",
        t.units,
        money(t.revenue_minor),
        money(t.margin_minor),
        money(t.refund_minor),
        t.complaints
    );
    let count = |k: &str| s.records.get(k).copied().unwrap_or(0);
    if count("stock_out") + count("campaign") > 0 {
        println!(
            "  stock-outs: {} ({} h in all); campaigns: {} reports, spend {}, attributed revenue {}",
            count("stock_out"),
            s.stock_out_ms / 3_600_000,
            count("campaign"),
            money(s.campaign_spend_minor),
            money(s.campaign_revenue_minor)
        );
    }
    let escalations: u64 = s.days.iter().map(|d| d.escalations).sum();
    println!(
        "  escalations: {escalations} over {} day(s); {} settled by a person after {} minute(s) of waiting in all",
        s.days.len(),
        s.resolutions,
        s.waited_minutes
    );
    for a in &s.agents {
        let bias = a.bias_bp.map_or_else(
            || "not yet measured".to_owned(),
            |b| format!("realized {} of its projections", crate::render::percent(b)),
        );
        println!(
            "  agent {}: {} of {} decisions measured; {bias}",
            a.agent, a.measured, a.decisions
        );
    }
    for rule in &s.rules {
        if rule.acted > 0 {
            println!(
                "  rule {}: {} approvals changed terms; realized margin {} ({} measured, {} against their baselines)",
                rule.rule,
                rule.acted,
                money(rule.realized_margin_minor),
                rule.measured,
                money(rule.delta_margin_minor)
            );
        }
    }
    for p in &s.precedents {
        let state = if p.retired { "retired" } else { "in use" };
        println!(
            "  precedent of resolution {}: settled {} case(s), {} measured; {state}",
            p.record.resolution, p.record.settled, p.record.measured
        );
    }
    for a in &r.alternatives {
        println!(
            "  with {}: {} decision(s) differ; ESTIMATE for {} of {} price difference(s): margin {}, revenue {} ({} not estimated; model: {}, fitted on {} decision(s)); escalations {} instead of {}",
            a.rules,
            a.changed,
            a.estimated,
            a.price_differences,
            signed(a.margin_delta_minor),
            signed(a.revenue_delta_minor),
            a.not_estimated,
            a.model,
            a.fit.pooled.as_ref().map_or(0, |p| p.inputs),
            a.escalations_alternative,
            a.escalations_recorded
        );
    }
}

fn signed(minor: i64) -> String {
    if minor >= 0 {
        format!("+{}", money(minor))
    } else {
        money(minor)
    }
}
