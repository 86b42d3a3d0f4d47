//! `parley demo`: the ledger core on the seed's first scenario. A scripted store
//! (catalog facts, a competitor's 10 % cut, a planned 15 % promotion, a retried
//! command, a delayed order) is appended through the sequencer into a fresh
//! ledger, read back as a timeline, and verified.
//!
//! The resolver and the with/without comparison arrive with their issues; until
//! then the demo shows what the core guarantees: order, hashes, idempotency.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::command::Command;
use crate::ledger::{Ledger, Options};
use crate::record::Body;
use crate::verify::verify_dir;

/// The embedded default store script (JSON Lines commands).
pub const STORE_SCRIPT: &str = include_str!("store.jsonl");

fn fresh_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("parley-demo-{}-{nanos}", std::process::id()))
}

fn summary(body: &Body) -> String {
    match body {
        Body::Genesis { ledger_id, format } => format!("ledger {ledger_id} (format {format})"),
        Body::Fact {
            entity,
            attribute,
            value,
        } => format!(
            "{entity}.{attribute} = {}",
            serde_json::to_string(value).unwrap_or_default()
        ),
        Body::Broadcast {
            topic,
            entity,
            detail,
        } => format!(
            "{topic} {} {}",
            entity.as_deref().unwrap_or("-"),
            serde_json::to_string(detail).unwrap_or_default()
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
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
        ..Options::default()
    };
    let (ledger, _) =
        Ledger::open(&dir, opts).with_context(|| format!("create {}", dir.display()))?;
    let mut appended = 0u64;
    let mut duplicates = 0u64;
    for (i, line) in STORE_SCRIPT.lines().enumerate() {
        let cmd = Command::parse(line).with_context(|| format!("demo script line {}", i + 1))?;
        let ack = ledger
            .append(cmd)
            .with_context(|| format!("demo script line {}", i + 1))?;
        if ack.duplicate {
            duplicates += 1;
        } else {
            appended += 1;
        }
    }
    let mut timeline = Vec::new();
    ledger.scan(1, u64::MAX, &mut |r| {
        timeline.push(r);
        Ok(())
    })?;
    ledger.close()?;
    let report = verify_dir(&dir)?;
    if json {
        let out = serde_json::json!({
            "data": dir.display().to_string(),
            "appended": appended,
            "duplicates_absorbed": duplicates,
            "verify": report,
        });
        println!("{out}");
    } else {
        println!(
            "parley demo: a store's agents writing into one ledger at {}\n",
            dir.display()
        );
        println!("{:>4}  {:<20}  {:<9}  what", "seq", "producer", "kind");
        for r in &timeline {
            let env = &r.record.envelope;
            println!(
                "{:>4}  {:<20}  {:<9}  {}",
                env.seq,
                env.producer,
                r.record.body.kind(),
                summary(&r.record.body)
            );
        }
        println!(
            "\n{appended} commands appended, {duplicates} retried command absorbed by its idempotency key."
        );
        match (&report.ok, &report.head_hash) {
            (true, Some(h)) => println!(
                "chain verified: {} records, head hash {h}",
                report.records.unwrap_or(0)
            ),
            _ => println!("chain verification FAILED: {:?}", report.reason),
        }
        println!("\nExplore the ledger it wrote:");
        println!("  parley verify --data {} --json", dir.display());
        println!("  parley export --data {}", dir.display());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
