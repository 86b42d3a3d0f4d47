//! `parley escalations` and `parley resolve`: the human's side of an escalation,
//! for people working from a terminal.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::command::{Command, CommandEnvelope};
use crate::context::{Context, Status};
use crate::ledger::{Ledger, Options};
use crate::record::Body;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::vocab::{Decision, Escalation, Outcome};

/// One escalation as listed.
#[derive(Serialize)]
pub struct EscalationView {
    /// The escalated intention's seq: what `parley resolve` takes.
    pub id: u64,
    /// The decision that escalated it.
    pub decision: u64,
    pub at: String,
    pub agent: String,
    pub entity: String,
    pub rule: String,
    /// open | resolved | expired | decided
    pub status: String,
    /// When it resolves to the rule set's safe default, if it is open and expires.
    pub expires_at: Option<String>,
    pub escalation: Escalation,
    /// The decision that closed it, if closed.
    pub closed_by: Option<ClosedBy>,
}

/// How an escalation was closed.
#[derive(Serialize)]
pub struct ClosedBy {
    pub decision: u64,
    pub rule: String,
    pub outcome: String,
    /// The human resolution (seq, human, option, rationale), if a human closed it.
    pub resolution: Option<(u64, String, u32, String)>,
}

fn decision_of(ledger: &Ledger, seq: u64) -> Result<(u64, Decision)> {
    let rec = ledger.read(&[seq])?;
    match rec
        .into_iter()
        .next()
        .map(|r| (r.record.envelope.recorded_at_ms, r.record.body))
    {
        Some((at, Body::Decision { decision })) => Ok((at, *decision)),
        _ => bail!("seq {seq} is not a decision"),
    }
}

fn view(
    ledger: &Ledger,
    ctx: &Context,
    seq: u64,
    at_ms: u64,
    d: &Decision,
) -> Result<Option<EscalationView>> {
    let Outcome::Escalated { escalation } = &d.outcome else {
        return Ok(None);
    };
    let Some(state) = ctx.intentions.get(&d.intention) else {
        return Ok(None);
    };
    let next = state.decisions.iter().copied().find(|s| *s > seq);
    let (status, closed_by) = match next {
        None => ("open".to_owned(), None),
        Some(n) => {
            let (_, close) = decision_of(ledger, n)?;
            let resolution = match close.rule.as_str() {
                "human_resolution" => {
                    let r = close.competing.first().copied().unwrap_or_default();
                    match ledger.read(&[r])?.into_iter().next() {
                        Some(rec) => match rec.record.body {
                            Body::HumanResolution {
                                option, rationale, ..
                            } => Some((r, rec.record.envelope.producer, option, rationale)),
                            _ => None,
                        },
                        None => None,
                    }
                }
                _ => None,
            };
            let status = match close.rule.as_str() {
                "human_resolution" => "resolved",
                "escalation.expiry" => "expired",
                _ => "decided",
            };
            let by = ClosedBy {
                decision: n,
                rule: close.rule.clone(),
                outcome: close.outcome.name().to_owned(),
                resolution,
            };
            (status.to_owned(), Some(by))
        }
    };
    let expires_at = match (&state.status, next) {
        (
            Status::Escalated {
                expires_at_ms: Some(t),
            },
            None,
        ) => Some(format_rfc3339(*t)),
        _ => None,
    };
    Ok(Some(EscalationView {
        id: d.intention,
        decision: seq,
        at: format_rfc3339(at_ms),
        agent: state.agent.clone(),
        entity: d.entity.clone(),
        rule: d.rule.clone(),
        status,
        expires_at,
        escalation: escalation.clone(),
        closed_by,
    }))
}

/// `parley escalations`: every escalation (or only the open ones), oldest first.
pub fn list(ledger: &Ledger, only_open: bool, json: bool) -> Result<ExitCode> {
    let head = ledger.head().map_or(0, |h| h.seq);
    // One pass: fold the context and collect every escalating decision.
    let mut ctx = Context::default();
    let mut found = Vec::new();
    ledger.scan(1, head, &mut |r| {
        if let Body::Decision { decision } = &r.record.body {
            if matches!(decision.outcome, Outcome::Escalated { .. }) {
                found.push((
                    r.record.envelope.seq,
                    r.record.envelope.recorded_at_ms,
                    decision.clone(),
                ));
            }
        }
        ctx.apply(&r);
        Ok(())
    })?;
    let mut views = Vec::new();
    for (seq, at, d) in found {
        let open = ctx.intentions.get(&d.intention).is_some_and(|s| {
            matches!(s.status, Status::Escalated { .. }) && s.decisions.last() == Some(&seq)
        });
        if only_open && !open {
            continue;
        }
        views.extend(view(ledger, &ctx, seq, at, &d)?);
    }
    if json {
        println!("{}", serde_json::json!({"escalations": views}));
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("no {}escalations", if only_open { "open " } else { "" });
    }
    for v in &views {
        println!(
            "escalation {} ({}, {}) by `{}` on {}: {}",
            v.id, v.status, v.at, v.agent, v.entity, v.escalation.summary
        );
        for i in &v.escalation.involved {
            println!(
                "    #{:<6} {:<18} revenue {:>10}  margin {:>10}  {}",
                i.intention, i.agent, i.impact.revenue_minor, i.impact.margin_minor, i.reasoning
            );
        }
        for (n, o) in v.escalation.options.iter().enumerate() {
            println!("    option {n}: {}", o.label);
        }
        if let Some(t) = &v.expires_at {
            println!("    expires {t} (then the rule set's safe default applies)");
        }
        if let Some(c) = &v.closed_by {
            match &c.resolution {
                Some((seq, human, option, why)) => println!(
                    "    resolved by {human} at seq {seq}: option {option}, \"{why}\" (decision {} {})",
                    c.decision, c.outcome
                ),
                None => println!("    closed by decision {} ({}, {})", c.decision, c.rule, c.outcome),
            }
        } else {
            println!(
                "    resolve: parley resolve --data DIR {} --option N --as HUMAN --why \"...\"",
                v.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `parley resolve`: a registered human settles an open escalation.
pub fn resolve(
    data: &Path,
    id: u64,
    option: u32,
    human: &str,
    why: &str,
    at: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let at_ms = at
        .map(parse_rfc3339)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let opts = Options {
        // A stated time is a scripted time line: no wall-clock records in it.
        auto_clock: at_ms.is_none(),
        ..Options::default()
    };
    let (ledger, report) =
        Ledger::open(data, opts).with_context(|| format!("open {}", data.display()))?;
    super::tell_recovery(&report);
    let command = Command {
        envelope: CommandEnvelope {
            producer: human.to_owned(),
            at_ms,
            ..CommandEnvelope::default()
        },
        body: Body::HumanResolution {
            intention: id,
            option,
            rationale: why.to_owned(),
        },
    };
    command.validate().map_err(anyhow::Error::msg)?;
    let ack = match ledger.append(command) {
        Ok(a) => a,
        Err(e) => {
            ledger.close()?;
            bail!("escalation {id} not resolved: {e}");
        }
    };
    let mut decisions = Vec::new();
    ledger.scan(ack.seq + 1, u64::MAX, &mut |r| {
        if let Body::Decision { decision } = r.record.body {
            decisions.push((r.record.envelope.seq, decision));
        }
        Ok(())
    })?;
    ledger.close()?;
    if json {
        let ds: Vec<_> = decisions
            .iter()
            .map(|(s, d)| serde_json::json!({"seq": s, "intention": d.intention, "outcome": d.outcome.name(), "rule": d.rule}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"resolution": ack.seq, "decisions": ds})
        );
    } else {
        println!("resolution recorded at seq {}", ack.seq);
        for (s, d) in &decisions {
            println!(
                "  decision {s}: intention {} {} ({})",
                d.intention,
                d.outcome.name(),
                d.rule
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
