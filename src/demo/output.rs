//! The demo's printed output: the timeline, the comparison table and the
//! commands to explore the ledger. Colour only on a terminal, never with NO_COLOR.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;

use super::scenarios::Scenario;
use super::world::Figures;
use super::DemoReport;
use crate::record::{Body, StoredRecord};
use crate::render::{self, money};
use crate::verify::VerifyReport;
use crate::vocab::Outcome;

struct Style(bool);

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn outcome(&self, o: &Outcome) -> String {
        let name = o.name().to_uppercase();
        let code = match o {
            Outcome::Approved | Outcome::Modified { .. } => "32",
            Outcome::Rejected | Outcome::Expired => "31",
            Outcome::Deferred { .. } => "33",
            Outcome::Escalated { .. } => "35",
        };
        self.paint(code, &name)
    }
}

fn since(start: u64, at: u64) -> String {
    let m = at.saturating_sub(start) / 60_000;
    format!("+{}h{:02}", m / 60, m % 60)
}

/// One timeline line for a record, or `None` for set-up noise.
fn line(st: &Style, r: &StoredRecord) -> Option<(String, String)> {
    let who = r.record.envelope.producer.clone();
    let text = match &r.record.body {
        Body::Intend { intention } => {
            let step = intention
                .workflow_step
                .as_ref()
                .map_or(String::new(), |s| format!(" [step {}]", s.step));
            format!(
                "#{} intends to {}{step}: {}",
                r.record.envelope.seq,
                render::action(&intention.action),
                intention.reasoning
            )
        }
        Body::Decision { decision } => return Some(("parley".into(), decision_line(st, decision))),
        Body::HumanResolution {
            intention,
            option,
            rationale,
        } => {
            format!(
                "{} settles #{intention} with option {option}: \"{rationale}\"",
                st.paint("1", "human")
            )
        }
        Body::CompetitorPrice {
            sku,
            competitor,
            price_minor,
        } => format!("{competitor} now sells {sku} at {}", money(*price_minor)),
        Body::Broadcast { topic, entity, .. } => format!(
            "broadcasts {topic} on {}",
            entity
                .as_ref()
                .map_or("the store".to_owned(), ToString::to_string)
        ),
        Body::TrafficSpike { sku, increase_bp } => {
            format!("traffic to {sku} is up {} %", increase_bp / 100)
        }
        Body::StockChanged { sku, stock } => format!("{sku} stock is {stock}"),
        Body::SupplierDelay {
            supplier,
            skus,
            days,
        } => format!("{supplier} delays {} skus by {days} days", skus.len()),
        Body::OrderFlagged { order, reason } => format!("flags {order}: {reason}"),
        Body::OrderDelayed { order, days } => format!("{order} will be {days} days late"),
        Body::WorkflowStarted { run, workflow, .. } => format!("starts {workflow} as run {run}"),
        Body::StepReady { step, owner, .. } => {
            return Some((
                "parley".into(),
                format!("  step {step} is ready for {owner}"),
            ))
        }
        Body::StepCompleted { step, .. } => format!("reports step {step} done"),
        Body::StepTimedOut { step, .. } => {
            return Some(("parley".into(), format!("  step {step} timed out")))
        }
        Body::RunFinished { run, outcome } => {
            return Some(("parley".into(), format!("  run {run} {}", outcome.name())))
        }
        _ => return None,
    };
    Some((who, text))
}

/// A decision's timeline line: outcome, deciding rule, its finding, and the
/// options of an escalation.
fn decision_line(st: &Style, decision: &crate::vocab::Decision) -> String {
    let note = decision
        .trace
        .last()
        .map_or_else(String::new, |t| render::finding(&t.finding));
    let mut s = format!(
        "  → #{} {} by {}: {note}",
        decision.intention,
        st.outcome(&decision.outcome),
        decision.rule.name()
    );
    // The store's own guard: its message, from the demo's rule set.
    if decision.rule == crate::vocab::RuleId::Custom {
        let rules = crate::rules::RuleSet::parse(&super::store::demo_rules(decision.resolver));
        let named = crate::explain::Explanation::guards_named(decision);
        if let Some(g) = rules
            .iter()
            .flat_map(|r| &r.custom)
            .find(|g| named.last() == Some(&g.id.as_str()))
        {
            s.push_str(&format!(" (“{}”)", g.message));
        }
    }
    match &decision.outcome {
        Outcome::Escalated { escalation } => {
            for (i, o) in escalation.options.iter().enumerate() {
                let label = render::option_label(o, escalation);
                s.push_str(&format!("\n{:28}option {i}: {label}", ""));
            }
        }
        Outcome::Modified { action } => {
            s.push_str(&format!(" (carried out as: {})", render::action(action)))
        }
        _ => {}
    }
    s
}

fn row(out: &mut impl Write, label: &str, without: String, with: String) -> std::io::Result<()> {
    writeln!(out, "  {label:<32}{without:>16}{with:>14}")
}

fn table(out: &mut impl Write, without: &Figures, with: &Figures) -> std::io::Result<()> {
    row(out, "", "without parley".into(), "with parley".into())?;
    let n = |v: u64| v.to_string();
    row(
        out,
        "negative-margin sales",
        n(without.negative_margin_sales),
        n(with.negative_margin_sales),
    )?;
    row(
        out,
        "  margin lost on them",
        money(without.margin_lost_minor),
        money(with.margin_lost_minor),
    )?;
    row(
        out,
        "duplicate customer messages",
        n(without.duplicate_messages),
        n(with.duplicate_messages),
    )?;
    row(
        out,
        "workflow steps out of order",
        n(without.out_of_order_steps),
        n(with.out_of_order_steps),
    )?;
    row(
        out,
        "reorders of discontinued skus",
        n(without.discontinued_reorders),
        n(with.discontinued_reorders),
    )?;
    row(
        out,
        "perks on fraud-flagged orders",
        n(without.perks_on_flagged_orders),
        n(with.perks_on_flagged_orders),
    )?;
    row(
        out,
        "escalations to a human",
        n(without.escalations),
        n(with.escalations),
    )?;
    row(
        out,
        "units sold",
        without.units_sold.to_string(),
        with.units_sold.to_string(),
    )?;
    row(
        out,
        "  revenue",
        money(without.revenue_minor),
        money(with.revenue_minor),
    )?;
    row(
        out,
        "  margin",
        money(without.margin_minor),
        money(with.margin_minor),
    )
}

/// The commands to explore a demo ledger, with what each shows.
pub(super) fn commands(dir: &Path, whatif: &Path, ran: &[&str]) -> Vec<(String, &'static str)> {
    let d = dir.display();
    let mut out = Vec::new();
    if ran.contains(&"price-war") {
        out.push((
            format!("parley audit --data {d} sku:S1 price"),
            "why S1's price changed when it did, and who lost",
        ));
    }
    if ran.contains(&"flash-sale") {
        out.push((
            format!("parley audit --data {d} sku:H4 price"),
            "a flash-sale price: its workflow step and the human's choice",
        ));
        out.push((
            format!("parley state --data {d} run:sale-hp"),
            "the flash-sale run, step by step",
        ));
    }
    out.push((
        format!("parley escalations --data {d}"),
        "every escalation, its options and how it was settled",
    ));
    out.push((
        format!("parley replay --data {d}"),
        "re-derive every decision from the log",
    ));
    out.push((
        format!("parley whatif --data {d} --rules {}", whatif.display()),
        "the same day with the threshold at £20,000",
    ));
    out.push((
        format!("parley scorecard --data {d} --rules {}", whatif.display()),
        "what followed each decision, and that threshold's effect estimated",
    ));
    out
}

/// A what-if rule set to try: the demo's with a higher escalation threshold.
pub(super) fn whatif_rules() -> String {
    let text = super::store::demo_rules(crate::resolver::CURRENT).replace(
        "escalate_above_minor = 500000",
        "escalate_above_minor = 2000000",
    );
    format!(
        "# parley demo what-if: the demo's rules with the human threshold at GBP 20,000.\n{text}"
    )
}

pub(super) fn print(
    report: &DemoReport,
    records: &[StoredRecord],
    scenarios: &[Scenario],
    verify: &VerifyReport,
    dir: &Path,
    whatif: &Path,
) -> Result<()> {
    let st = Style(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "parley demo: one store's agents, one shared ledger ({})",
        dir.display()
    )?;
    writeln!(
        out,
        "seed {}; every agent announces before it acts, parley decides.\n",
        report.seed
    )?;
    for s in scenarios {
        writeln!(
            out,
            "{}",
            st.paint("1", &format!("── {}: {} ──", s.name, s.title))
        )?;
        let within = records.iter().filter(|r| {
            let at = r.record.envelope.recorded_at_ms;
            at >= s.start_ms && at <= s.end_ms
        });
        for r in within {
            if let Some((who, text)) = line(&st, r) {
                let when = since(s.start_ms, r.record.envelope.recorded_at_ms);
                writeln!(out, "  {when:>7}  {who:<20}{text}")?;
            }
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "{}",
        st.paint(
            "1",
            "The same agents and the same day, without and with parley:"
        )
    )?;
    table(
        &mut out,
        &report.without_orchestration,
        &report.with_orchestration,
    )?;
    writeln!(
        out,
        "\n  (without parley every agent carries out what it intends at once, on its own view;"
    )?;
    writeln!(
        out,
        "   sales are simulated hour by hour from the seed, the same shoppers both ways)\n"
    )?;
    scorecard(&mut out, &report.scorecard, report)?;
    writeln!(
        out,
        "ledger: {} records; chain {}; replay re-derived {} decisions and {} workflow records, {} divergent",
        report.records,
        if verify.ok { "verified" } else { "DAMAGED" },
        report.replay_decisions,
        report.replay_workflow_records,
        report.replay_divergent
    )?;
    writeln!(out, "\nExplore it:")?;
    let ran: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    for (c, what) in commands(dir, whatif, &ran) {
        writeln!(out, "  {c}\n      {what}")?;
    }
    Ok(())
}

/// The ledger's own scorecard, from the outcome records the shoppers left.
fn scorecard(
    out: &mut impl Write,
    s: &crate::scorecard::Scorecard,
    report: &DemoReport,
) -> std::io::Result<()> {
    let sales = s.records.get("sales").copied().unwrap_or(0);
    let without = report.without_orchestration.margin_minor;
    writeln!(
        out,
        "scorecard (`parley scorecard`, from {sales} sales records and their returns): margin {}, refunds {}",
        money(s.realized.margin_minor),
        money(s.realized.refund_minor)
    )?;
    writeln!(
        out,
        "  margin protected: {} against the same shoppers without parley ({}); the rules that stopped actions:",
        money(s.realized.margin_minor - without),
        money(without)
    )?;
    for r in s.rules.iter().filter(|r| r.acted > 0 || stopped(r) > 0) {
        writeln!(
            out,
            "  {:<28}{} stopped, {} approved changes: margin {} in their windows",
            r.rule.name(),
            stopped(r),
            r.acted,
            money(r.realized_margin_minor)
        )?;
    }
    for a in &s.agents {
        let error = a.mean_abs_error_minor.map_or("-".into(), money);
        let bias = a.bias_bp.map_or("-".into(), render::percent);
        writeln!(
            out,
            "  forecasts of {:<16}{} measured; realized {bias} of projected revenue impact; mean error {error}",
            a.agent, a.measured
        )?;
    }
    writeln!(out)
}

/// Intentions a rule rejected, deferred or escalated.
fn stopped(r: &crate::scorecard::RuleScore) -> u64 {
    use crate::vocab::OutcomeKind as K;
    [K::Rejected, K::Deferred, K::Escalated]
        .iter()
        .filter_map(|k| r.decided.get(k))
        .sum()
}
