//! What actually happened to the store: the actions that were carried out (all
//! of them without parley; only the approved ones with it), folded into the
//! failure figures the demo compares. Pure and deterministic.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::scenarios::Rng;
use super::store::HOUR_MS;
use crate::bounds::BP_PER_UNIT;
use crate::effect::{self, Change};
use crate::entity::EntityRef;
use crate::record::Body;
use crate::vocab::{Action, Lifecycle, Observed, PromotionTarget, StepRef};
use crate::workflow::{Definition, SHIPPED};

/// The figures the demo compares, named as in `--json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Sales at an effective price (after every discount) below cost.
    pub negative_margin_sales: u64,
    /// The margin those sales lost, in minor units.
    pub margin_lost_minor: i64,
    /// Customer messages repeating one already sent (same customer, order, topic).
    pub duplicate_messages: u64,
    /// Workflow steps acted on before the steps they depend on were done.
    pub out_of_order_steps: u64,
    /// Reorders of skus being discontinued.
    pub discontinued_reorders: u64,
    /// Perks offered on orders flagged for fraud.
    pub perks_on_flagged_orders: u64,
    /// Conflicts handed to a human.
    pub escalations: u64,
    /// Every simulated sale: units, revenue and margin at the effective
    /// price (the scorecard of the ledger reports the same, from outcome
    /// records).
    pub units_sold: i64,
    pub revenue_minor: i64,
    pub margin_minor: i64,
}

impl Figures {
    pub fn add(&mut self, o: &Figures) {
        self.negative_margin_sales += o.negative_margin_sales;
        self.margin_lost_minor += o.margin_lost_minor;
        self.duplicate_messages += o.duplicate_messages;
        self.out_of_order_steps += o.out_of_order_steps;
        self.discontinued_reorders += o.discontinued_reorders;
        self.perks_on_flagged_orders += o.perks_on_flagged_orders;
        self.escalations += o.escalations;
        self.units_sold += o.units_sold;
        self.revenue_minor += o.revenue_minor;
        self.margin_minor += o.margin_minor;
    }

    /// `self − before`, field by field (a scenario's share of a running total).
    pub fn since(&self, before: &Figures) -> Figures {
        Figures {
            negative_margin_sales: self.negative_margin_sales - before.negative_margin_sales,
            margin_lost_minor: self.margin_lost_minor - before.margin_lost_minor,
            duplicate_messages: self.duplicate_messages - before.duplicate_messages,
            out_of_order_steps: self.out_of_order_steps - before.out_of_order_steps,
            discontinued_reorders: self.discontinued_reorders - before.discontinued_reorders,
            perks_on_flagged_orders: self.perks_on_flagged_orders - before.perks_on_flagged_orders,
            escalations: self.escalations - before.escalations,
            units_sold: self.units_sold - before.units_sold,
            revenue_minor: self.revenue_minor - before.revenue_minor,
            margin_minor: self.margin_minor - before.margin_minor,
        }
    }
}

/// Something that happened, in time order.
#[derive(Clone, Debug)]
pub enum Event {
    /// A fact or report from the world.
    Fact(Body),
    /// An agent's action was carried out.
    Act {
        action: Action,
        step: Option<StepRef>,
    },
    /// A workflow step was reported done.
    StepDone(StepRef),
    /// A conflict went to a human.
    Escalated,
}

#[derive(Clone, Debug)]
struct SkuWorld {
    category: String,
    cost: i64,
    lifecycle: Lifecycle,
    /// (from ms, price).
    prices: Vec<(u64, i64)>,
    /// (from ms, increase bp).
    traffic: Vec<(u64, u32)>,
}

/// The store as the carried-out actions left it.
#[derive(Default)]
pub struct World {
    skus: BTreeMap<String, SkuWorld>,
    promotions: Vec<(PromotionTarget, u32, u64, u64)>,
    flagged: BTreeSet<String>,
    contacts: BTreeSet<(String, String, String)>,
    runs: BTreeMap<String, (Definition, BTreeSet<String>)>,
    out_of_order: BTreeSet<(String, String)>,
    pub figures: Figures,
    /// The simulated sales by (sku, UTC day): the outcome records the
    /// shoppers leave (`sales_records`).
    sales: BTreeMap<(String, u64), Sold>,
}

/// Sales of one sku over part of one day.
#[derive(Clone, Copy, Debug, Default)]
struct Sold {
    from_ms: u64,
    to_ms: u64,
    units: i64,
    revenue_minor: i64,
    margin_minor: i64,
}

/// One unit in this many sold is returned (the demo's shoppers).
pub const RETURN_EVERY_UNITS: i64 = 25;

/// One day, for the sales records.
const DAY_MS: u64 = 24 * HOUR_MS;

impl World {
    pub fn apply(&mut self, at_ms: u64, e: &Event) {
        match e {
            Event::Fact(body) => self.fact(at_ms, body),
            Event::Escalated => self.figures.escalations += 1,
            Event::StepDone(r) => {
                if let Some((_, done)) = self.runs.get_mut(&r.run) {
                    done.insert(r.step.clone());
                }
            }
            Event::Act { action, step } => {
                if let Some(r) = step {
                    let early = self.runs.get(&r.run).is_some_and(|(def, done)| {
                        def.step(&r.step)
                            .is_some_and(|(_, d)| d.depends_on.iter().any(|x| !done.contains(x)))
                    });
                    if early && self.out_of_order.insert((r.run.clone(), r.step.clone())) {
                        self.figures.out_of_order_steps += 1;
                    }
                }
                self.act(at_ms, action);
            }
        }
    }

    fn fact(&mut self, at_ms: u64, body: &Body) {
        match body {
            Body::Catalog {
                sku,
                category,
                cost_minor,
                price_minor,
                lifecycle,
                ..
            } => {
                self.skus.insert(
                    sku.clone(),
                    SkuWorld {
                        category: category.clone(),
                        cost: *cost_minor,
                        lifecycle: *lifecycle,
                        prices: vec![(at_ms, *price_minor)],
                        traffic: Vec::new(),
                    },
                );
            }
            Body::TrafficSpike { sku, increase_bp } => {
                if let Some(s) = self.skus.get_mut(sku) {
                    s.traffic.push((at_ms, *increase_bp));
                }
            }
            Body::OrderFlagged { order, .. } => {
                self.flagged.insert(order.clone());
            }
            Body::WorkflowStarted { run, workflow, .. } => {
                let def = SHIPPED
                    .iter()
                    .filter_map(|t| Definition::parse(t).ok())
                    .find(|d| &d.name == workflow);
                if let Some(def) = def {
                    self.runs.insert(run.clone(), (def, BTreeSet::new()));
                }
            }
            _ => {}
        }
    }

    /// An action carried out: its effects (`crate::effect`, the same the
    /// shared context applies), and the failures they reveal.
    fn act(&mut self, at_ms: u64, action: &Action) {
        for e in effect::of_action(action) {
            match (&e.entity, e.change) {
                (EntityRef::Sku(sku), Change::PriceMinor(p)) => {
                    if let Some(s) = self.skus.get_mut(sku) {
                        s.prices.push((at_ms, p));
                    }
                }
                (
                    _,
                    Change::Promotion {
                        target,
                        discount_bp,
                        starts_at_ms,
                        ends_at_ms,
                    },
                ) => self
                    .promotions
                    .push((target, discount_bp, starts_at_ms, ends_at_ms)),
                (EntityRef::Sku(sku), Change::AddOnOrder(_))
                    if self
                        .skus
                        .get(sku)
                        .is_some_and(|s| s.lifecycle != Lifecycle::Active) =>
                {
                    self.figures.discontinued_reorders += 1;
                }
                (EntityRef::Sku(sku), Change::Lifecycle(l)) => {
                    if let Some(s) = self.skus.get_mut(sku) {
                        s.lifecycle = l;
                    }
                }
                (EntityRef::Customer(c), Change::Contact { order, topic })
                    if !self
                        .contacts
                        .insert((c.clone(), order.clone(), topic.clone())) =>
                {
                    self.figures.duplicate_messages += 1;
                }
                (EntityRef::Order(order), Change::Perk(_)) if self.flagged.contains(order) => {
                    self.figures.perks_on_flagged_orders += 1;
                }
                _ => {}
            }
        }
    }

    /// Simulated sales, hour by hour over `[from, to)`: demand per sku and hour
    /// is drawn from the seed alone (so both runs see the same shoppers), rises
    /// with traffic spikes and doubles under a promotion. Counts the sales whose
    /// effective price is below cost, and the margin they lost.
    pub fn count_sales(&mut self, seed: u64, from_ms: u64, to_ms: u64) {
        let hours = (to_ms.saturating_sub(from_ms) / HOUR_MS).min(24 * 366);
        let mut sold = Vec::new();
        for (id, s) in &self.skus {
            let key = id
                .bytes()
                .fold(seed, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
            for h in 0..hours {
                let t = from_ms + h * HOUR_MS + HOUR_MS / 2;
                let price = s
                    .prices
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= t)
                    .map_or(0, |p| p.1);
                let discount = self
                    .promotions
                    .iter()
                    .filter(|(target, _, start, end)| {
                        *start <= t && t < *end && covers(target, id, &s.category)
                    })
                    .map(|p| p.1)
                    .max()
                    .unwrap_or(0);
                let traffic = s
                    .traffic
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= t)
                    .map_or(0, |x| x.1);
                let base = Rng(key ^ h.wrapping_mul(0x2545_F491_4F6C_DD1D)).below(3);
                let demand = base * (BP_PER_UNIT as u64 + u64::from(traffic)) / BP_PER_UNIT as u64
                    * if discount > 0 { 2 } else { 1 };
                let effective = effect::effective_price(price, discount);
                let n = i64::try_from(demand).unwrap_or(i64::MAX);
                if effective < s.cost && demand > 0 {
                    self.figures.negative_margin_sales += demand;
                    self.figures.margin_lost_minor += n * (s.cost - effective);
                }
                let hour = (from_ms + h * HOUR_MS, from_ms + (h + 1) * HOUR_MS);
                sold.push((id.clone(), hour, n, n * effective, n * (effective - s.cost)));
            }
        }
        for (sku, (from, to), units, revenue, margin) in sold {
            self.figures.units_sold += units;
            self.figures.revenue_minor += revenue;
            self.figures.margin_minor += margin;
            let day = self.sales.entry((sku, from / DAY_MS)).or_insert(Sold {
                from_ms: from,
                ..Sold::default()
            });
            day.from_ms = day.from_ms.min(from);
            day.to_ms = day.to_ms.max(to);
            day.units += units;
            day.revenue_minor += revenue;
            day.margin_minor += margin;
        }
    }

    /// The shoppers' sales as outcome records, one per sku and day sold in
    /// (days with no sale leave none), each followed by its returns (one
    /// unit in [`RETURN_EVERY_UNITS`], refunded at the day's average
    /// price), in time order.
    pub fn sales_records(&self) -> Vec<(u64, Observed)> {
        let mut out: Vec<(u64, Observed)> = Vec::new();
        for ((sku, _), s) in self.sales.iter().filter(|(_, s)| s.units > 0) {
            out.push((
                s.to_ms,
                Observed::Sales {
                    sku: sku.clone(),
                    from_ms: s.from_ms,
                    to_ms: s.to_ms,
                    units: s.units,
                    revenue_minor: s.revenue_minor,
                    margin_minor: s.margin_minor,
                },
            ));
            let returned = s.units / RETURN_EVERY_UNITS;
            if returned > 0 {
                let refund = s.revenue_minor / s.units * returned;
                let o = Observed::Refund {
                    sku: sku.clone(),
                    order: None,
                    units: returned,
                    refund_minor: refund,
                };
                out.push((s.to_ms, o));
            }
        }
        // Stable: each refund stays after its sales.
        out.sort_by_key(|(to, _)| *to);
        out
    }
}

fn covers(target: &PromotionTarget, sku: &str, category: &str) -> bool {
    match target {
        PromotionTarget::Skus(s) => s.iter().any(|x| x == sku),
        PromotionTarget::Category(c) => c == category,
    }
}
