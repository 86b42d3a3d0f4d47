//! `parley simulate`: a large, realistic ledger for benchmarks and audits at
//! scale. Many skus and the seed's agents: competitor moves, price changes
//! (some big enough for a human), promotions (some stacking), reorders,
//! notifications (some duplicated), perks (some on flagged orders), flash-sale
//! workflow runs, and a human who settles most escalations (the rest expire).
//! Commands go through the sequencer like any agent's, pipelined in rounds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::scenarios::Rng;
use super::store::{HUMAN, T0_MS};
use crate::command::{Command, CommandEnvelope};
use crate::entity::EntityRef;
use crate::ledger::Ticket;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{
    Action, Impact, Intention, Lifecycle, Objective, Outcome, Perk, PromotionTarget, StepRef,
};

/// Commands submitted before their acknowledgements are collected.
const ROUND: usize = 2_048;
/// Ledger time between two commands.
const STEP_MS: u64 = 1_000;

/// What a simulation wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimReport {
    pub records: u64,
    pub commands: u64,
    pub refused: u64,
    pub escalations_resolved: u64,
    pub workflow_runs: u64,
}

struct Gen {
    rng: Rng,
    at: u64,
    skus: Vec<SimSku>,
    orders: u64,
    runs: u64,
}

fn intend(
    action: Action,
    why: &str,
    revenue: i64,
    objective: Objective,
    step: Option<StepRef>,
) -> Body {
    Body::Intend {
        intention: Box::new(Intention {
            action,
            reasoning: why.into(),
            impact: Impact {
                revenue_minor: revenue,
                margin_minor: revenue / 4,
            },
            objective,
            expires_at_ms: None,
            workflow_step: step,
        }),
    }
}

impl Gen {
    fn sku(&mut self) -> SimSku {
        let i = usize::try_from(self.rng.below(self.skus.len() as u64)).unwrap_or(0);
        self.skus[i].clone()
    }

    /// The next few commands: one store event and the agents' reactions.
    fn next(&mut self, out: &mut Vec<(String, Body)>) {
        let (sku, category, cost, price) = self.sku();
        let objective = [
            Objective::SalesGrowth,
            Objective::MarginProtection,
            Objective::CustomerExperience,
        ][usize::try_from(self.rng.below(3)).unwrap_or(0)];
        match self.rng.below(100) {
            0..=19 => self.competitor_cut(out, sku, cost, price, objective),
            20..=21 => self.promotion(out, sku, category),
            22..=44 => self.restock(out, sku),
            45..=69 => self.order(out, price),
            70..=71 => out.push((
                "merchandising".into(),
                intend(
                    Action::Discontinue { sku },
                    "slow seller",
                    -10_000,
                    Objective::CostOptimisation,
                    None,
                ),
            )),
            72..=73 => self.flash_sale(out, &sku),
            _ => self.traffic(out, sku, price),
        }
    }

    fn competitor_cut(
        &mut self,
        out: &mut Vec<(String, Body)>,
        sku: String,
        cost: i64,
        price: i64,
        objective: Objective,
    ) {
        let cut = price * (85 + i64::try_from(self.rng.below(10)).unwrap_or(0)) / 100;
        out.push((
            "competitor-tracking".into(),
            Body::CompetitorPrice {
                sku: sku.clone(),
                competitor: "rival".into(),
                price_minor: cut,
            },
        ));
        let units = 1 + i64::try_from(self.rng.below(400)).unwrap_or(0);
        let agent = if self.rng.below(4) == 0 {
            "merchandising"
        } else {
            "pricing"
        };
        out.push((
            agent.into(),
            intend(
                Action::SetPrice {
                    sku,
                    price_minor: cut.max(cost + 1),
                },
                "match the rival",
                (cut - price) * units,
                objective,
                None,
            ),
        ));
    }

    fn promotion(&mut self, out: &mut Vec<(String, Body)>, sku: String, category: String) {
        let now = self.at;
        let target = if self.rng.below(2) == 0 {
            PromotionTarget::Skus(vec![sku])
        } else {
            PromotionTarget::Category(category)
        };
        let d = 500 + 500 * u32::try_from(self.rng.below(4)).unwrap_or(0);
        out.push((
            "marketing".into(),
            intend(
                Action::LaunchPromotion {
                    target,
                    discount_bp: d,
                    starts_at_ms: now + 3_600_000,
                    ends_at_ms: now + 24 * 3_600_000,
                },
                "weekend promotion",
                200_000,
                Objective::SalesGrowth,
                None,
            ),
        ));
    }

    fn restock(&mut self, out: &mut Vec<(String, Body)>, sku: String) {
        let stock = i64::try_from(self.rng.below(50)).unwrap_or(0);
        out.push((
            "inventory".into(),
            Body::StockChanged {
                sku: sku.clone(),
                stock,
            },
        ));
        out.push((
            "inventory".into(),
            intend(
                Action::Reorder { sku, quantity: 100 },
                "stock below the reorder point",
                50_000,
                Objective::SalesGrowth,
                None,
            ),
        ));
    }

    fn order(&mut self, out: &mut Vec<(String, Body)>, price: i64) {
        self.orders += 1;
        let (o, c) = (
            format!("O-{}", self.orders),
            format!("C-{}", self.rng.below(50_000)),
        );
        out.push((
            "orders".into(),
            Body::OrderPlaced {
                order: o.clone(),
                customer: c.clone(),
                total_minor: price,
            },
        ));
        if self.rng.below(10) < 3 {
            self.delay(out, o, c);
        }
    }

    /// A delayed order: both agents want to tell the customer; perhaps fraud.
    fn delay(&mut self, out: &mut Vec<(String, Body)>, o: String, c: String) {
        out.push((
            "orders".into(),
            Body::OrderDelayed {
                order: o.clone(),
                days: 3,
            },
        ));
        let n = Action::NotifyCustomer {
            customer: c,
            order: o.clone(),
            topic: "delay".into(),
        };
        out.push((
            "customer-service".into(),
            intend(
                n.clone(),
                "tell the customer",
                0,
                Objective::CustomerExperience,
                None,
            ),
        ));
        out.push((
            "orders".into(),
            intend(n, "delay detected", 0, Objective::CustomerExperience, None),
        ));
        if self.rng.below(3) == 0 {
            out.push((
                "fraud".into(),
                Body::OrderFlagged {
                    order: o.clone(),
                    reason: "velocity".into(),
                },
            ));
        }
        out.push((
            "customer-service".into(),
            intend(
                Action::OfferPerk {
                    order: o,
                    perk: Perk::FreeShipping,
                },
                "sorry for the wait",
                -500,
                Objective::CustomerExperience,
                None,
            ),
        ));
    }

    fn traffic(&mut self, out: &mut Vec<(String, Body)>, sku: String, price: i64) {
        out.push((
            "competitor-tracking".into(),
            Body::TrafficSpike {
                sku: sku.clone(),
                increase_bp: 1_000 * u32::try_from(self.rng.below(50)).unwrap_or(0),
            },
        ));
        out.push((
            "pricing".into(),
            intend(
                Action::SetPrice {
                    sku,
                    price_minor: price + price / 20,
                },
                "demand is up",
                price / 20 * 50,
                Objective::MarginProtection,
                None,
            ),
        ));
    }

    /// A flash-sale run, each owner acting in order and reporting its step.
    fn flash_sale(&mut self, out: &mut Vec<(String, Body)>, sku: &str) {
        self.runs += 1;
        let run = format!("flash-{}", self.runs);
        let mut params = BTreeMap::new();
        params.insert("skus".to_owned(), Value::Text(sku.into()));
        out.push((
            "marketing".into(),
            Body::WorkflowStarted {
                run: run.clone(),
                workflow: "flash-sale-preparation".into(),
                version: 1,
                params,
            },
        ));
        let step = |s: &str| {
            Some(StepRef {
                run: run.clone(),
                step: s.into(),
            })
        };
        let steps: [(&str, &str, Action); 4] = [
            (
                "inventory",
                "verify-inventory",
                Action::ReserveStock {
                    sku: sku.into(),
                    quantity: 20,
                },
            ),
            (
                "pricing",
                "update-prices",
                Action::Generic {
                    entity: EntityRef::Sku(sku.into()),
                    attribute: "sale_price".into(),
                    value: Value::Bool(true),
                },
            ),
            (
                "customer-service",
                "prepare-support-answers",
                Action::Generic {
                    entity: EntityRef::Campaign(run.clone()),
                    attribute: "faq".into(),
                    value: Value::Bool(true),
                },
            ),
            (
                "marketing",
                "queue-marketing-emails",
                Action::Generic {
                    entity: EntityRef::Campaign(run.clone()),
                    attribute: "emails".into(),
                    value: Value::Bool(true),
                },
            ),
        ];
        for (agent, name, action) in steps {
            out.push((
                agent.into(),
                intend(
                    action,
                    "my part of the flash sale",
                    0,
                    Objective::SalesGrowth,
                    step(name),
                ),
            ));
            out.push((
                agent.into(),
                Body::StepCompleted {
                    run: run.clone(),
                    step: name.into(),
                    note: String::new(),
                },
            ));
        }
    }
}

/// A sku as the generator sees it: (id, category, cost, price).
type SimSku = (String, String, i64, i64);

fn setup(skus: usize) -> (Vec<(String, Body)>, Vec<SimSku>) {
    let mut out = super::store::people();
    let mut list = Vec::new();
    for i in 0..skus {
        let id = format!("SKU-{i:06}");
        let category = format!("cat-{:02}", i % 20);
        let price = 1_000 + i64::try_from(i % 97).unwrap_or(0) * 500;
        let cost = price * 72 / 100;
        out.push((
            "merchandising".into(),
            Body::Catalog {
                sku: id.clone(),
                category: category.clone(),
                cost_minor: cost,
                price_minor: price,
                stock: 100,
                lifecycle: Lifecycle::Active,
            },
        ));
        list.push((id, category, cost, price));
    }
    (out, list)
}

/// Writes a ledger of at least `records` records into the new directory `dir`.
pub fn simulate(
    dir: &Path,
    seed: u64,
    records: u64,
    skus: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<SimReport> {
    simulate_at(dir, seed, records, skus, crate::resolver::CURRENT, progress)
}

/// [`simulate`] on a ledger that starts with resolver `version`.
pub fn simulate_at(
    dir: &Path,
    seed: u64,
    records: u64,
    skus: usize,
    version: u32,
    progress: &mut dyn FnMut(u64),
) -> Result<SimReport> {
    if skus == 0 || skus > 10_000_000 {
        bail!("--skus must be from 1 to 10000000");
    }
    let ledger = super::store::new_ledger_at(dir, version)?;
    let (first, list) = setup(skus);
    let mut gen = Gen {
        rng: Rng(seed),
        at: T0_MS,
        skus: list,
        orders: 0,
        runs: 0,
    };
    let mut report = SimReport {
        records: 0,
        commands: 0,
        refused: 0,
        escalations_resolved: 0,
        workflow_runs: 0,
    };
    let mut pending: Vec<(String, Body)> = first;
    let mut escalated: Vec<u64> = Vec::new();
    loop {
        let head = ledger.head().map_or(0, |h| h.seq);
        progress(head);
        if head >= records {
            break;
        }
        // The human settles most of the last round's escalations; the rest expire.
        for (i, seq) in escalated.drain(..).enumerate() {
            if i % 4 != 3 {
                let option = u32::try_from(i % 2).unwrap_or(0);
                pending.push((
                    HUMAN.into(),
                    Body::HumanResolution {
                        intention: seq,
                        option,
                        rationale: "settled in the daily review".into(),
                    },
                ));
                report.escalations_resolved += 1;
            }
        }
        while pending.len() < ROUND {
            gen.next(&mut pending);
        }
        let mut tickets: Vec<Ticket> = Vec::with_capacity(pending.len());
        for (producer, body) in pending.drain(..) {
            gen.at += STEP_MS;
            let cmd = Command {
                envelope: CommandEnvelope {
                    producer,
                    at_ms: Some(gen.at),
                    ..CommandEnvelope::default()
                },
                body,
            };
            tickets.push(ledger.submit(cmd)?);
        }
        for t in tickets {
            report.commands += 1;
            match t.wait() {
                Ok(ack) => {
                    if let Some((_, d)) = ack.decision() {
                        if matches!(d.outcome, Outcome::Escalated { .. }) {
                            escalated.push(d.intention);
                        }
                    }
                }
                Err(crate::sequencer::AppendError::Refused(_)) => report.refused += 1,
                Err(e) => return Err(e).context("simulate"),
            }
        }
    }
    report.records = ledger.head().map_or(0, |h| h.seq);
    report.workflow_runs = gen.runs;
    ledger.close()?;
    Ok(report)
}
