//! `parley demo`: the seed's agents working one store through parley. A scripted
//! day (the embedded `store.jsonl`) is appended through the sequencer into a fresh
//! ledger: a competitor's 10 % cut meets a planned 15 % promotion, two agents
//! want to message one customer about one delay, a perk is offered on an order
//! flagged for fraud, a sku is discontinued (a human approves) and then
//! reordered, and a large price change goes to a human. The timeline shows every
//! decision, the rule that made it and why; the chain is verified at the end.
//!
//! The with/without-orchestration comparison and the simulated agents come with
//! their own issue.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::command::Command;
use crate::ledger::{Ledger, Options};
use crate::record::{Body, StoredRecord};
use crate::verify::verify_dir;
use crate::vocab::{Action, Outcome};

/// The embedded default store script (JSON Lines commands).
pub const STORE_SCRIPT: &str = include_str!("store.jsonl");

fn fresh_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("parley-demo-{}-{nanos}", std::process::id()))
}

fn action_text(a: &Action) -> String {
    match a {
        Action::SetPrice { sku, price_minor } => format!("set {sku} price to {price_minor}"),
        Action::LaunchPromotion {
            target,
            discount_bp,
            ..
        } => format!("launch {discount_bp} bp promotion on {target:?}"),
        Action::Reorder { sku, quantity } => format!("reorder {quantity} of {sku}"),
        Action::Discontinue { sku } => format!("discontinue {sku}"),
        Action::NotifyCustomer {
            customer,
            order,
            topic,
        } => format!("notify {customer} about {topic} on {order}"),
        Action::OfferPerk { order, perk } => format!("offer {perk:?} on {order}"),
        Action::ChangeAdBudget {
            campaign,
            budget_minor,
        } => format!("set {campaign} budget to {budget_minor}"),
        Action::ReserveStock { sku, quantity } => format!("reserve {quantity} of {sku}"),
        Action::Generic {
            entity,
            attribute,
            value,
        } => format!("set {entity}.{attribute} = {value:?}"),
    }
}

/// One line of the timeline, or `None` for set-up records not worth showing.
fn describe(r: &StoredRecord) -> Option<String> {
    let producer = &r.record.envelope.producer;
    Some(match &r.record.body {
        Body::Intend { intention } => format!(
            "{producer} intends to {} ({})",
            action_text(&intention.action),
            intention.reasoning
        ),
        Body::Decision { decision } => {
            let why = decision.trace.last().map_or("", |t| t.note.as_str());
            let mut line = format!(
                "  -> #{} {} by {}: {why}",
                decision.intention,
                decision.outcome.name().to_uppercase(),
                decision.rule
            );
            if let Outcome::Escalated { escalation } = &decision.outcome {
                let options: Vec<&str> = escalation
                    .options
                    .iter()
                    .map(|o| o.label.as_str())
                    .collect();
                line.push_str(&format!(
                    "\n     escalated to a human: {}; options: {}",
                    escalation.summary,
                    options.join(" | ")
                ));
            }
            line
        }
        Body::HumanResolution {
            intention,
            option,
            rationale,
        } => format!("{producer} (human) resolves #{intention} with option {option}: {rationale}"),
        Body::CompetitorPrice {
            sku,
            competitor,
            price_minor,
        } => format!("{producer}: {competitor} sells {sku} at {price_minor}"),
        Body::OrderDelayed { order, days } => {
            format!("{producer}: order {order} delayed {days} days")
        }
        Body::OrderFlagged { order, reason } => {
            format!("{producer}: order {order} flagged ({reason})")
        }
        _ => return None,
    })
}

/// Runs the demo from the command line.
pub fn run_cli(data: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let dir = data.unwrap_or_else(fresh_dir);
    if dir.join("log").exists() {
        anyhow::bail!(
            "{} already holds a ledger; give --data a new directory",
            dir.display()
        );
    }
    let opts = Options {
        genesis_at_ms: Some(1_764_147_000_000),
        auto_clock: false,
        ..Options::default()
    };
    let (ledger, _) =
        Ledger::open(&dir, opts).with_context(|| format!("create {}", dir.display()))?;
    for (i, line) in STORE_SCRIPT.lines().enumerate() {
        let cmd = Command::parse(line).with_context(|| format!("demo script line {}", i + 1))?;
        ledger
            .append(cmd)
            .with_context(|| format!("demo script line {}", i + 1))?;
    }
    let mut timeline = Vec::new();
    ledger.scan(1, u64::MAX, &mut |r| {
        timeline.push(r);
        Ok(())
    })?;
    ledger.close()?;
    let report = verify_dir(&dir)?;
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &timeline {
        if let Body::Decision { decision } = &r.record.body {
            *outcomes.entry(decision.outcome.name()).or_default() += 1;
        }
    }
    if json {
        let out = serde_json::json!({"data": dir.display().to_string(), "records": timeline.len(), "decisions": outcomes, "verify": report});
        println!("{out}");
    } else {
        println!(
            "parley demo: one store's agents coordinating through one ledger ({})\n",
            dir.display()
        );
        for r in &timeline {
            if let Some(line) = describe(r) {
                println!("{:>4}  {line}", r.record.envelope.seq);
            }
        }
        let counts: Vec<String> = outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("\ndecisions: {}", counts.join(", "));
        match (&report.ok, &report.head_hash) {
            (true, Some(h)) => println!(
                "chain verified: {} records, head hash {h}",
                report.records.unwrap_or(0)
            ),
            _ => println!("chain verification FAILED: {:?}", report.reason),
        }
        let d = dir.display();
        println!("\nExplore the ledger it wrote:");
        println!("  parley audit --data {d} sku:SKU-3 lifecycle # why SKU-3 is being discontinued, and who agreed");
        println!("  parley replay --data {d}                    # re-derive every decision");
        println!("  parley whatif --data {d} --rules ALT.toml   # e.g. rules/default.toml with another escalate_above_minor");
        println!("  parley verify --data {d} --json");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
