//! `parley demo`: the seed's agents working one store, conflicting, and being
//! coordinated. The scenarios ([`scenarios`]) run through a fresh ledger
//! ([`drive::with_parley`]); the same beats run again with every agent acting
//! at once on its own view ([`drive::events_without`]); [`world`] turns both
//! into the failure figures the closing table compares. The ledger stays
//! behind to explore with `audit`, `replay` and `whatif`.

pub mod drive;
mod output;
pub mod scenarios;
pub mod simulate;
pub mod store;
mod stories;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::record::StoredRecord;
use crate::replay::Replayer;
use scenarios::{Rng, Scenario, WINDOW_MS};
pub use stories::NAMES;
use world::{Event, Figures, World};

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 7;

/// One scenario's figures, both ways.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioFigures {
    pub name: &'static str,
    pub title: &'static str,
    pub with_orchestration: Figures,
    pub without_orchestration: Figures,
}

/// What a demo run produced.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub data: String,
    pub seed: u64,
    pub records: usize,
    pub scenarios: Vec<ScenarioFigures>,
    pub with_orchestration: Figures,
    pub without_orchestration: Figures,
    /// `parley replay` on the ledger just written: decisions re-derived, divergent.
    pub replay_decisions: u64,
    /// Workflow records (step ready, timed out, run finished) re-derived.
    pub replay_workflow_records: u64,
    pub replay_divergent: u64,
    /// The ledger's scorecard (`parley scorecard`) after the shoppers' sales
    /// and returns were recorded: its realized margin is the "with parley"
    /// figure.
    pub scorecard: crate::scorecard::Scorecard,
}

/// The scenarios `--scenario` names (`all`: every one).
pub fn select(name: &str, seed: u64) -> Result<Vec<Scenario>> {
    let names: Vec<&str> = if name == "all" {
        NAMES.to_vec()
    } else if NAMES.contains(&name) {
        vec![name]
    } else {
        bail!(
            "no scenario `{name}`; the scenarios are: all, {}",
            NAMES.join(", ")
        );
    };
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for (i, n) in (0u64..).zip(names) {
        out.extend(stories::build(n, i, &mut rng));
    }
    Ok(out)
}

/// Folds the events of each scenario's window and counts its sales; the
/// world at the end holds every sale.
fn figures(events: &[(u64, Event)], scenarios: &[Scenario], seed: u64) -> (Vec<Figures>, World) {
    let mut world = World::default();
    let mut rest = events.iter().peekable();
    let mut out = Vec::new();
    for s in scenarios {
        let before = world.figures.clone();
        let window_end = s.start_ms + WINDOW_MS;
        while let Some((at, e)) = rest.next_if(|(at, _)| *at < window_end) {
            world.apply(*at, e);
        }
        world.count_sales(seed, s.start_ms, s.end_ms);
        out.push(world.figures.since(&before));
    }
    (out, world)
}

/// Runs scenarios into a new ledger in `dir`; returns the report and the records.
pub fn run(
    dir: &Path,
    scenario: &str,
    seed: u64,
) -> Result<(DemoReport, Vec<StoredRecord>, Vec<Scenario>)> {
    let scenarios = select(scenario, seed)?;
    let ledger = store::new_ledger(dir)?;
    let mut records = drive::with_parley(&ledger, &scenarios)?;
    let (with, world) = figures(&drive::events_with(&records), &scenarios, seed);
    let sales = drive::record_sales(&ledger, &world, &records)?;
    records.extend(sales);
    ledger.close()?;
    let mut replay = Replayer::default();
    let mut divergent = 0;
    let mut ctx = crate::context::Context::default();
    for r in &records {
        ctx.apply(r).context("fold the demo ledger")?;
    }
    for r in &records {
        if replay.feed(r).is_err() {
            divergent += 1;
            break;
        }
    }
    if replay.finish().is_err() {
        divergent += 1;
    }
    let (without, _) = figures(&drive::events_without(&scenarios), &scenarios, seed);
    let mut total_with = Figures::default();
    let mut total_without = Figures::default();
    let mut per = Vec::new();
    for ((s, w), wo) in scenarios.iter().zip(with).zip(without) {
        total_with.add(&w);
        total_without.add(&wo);
        per.push(ScenarioFigures {
            name: s.name,
            title: s.title,
            with_orchestration: w,
            without_orchestration: wo,
        });
    }
    let report = DemoReport {
        data: dir.display().to_string(),
        seed,
        records: records.len(),
        scenarios: per,
        with_orchestration: total_with,
        without_orchestration: total_without,
        replay_decisions: replay.decisions(),
        replay_workflow_records: replay.workflow_records(),
        replay_divergent: divergent,
        scorecard: crate::scorecard::scorecard(&ctx, None, None),
    };
    Ok((report, records, scenarios))
}

/// `parley demo` from the command line.
pub fn run_cli(data: Option<PathBuf>, scenario: &str, seed: u64, json: bool) -> Result<ExitCode> {
    let dir = match data {
        Some(d) => d,
        // Kept after the run: the demo prints commands that explore it.
        None => tempfile::Builder::new()
            .prefix("parley-demo-")
            .tempdir()
            .context("create a temporary directory for the demo ledger")?
            .keep(),
    };
    let (report, records, scenarios) = run(&dir, scenario, seed)?;
    let whatif = dir.join("whatif-rules.toml");
    std::fs::write(&whatif, output::whatif_rules())
        .with_context(|| format!("write {}", whatif.display()))?;
    // The rule set in force, to edit and try with `parley whatif --rules`.
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, store::demo_rules(crate::resolver::CURRENT))
        .with_context(|| format!("write {}", rules.display()))?;
    let verify = crate::verify::verify_dir(&dir)?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["verify_ok"] = verify.ok.into();
        let ran: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        v["explore"] = output::commands(&dir, &whatif, &ran)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        println!("{v}");
    } else {
        output::print(&report, &records, &scenarios, &verify, &dir, &whatif)?;
    }
    Ok(if verify.ok && report.replay_divergent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
