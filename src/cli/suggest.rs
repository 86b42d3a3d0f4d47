//! `parley suggest`: proposed rule changes with their evidence and a what-if
//! preview. Writes nothing: an admin installs a proposal with `parley rules
//! install` (or the console), and its `[change] why` cites the seq the
//! suggestion was computed at.

use std::process::ExitCode;

use anyhow::Result;

use super::place::Place;
use crate::reader::LedgerRead;
use crate::render::{money, percent};
use crate::scorecard::suggest::{Change, SuggestReport};

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    place: Place,
    /// Print JSON (schemas/suggest.schema.json) instead of words.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &Args) -> Result<ExitCode> {
    let ledger = args.place.at()?.view()?;
    let ctx = ledger.context_at(ledger.head_seq())?;
    let report = crate::alternatives::suggestions(&ledger, &ctx)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_words(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_words(r: &SuggestReport) {
    if r.suggestions.is_empty() {
        println!(
            "no suggestion as of seq {}: the evidence does not call for a change",
            r.ledger_seq
        );
        return;
    }
    println!(
        "suggestions as of seq {} (nothing changes until an admin installs one):",
        r.ledger_seq
    );
    for s in &r.suggestions {
        let p = &s.proposal;
        let what = match &p.change {
            Change::Threshold {
                from_minor,
                to_minor,
            } => {
                format!(
                    "raise the escalation threshold from {} to {}",
                    money(*from_minor),
                    money(*to_minor)
                )
            }
            Change::Autonomy { agent, kind, .. } => format!("let {agent} {kind} without a person"),
            Change::Calibration { agent, bias_bp, .. } => {
                format!(
                    "calibrate impacts: {agent}'s forecasts realized {} of what it projected",
                    percent(*bias_bp)
                )
            }
            Change::MarginFloor { from_bp, to_bp } => format!(
                "raise the margin floor from {} to {}: the price changes that left less all lost margin",
                percent(*from_bp),
                percent(*to_bp)
            ),
            Change::EscalationWindow { from_h, to_h } => format!(
                "give people {to_h} h instead of {from_h} h to settle an escalation: as many expired as were settled"
            ),
            Change::RetirePrecedents { resolution, .. } => {
                format!("retire precedents whose cases do worse (resolution {resolution}'s did)")
            }
        };
        println!(
            "  {}: {what} ({} of {} cases support it)",
            p.id, p.evidence.supporting, p.evidence.cases
        );
        if let Some(v) = &s.preview {
            println!(
                "      on this ledger: {} decision(s) differ, escalations {} instead of {}; ESTIMATED margin {} ({} estimated, {} not)",
                v.changed, v.escalations_alternative, v.escalations_recorded, money(v.margin_delta_minor), v.estimated, v.not_estimated
            );
        }
    }
    println!("install one: parley suggest --json > s.json, save its install.text, then parley rules install --data D FILE");
}
