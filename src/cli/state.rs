//! `parley state`: the shared context, or one entity, as of a seq or a
//! time, in words (JSON with `--json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::inspect::{check_seq, seq_at_time};
use crate::context::view::{
    self, AgentView, ContactView, EntityView, FactView, OpenIntentionView, OrderView,
    PromotionView, RunPhase, RunView, SkuView,
};
use crate::entity::EntityRef;
use crate::reader::{LedgerRead, LogView};
use crate::render;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::vocab::Perk;

/// Ended workflow runs listed in words; the rest are counted (`--json` and
/// `state run:ID` show every one). A large ledger has thousands.
pub(super) const ENDED_RUNS_SHOWN_MAX: usize = 20;

pub(super) fn state(
    ledger: &LogView,
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
        (None, Some(t)) => seq_at_time(ledger, parse_rfc3339(t)?)?,
        (None, None) => ledger.head_seq(),
    };
    let ctx = ledger.context_at(seq)?;
    if let Some(e) = entity {
        let e = EntityRef::parse(e)?;
        let Some(v) = view::entity(&ctx, &e) else {
            bail!("the shared context holds nothing of `{e}` at seq {seq} (entities look like sku:SKU-1, order:O-9, customer:C-3, run:flash-1)");
        };
        if json {
            println!("{}", serde_json::json!({"seq": seq, "entity": v}));
        } else {
            println!("{e} as of seq {seq} ({})", format_rfc3339(ctx.now_ms));
            print!("{}", entity_words(&v));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let v = view::state(&ctx);
    if json {
        println!("{}", serde_json::to_string(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_state(&v, &ctx.state_hash());
    Ok(ExitCode::SUCCESS)
}

fn print_state(v: &view::StateView, hash: &str) {
    println!("state as of seq {} ({})", v.seq, v.at);
    println!(
        "  ledger {}, resolver v{} (seq {}), rules {}",
        v.ledger.id,
        v.ledger.resolver.value,
        v.ledger.resolver.seq,
        v.ledger.rules.as_ref().map_or("none".into(), |r| format!(
            "{} (seq {})",
            crate::record::to_hex(&r.value.0),
            r.seq
        ))
    );
    println!(
        "  skus {}, orders {}, agents {}, humans {}, admins {}",
        v.skus.len(),
        v.orders.len(),
        v.agents.len(),
        v.humans.len(),
        v.admins.len()
    );
    let escalated = v
        .open_intentions
        .iter()
        .filter(|i| i.status == crate::context::view::IntentionStatus::Escalated)
        .count();
    println!(
        "  open intentions {}, escalated {}, promotions {}, precedents {}",
        v.open_intentions.len(),
        escalated,
        v.promotions.len(),
        v.precedents.len()
    );
    let defs: Vec<String> = v
        .workflows
        .iter()
        .map(|w| format!("{} v{}", w.name, w.version))
        .collect();
    println!(
        "  workflows {}",
        if defs.is_empty() {
            "none".into()
        } else {
            defs.join(", ")
        }
    );
    print!("{}", runs_words(&v.runs));
    println!("  state hash {hash}");
}

/// Workflow runs: every one still running, then the latest ended ones.
fn runs_words(runs: &[RunView]) -> String {
    let mut out = String::new();
    let live = |r: &&RunView| matches!(r.status, RunPhase::Running | RunPhase::Compensating);
    let ended: Vec<&RunView> = runs.iter().filter(|r| !live(r)).collect();
    let skipped = ended.len().saturating_sub(ENDED_RUNS_SHOWN_MAX);
    for r in runs
        .iter()
        .filter(live)
        .chain(ended.iter().skip(skipped).copied())
    {
        let steps: Vec<String> = r
            .steps
            .iter()
            .map(|s| format!("{} {}", s.step, s.status))
            .collect();
        let _ = writeln!(
            out,
            "  run {}: {} v{} {} [{}]",
            r.run,
            r.workflow,
            r.version,
            r.status,
            steps.join(", ")
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            out,
            "  … and {skipped} earlier ended runs (`--json` lists every run; `parley state run:ID` shows one)"
        );
    }
    out
}

fn at(seq: u64) -> String {
    format!("(seq {seq})")
}

/// One entity in words: its fields, each with the record that wrote it,
/// then the open intentions on it.
pub(super) fn entity_words(v: &EntityView) -> String {
    let mut o = String::new();
    let open = match v {
        EntityView::Sku {
            sku,
            facts,
            promotions,
            open_intentions,
        } => {
            sku_words(&mut o, sku);
            facts_words(&mut o, facts);
            promotions_words(&mut o, promotions);
            open_intentions
        }
        EntityView::Category {
            skus,
            promotions,
            open_intentions,
            ..
        } => {
            let _ = writeln!(o, "  skus {}", skus.join(", "));
            promotions_words(&mut o, promotions);
            open_intentions
        }
        EntityView::Order {
            order,
            facts,
            open_intentions,
        } => {
            order_words(&mut o, order);
            facts_words(&mut o, facts);
            open_intentions
        }
        EntityView::Customer {
            orders,
            contacts,
            open_intentions,
            ..
        } => {
            customer_words(&mut o, orders, contacts);
            open_intentions
        }
        EntityView::Campaign {
            budget_minor,
            open_intentions,
            ..
        } => {
            let budget = budget_minor.as_ref().map_or("none".into(), |b| {
                format!("{} {}", render::money(b.value), at(b.seq))
            });
            let _ = writeln!(o, "  budget {budget}");
            open_intentions
        }
        EntityView::Other {
            facts,
            open_intentions,
            ..
        } => {
            facts_words(&mut o, facts);
            open_intentions
        }
        EntityView::Agent { agent } => {
            agent_words(&mut o, agent);
            return o;
        }
        EntityView::Human { human } => {
            let _ = writeln!(o, "  a human, registered {}", at(human.seq));
            return o;
        }
        EntityView::Run { run } => return runs_words(std::slice::from_ref(run)),
        EntityView::Intention { intention } => return intention_line(intention),
    };
    for i in open {
        o.push_str(&intention_line(i));
    }
    o
}

fn customer_words(o: &mut String, orders: &[String], contacts: &[ContactView]) {
    let list = if orders.is_empty() {
        "none".to_owned()
    } else {
        orders.join(", ")
    };
    let _ = writeln!(o, "  orders {list}");
    for c in contacts {
        let when = format_rfc3339(c.at.value);
        let seq = at(c.at.seq);
        let _ = writeln!(
            o,
            "  contacted about {} ({}) at {when} {seq}",
            c.order, c.topic
        );
    }
}

fn agent_words(o: &mut String, agent: &AgentView) {
    let seq = at(agent.seq);
    let _ = writeln!(
        o,
        "  domain {}, priority {} {seq}",
        agent.domain, agent.priority
    );
    for (kind, autonomy) in &agent.autonomy {
        let _ = writeln!(o, "  {kind}: {autonomy}");
    }
}

fn sku_words(o: &mut String, sku: &SkuView) {
    let _ = writeln!(
        o,
        "  category {} {}",
        sku.category.value,
        at(sku.category.seq)
    );
    let by = sku
        .price_by
        .map_or(String::new(), |i| format!(", set by intention #{i}"));
    let price = render::money(sku.price_minor.value);
    let _ = writeln!(o, "  price {price} {}{by}", at(sku.price_minor.seq));
    let cost = render::money(sku.cost_minor.value);
    let _ = writeln!(o, "  cost {cost} {}", at(sku.cost_minor.seq));
    let _ = writeln!(
        o,
        "  stock {} {}, reserved {}, on order {}",
        sku.stock.value,
        at(sku.stock.seq),
        sku.reserved.value,
        sku.on_order.value
    );
    let _ = writeln!(
        o,
        "  lifecycle {} {}",
        sku.lifecycle.value,
        at(sku.lifecycle.seq)
    );
    for (who, p) in &sku.competitor_prices {
        let _ = writeln!(
            o,
            "  competitor {who}: {} {}",
            render::money(p.value),
            at(p.seq)
        );
    }
}

fn order_words(o: &mut String, order: &OrderView) {
    let _ = writeln!(
        o,
        "  customer {} {}",
        order.customer.value,
        at(order.customer.seq)
    );
    let total = render::money(order.total_minor.value);
    let _ = writeln!(o, "  total {total} {}", at(order.total_minor.seq));
    if let Some(f) = &order.flagged {
        let _ = writeln!(o, "  flagged: {} {}", f.value, at(f.seq));
    }
    if let Some(d) = &order.delayed_days {
        let _ = writeln!(o, "  delayed {} days {}", d.value, at(d.seq));
    }
    for p in &order.perks {
        let perk = match p.value {
            Perk::FreeShipping => "free shipping".to_owned(),
            Perk::DiscountBp(bp) => format!("{} off", render::percent(i64::from(bp))),
        };
        let _ = writeln!(o, "  perk: {perk} {}", at(p.seq));
    }
}

fn facts_words(o: &mut String, facts: &[FactView]) {
    for f in facts {
        let _ = writeln!(
            o,
            "  {} = {} {}",
            f.attribute,
            f.value.value,
            at(f.value.seq)
        );
    }
}

fn promotions_words(o: &mut String, promotions: &[PromotionView]) {
    for p in promotions {
        let _ = writeln!(
            o,
            "  promotion {} off (intention #{}, until {})",
            render::percent(i64::from(p.discount_bp)),
            p.intention,
            format_rfc3339(p.ends_at_ms)
        );
    }
}

fn intention_line(i: &OpenIntentionView) -> String {
    let until = i
        .until_ms
        .map_or(String::new(), |t| format!(" until {}", format_rfc3339(t)));
    format!(
        "  intention #{} by {}: {} ({}{until})\n",
        i.seq,
        i.agent,
        render::action(&i.action),
        i.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, status: RunPhase) -> RunView {
        RunView {
            run: name.into(),
            workflow: "flash-sale-preparation".into(),
            version: 1,
            started_seq: 1,
            started_at_ms: 0,
            started_by: "merchandising".into(),
            status,
            finished_seq: None,
            steps: Vec::new(),
        }
    }

    #[test]
    fn live_runs_are_all_shown_and_ended_ones_bounded() {
        let mut runs: Vec<RunView> = (0..100)
            .map(|i| run(&format!("old-{i:03}"), RunPhase::Completed))
            .collect();
        runs.push(run("live", RunPhase::Running));
        let text = runs_words(&runs);
        assert_eq!(text.lines().count(), ENDED_RUNS_SHOWN_MAX + 2, "{text}");
        assert!(text.contains("run live:"));
        assert!(text.contains("run old-099:"), "the latest ended runs");
        assert!(!text.contains("run old-079:"));
        assert!(text.contains("80 earlier ended runs"), "{text}");
        let few = runs_words(&runs[95..]);
        assert_eq!(few.lines().count(), 6, "nothing counted when all fit");
    }
}
