//! `parley import-catalog`: a platform's product CSV export into `catalog`
//! records, on a local ledger or through a running server.
//!
//! Every row is read first; a refused row is printed with its line, and one
//! refuses the whole file unless `--skip-bad`. Each record's idempotency key
//! names the file's digest and the row's line, so importing the same file
//! again appends nothing. A row without a cost keeps the cost the ledger
//! holds for its sku (0 for a new sku), and the summary counts them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::place::Place;
use crate::command::{Command, CommandEnvelope};
use crate::integration::catalog::{self, CsvFormat, Entry, Row};
use crate::integration::Currency;
use crate::record::Body;

/// `parley import-catalog`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub(super) struct ImportCatalogArgs {
    #[command(flatten)]
    place: Place,
    /// Import through a running `parley serve` (token from PARLEY_TOKEN,
    /// the `--as` identity's).
    #[arg(long, conflicts_with_all = ["data", "store", "ledger"])]
    server: Option<String>,
    /// Which export the file is.
    #[arg(long, value_enum)]
    format: CsvFormat,
    /// Who writes the records: an agent of domain merchandising or
    /// integration (the `[writers]` table decides).
    #[arg(long = "as")]
    producer: String,
    /// Import the good rows even when some are refused.
    #[arg(long)]
    skip_bad: bool,
    /// The ledger's currency (ISO 4217).
    #[arg(long, env = "PARLEY_CURRENCY", default_value = "GBP")]
    currency: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The CSV file.
    file: PathBuf,
}

/// What an import did.
#[derive(Default)]
struct Summary {
    rows: u64,
    bad: u64,
    appended: u64,
    already: u64,
    refused: u64,
    kept_cost: u64,
}

pub(super) fn run(args: &ImportCatalogArgs) -> Result<ExitCode> {
    let currency = Currency::parse(&args.currency)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let rows = catalog::read(args.format, bytes.as_slice(), currency)
        .with_context(|| format!("{} is not a readable export", args.file.display()))?;
    let mut summary = Summary {
        rows: rows.len() as u64,
        ..Summary::default()
    };
    for r in &rows {
        if let Err(e) = &r.entry {
            summary.bad += 1;
            eprintln!("{}:{}: {e}", args.file.display(), r.line);
        }
    }
    if summary.bad > 0 && !args.skip_bad {
        eprintln!(
            "parley: {} of {} rows refused; nothing was imported (--skip-bad imports the others)",
            summary.bad, summary.rows
        );
        return Ok(ExitCode::FAILURE);
    }
    let digest = crate::record::to_hex(blake3::hash(&bytes).as_bytes());
    let good: Vec<(u64, &Entry)> = rows
        .iter()
        .filter_map(|Row { line, entry }| entry.as_ref().ok().map(|e| (*line, e)))
        .collect();
    match &args.server {
        Some(url) => remote(url, args, &good, &digest[..16], &mut summary)?,
        None => local(args, &good, &digest[..16], &mut summary)?,
    }
    print_summary(&args.file, &summary, args.json);
    Ok(if summary.refused > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The command for one row; `costs` are the costs the ledger holds.
fn command(
    producer: &str,
    (line, e): (u64, &Entry),
    key: &str,
    costs: &BTreeMap<String, i64>,
    at_ms: Option<u64>,
) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: producer.to_owned(),
            at_ms,
            idempotency_key: Some(format!("catalog-import:{key}:{line}")),
            ..CommandEnvelope::default()
        },
        body: Body::Catalog {
            sku: e.sku.clone(),
            category: e.category.clone(),
            cost_minor: e
                .cost_minor
                .unwrap_or_else(|| costs.get(&e.sku).copied().unwrap_or(0)),
            price_minor: e.price_minor,
            stock: e.stock,
            lifecycle: e.lifecycle,
        },
    }
}

fn bar(n: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn local(
    args: &ImportCatalogArgs,
    good: &[(u64, &Entry)],
    key: &str,
    s: &mut Summary,
) -> Result<()> {
    let at = args.place.at()?;
    anyhow::ensure!(at.holds_ledger()?, "{at} holds no ledger");
    let (ledger, report) = at.open(crate::ledger::Options::default())?;
    super::write::tell_recovery(&report);
    let ctx = match ledger.head() {
        Some(h) => ledger.context_at(h.seq)?,
        None => crate::context::Context::default(),
    };
    let costs = ctx
        .store
        .skus()
        .map(|(k, v)| (k.clone(), v.cost_minor.value))
        .collect();
    let scripted = ctx.authority.timeline == Some(crate::record::Timeline::Scripted);
    let at_ms = scripted.then_some(ctx.now_ms);
    s.kept_cost = good.iter().filter(|(_, e)| e.cost_minor.is_none()).count() as u64;
    let bar = bar(good.len());
    let tickets: Vec<_> = good
        .iter()
        .map(|&row| {
            (
                row.0,
                ledger.submit(command(&args.producer, row, key, &costs, at_ms)),
            )
        })
        .collect();
    for (line, t) in tickets {
        match t.and_then(crate::ledger::Ticket::wait) {
            Ok(ack) if ack.duplicate => s.already += 1,
            Ok(_) => s.appended += 1,
            Err(e) => {
                s.refused += 1;
                bar.suspend(|| eprintln!("{}:{line}: {e}", args.file.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    ledger.close()?;
    Ok(())
}

fn remote(
    url: &str,
    args: &ImportCatalogArgs,
    good: &[(u64, &Entry)],
    key: &str,
    s: &mut Summary,
) -> Result<()> {
    let rt = super::remote::runtime()?;
    rt.block_on(async {
        let mut client = super::remote::connect(url).await?;
        let state = client
            .request(hyper::Method::GET, "/v1/state", None)
            .await?;
        anyhow::ensure!(
            state.status == 200,
            "read the server's state: {}",
            state.problem().1
        );
        let costs: BTreeMap<String, i64> = state.json()["skus"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some((
                    v["sku"].as_str()?.to_owned(),
                    v["cost_minor"]["value"].as_i64()?,
                ))
            })
            .collect();
        s.kept_cost = good.iter().filter(|(_, e)| e.cost_minor.is_none()).count() as u64;
        let bar = bar(good.len());
        for chunk in good.chunks(128) {
            let lines: Vec<(u64, String)> = chunk
                .iter()
                .map(|&row| {
                    (
                        row.0,
                        command(&args.producer, row, key, &costs, None).to_json(),
                    )
                })
                .collect();
            for answer in super::remote::batch(&mut client, &lines).await? {
                tally(s, &answer, &args.file, &bar);
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    })
}

fn tally(s: &mut Summary, answer: &Value, file: &Path, bar: &indicatif::ProgressBar) {
    if answer["ok"] == true {
        if answer["duplicate"] == true {
            s.already += 1;
        } else {
            s.appended += 1;
        }
        return;
    }
    s.refused += 1;
    let text = format!(
        "{}:{}: refused: {}: {}",
        file.display(),
        answer["line"],
        answer["code"].as_str().unwrap_or(""),
        answer["error"].as_str().unwrap_or("")
    );
    bar.suspend(|| eprintln!("{text}"));
}

fn print_summary(file: &Path, s: &Summary, as_json: bool) {
    if as_json {
        let v = json!({"file": file.display().to_string(), "rows": s.rows, "bad_rows": s.bad,
            "appended": s.appended, "already_imported": s.already, "refused": s.refused,
            "rows_without_cost": s.kept_cost});
        println!("{v}");
        return;
    }
    println!(
        "{}: {} rows; {} appended, {} already imported, {} refused by the ledger, {} bad rows skipped",
        file.display(),
        s.rows,
        s.appended,
        s.already,
        s.refused,
        s.bad
    );
    if s.kept_cost > 0 {
        println!(
            "{} rows had no cost: each keeps the cost the ledger holds for its sku (0 for a new sku)",
            s.kept_cost
        );
    }
}
