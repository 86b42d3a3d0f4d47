//! `parley escalations` and `parley resolve`: the human's side of an
//! escalation, for people working from a terminal. The list is built once
//! (`escalation_views`) and shared with the HTTP API and the console.

use std::process::ExitCode;

use anyhow::{bail, Result};

use super::place::At;

use crate::answer::CommandAnswer;
use crate::escalations::{escalation_views, EscalationView, Waiting};
use crate::reader::LedgerRead;
use crate::reader::LogView;
use crate::record::Body;
use crate::render;

/// `parley escalations`: every escalation (or only the open ones), oldest first.
pub(super) fn list(ledger: &LogView, only_open: bool, json: bool) -> Result<ExitCode> {
    let ctx = ledger.context_at(ledger.head_seq())?;
    let views = escalation_views(ledger, &Waiting::of(&ctx), only_open)?;
    if json {
        println!("{}", serde_json::json!({"escalations": views}));
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("no {}escalations", if only_open { "open " } else { "" });
    }
    for v in &views {
        print_view(v);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_view(v: &EscalationView) {
    println!(
        "escalation {} ({}, {}) on {}: {}",
        v.id, v.status, v.at, v.entity, v.summary
    );
    for i in &v.escalation.involved {
        println!(
            "    #{:<6} {:<18} revenue {:>12}  margin {:>12}  {}",
            i.intention,
            i.agent,
            render::money(i.impact.revenue_minor),
            render::money(i.impact.margin_minor),
            i.reasoning
        );
    }
    for o in &v.options {
        println!("    option {}: {}", o.number, o.label);
    }
    if let Some(t) = &v.expires_at {
        println!("    expires {t} (then the rule set's safe default applies)");
    }
    match &v.closed_by {
        Some(c) => match &c.resolution {
            Some(r) => println!(
                "    resolved by {} at seq {}: option {}, \"{}\" (decision {} {})",
                r.human, r.seq, r.option, r.rationale, c.decision, c.outcome
            ),
            None => println!(
                "    closed by decision {} ({}, {})",
                c.decision,
                c.rule.name(),
                c.outcome
            ),
        },
        None => println!(
            "    resolve: parley resolve --data DIR {} --option N --as HUMAN --why \"...\"",
            v.id
        ),
    }
}

/// `parley resolve`: a registered human settles an open escalation.
pub(super) fn resolve(
    place: &At,
    id: u64,
    option: u32,
    human: &str,
    why: &str,
    at: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let body = Body::HumanResolution {
        intention: id,
        option,
        rationale: why.to_owned(),
    };
    let result = super::write::append_one(place, human, body, at)?;
    let answer: CommandAnswer = match result {
        Ok(a) => a.into(),
        Err(e) => bail!("escalation {id} not resolved: {e}"),
    };
    if json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("resolution recorded at seq {}", answer.seq);
    for c in &answer.caused {
        if let Body::Decision { decision } = &c.body {
            println!(
                "  decision {}: intention {} {}",
                c.seq,
                decision.intention,
                render::decision_line(decision)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
