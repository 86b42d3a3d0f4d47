//! The seed's scenarios as timed beats: world events, and what each simulated
//! agent announces, when, and why. The agents decide from the facts they see
//! (competitor prices, traffic, delays, stock), each in its own domain and at
//! its own pace (seeded jitter); none of them looks at another's plans. The
//! same beats run through parley and, for the comparison, without it.

use std::collections::BTreeMap;

use super::store::{catalog, Sku, HOUR_MS, MINUTE_MS, T0_MS};
use crate::record::Body;
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::{Action, Impact, Intention, Objective, Perk, PromotionTarget, StepRef};

/// Every scenario, in the order `all` runs them.
pub const NAMES: [&str; 7] = [
    "conflict",
    "redundancy",
    "sequencing",
    "price-war",
    "viral",
    "supply-delay",
    "flash-sale",
];

/// Each scenario has this much ledger time to itself.
pub const WINDOW_MS: u64 = 4 * 24 * HOUR_MS;

/// One moment of a scenario: who says what.
#[derive(Clone, Debug)]
pub struct Beat {
    pub at_ms: u64,
    pub producer: String,
    pub body: Body,
}

/// A scenario: its beats, and the window its sales are counted over.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub beats: Vec<Beat>,
}

/// A small deterministic generator (splitmix64) for jitter and demand.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

struct B<'a> {
    start: u64,
    rng: &'a mut Rng,
    beats: Vec<Beat>,
    skus: BTreeMap<String, Sku>,
}

fn intention(
    action: Action,
    why: &str,
    revenue: i64,
    margin: i64,
    objective: Objective,
) -> Intention {
    Intention {
        action,
        reasoning: why.into(),
        impact: Impact {
            revenue_minor: revenue,
            margin_minor: margin,
        },
        objective,
        expires_at_ms: None,
        workflow_step: None,
    }
}

fn generic(entity: EntityRef, attribute: &str, value: Value) -> Action {
    Action::Generic {
        entity,
        attribute: attribute.into(),
        value,
    }
}

impl B<'_> {
    /// `minutes` after the start, plus up to `jitter` more minutes.
    fn at(&mut self, minutes: u64, jitter: u64) -> u64 {
        self.start + (minutes + self.rng.below(jitter + 1)) * MINUTE_MS
    }
    fn say(&mut self, at_ms: u64, producer: &str, body: Body) {
        self.beats.push(Beat {
            at_ms,
            producer: producer.into(),
            body,
        });
    }
    fn intend(&mut self, at_ms: u64, agent: &str, i: Intention) {
        self.say(
            at_ms,
            agent,
            Body::Intend {
                intention: Box::new(i),
            },
        );
    }
    fn step_intend(&mut self, at_ms: u64, agent: &str, mut i: Intention, run: &str, step: &str) {
        i.workflow_step = Some(StepRef {
            run: run.into(),
            step: step.into(),
        });
        self.intend(at_ms, agent, i);
    }
    fn price(&self, sku: &str) -> i64 {
        self.skus.get(sku).map_or(0, |s| s.price_minor)
    }
    fn start_run(&mut self, at_ms: u64, run: &str, workflow: &str, param: (&str, &str)) {
        let mut params = BTreeMap::new();
        params.insert(param.0.to_owned(), Value::Text(param.1.into()));
        self.say(
            at_ms,
            "marketing",
            Body::WorkflowStarted {
                run: run.into(),
                workflow: workflow.into(),
                version: 1,
                params,
            },
        );
    }
}

/// Builds scenario `name` as the `index`-th of the run, with the seed's jitter.
pub fn build(name: &str, index: u64, rng: &mut Rng) -> Option<Scenario> {
    let start = T0_MS + HOUR_MS + index * WINDOW_MS;
    let mut b = B {
        start,
        rng,
        beats: Vec::new(),
        skus: catalog().into_iter().map(|s| (s.id.clone(), s)).collect(),
    };
    let title = match name {
        "conflict" => {
            conflict(&mut b);
            "price match meets a planned promotion (the seed's conflict problem)"
        }
        "redundancy" => {
            redundancy(&mut b);
            "two agents message one customer about one delay (the redundancy problem)"
        }
        "sequencing" => {
            sequencing(&mut b);
            "a sale email before its price is live (the sequencing problem)"
        }
        "price-war" => {
            price_war(&mut b);
            "a competitor cuts a category 15 %"
        }
        "viral" => {
            viral(&mut b);
            "a viral product: traffic +500 %, stock running out"
        }
        "supply-delay" => {
            supply_delay(&mut b);
            "a supplier's 3-week delay on 15 products"
        }
        "flash-sale" => {
            flash_sale(&mut b);
            "flash-sale preparation, the workflow"
        }
        _ => return None,
    };
    let mut beats = b.beats;
    // The store's end-of-window heartbeat: time reaches the window's end.
    let end = start + WINDOW_MS - HOUR_MS;
    beats.push(Beat {
        at_ms: end,
        producer: "scheduler".into(),
        body: Body::Clock,
    });
    beats.sort_by_key(|x| x.at_ms);
    Some(Scenario {
        name: NAMES.iter().find(|n| **n == name)?,
        title,
        start_ms: start,
        end_ms: end,
        beats,
    })
}

fn conflict(b: &mut B) {
    let (sku, cut) = ("E2", b.price("E2") * 90 / 100);
    let t = b.at(0, 0);
    b.say(
        t,
        "competitor-tracking",
        Body::CompetitorPrice {
            sku: sku.into(),
            competitor: "rival".into(),
            price_minor: cut,
        },
    );
    let t = b.at(10, 20);
    let i = intention(
        Action::SetPrice {
            sku: sku.into(),
            price_minor: cut,
        },
        "rival cut E2 by 10 %; match it to hold share",
        (cut - b.price(sku)) * 80,
        (cut - b.price(sku)) * 80,
        Objective::SalesGrowth,
    );
    b.intend(t, "pricing", i);
    let t = b.at(40, 20);
    let (s, e) = (b.start + 24 * HOUR_MS, b.start + 72 * HOUR_MS);
    let i = intention(
        Action::LaunchPromotion {
            target: PromotionTarget::Category("earbuds".into()),
            discount_bp: 1500,
            starts_at_ms: s,
            ends_at_ms: e,
        },
        "earbuds weekend: 15 % off the category from tomorrow",
        300_000,
        60_000,
        Objective::SalesGrowth,
    );
    b.intend(t, "marketing", i);
}

fn redundancy(b: &mut B) {
    let n = 3 + b.rng.below(3);
    for k in 1..=n {
        let (o, c) = (format!("O-R{k}"), format!("C-R{k}"));
        let t = b.at(0, 30);
        b.say(
            t,
            "orders",
            Body::OrderPlaced {
                order: o.clone(),
                customer: c.clone(),
                total_minor: 4999,
            },
        );
        b.say(
            b.start + HOUR_MS,
            "orders",
            Body::OrderDelayed {
                order: o.clone(),
                days: 4,
            },
        );
        let notify = Action::NotifyCustomer {
            customer: c,
            order: o,
            topic: "delay".into(),
        };
        let t = b.at(65, 10);
        b.intend(
            t,
            "customer-service",
            intention(
                notify.clone(),
                "proactive update: the order is late",
                0,
                0,
                Objective::CustomerExperience,
            ),
        );
        let t = b.at(65, 10);
        b.intend(
            t,
            "orders",
            intention(
                notify,
                "delay detected on the order; tell the customer",
                0,
                0,
                Objective::CustomerExperience,
            ),
        );
    }
}

/// The flash-sale steps, each agent at its own pace: (agent, step, minutes after the start).
fn flash_steps(b: &mut B, run: &str, skus: &[&str], cut_pct: i64, pace: [u64; 4]) {
    let [emails, prices, answers, verify] = pace;
    let t = b.at(emails, 5);
    b.step_intend(
        t,
        "marketing",
        intention(
            generic(
                EntityRef::Campaign(run.into()),
                "emails_queued",
                Value::Bool(true),
            ),
            "the sale email is written; queue it",
            0,
            0,
            Objective::SalesGrowth,
        ),
        run,
        "queue-marketing-emails",
    );
    for sku in skus {
        let t = b.at(prices, 5);
        let (old, units) = (b.price(sku), 40 + 160 * i64::from(b.price(sku) > 15_000));
        let new = old * (100 - cut_pct) / 100;
        let i = intention(
            Action::SetPrice {
                sku: (*sku).into(),
                price_minor: new,
            },
            "flash-sale price",
            (new - old) * units,
            (new - old) * units / 2,
            Objective::SalesGrowth,
        );
        b.step_intend(t, "pricing", i, run, "update-prices");
    }
    let t = b.at(answers, 5);
    b.step_intend(
        t,
        "customer-service",
        intention(
            generic(
                EntityRef::Campaign(run.into()),
                "support_answers",
                Value::Text("sale FAQ".into()),
            ),
            "answers for sale questions are drafted",
            0,
            0,
            Objective::CustomerExperience,
        ),
        run,
        "prepare-support-answers",
    );
    for sku in skus {
        let t = b.at(verify, 5);
        let i = intention(
            Action::ReserveStock {
                sku: (*sku).into(),
                quantity: 50,
            },
            "stock counted; hold 50 for the sale",
            0,
            0,
            Objective::CustomerExperience,
        );
        b.step_intend(t, "inventory", i, run, "verify-inventory");
    }
}

fn sequencing(b: &mut B) {
    let t = b.at(0, 0);
    b.start_run(t, "sale-c6", "flash-sale-preparation", ("skus", "C6"));
    flash_steps(b, "sale-c6", &["C6"], 15, [5, 15, 25, 35]);
}

fn flash_sale(b: &mut B) {
    let t = b.at(0, 0);
    b.start_run(
        t,
        "sale-hp",
        "flash-sale-preparation",
        ("skus", "H1,H2,H3,H4"),
    );
    flash_steps(b, "sale-hp", &["H1", "H2", "H3", "H4"], 20, [2, 5, 20, 10]);
}

fn price_war(b: &mut B) {
    let (s, e) = (b.start + 12 * HOUR_MS, b.start + 60 * HOUR_MS);
    let i = intention(
        Action::LaunchPromotion {
            target: PromotionTarget::Category("speakers".into()),
            discount_bp: 1000,
            starts_at_ms: s,
            ends_at_ms: e,
        },
        "speaker weekend: 10 % off, planned last week",
        400_000,
        80_000,
        Objective::SalesGrowth,
    );
    let t = b.at(0, 0);
    b.intend(t, "marketing", i);
    let speakers: Vec<String> = b
        .skus
        .values()
        .filter(|s| s.category == "speakers")
        .map(|s| s.id.clone())
        .collect();
    let t = b.at(120, 0);
    let mut detail = BTreeMap::new();
    detail.insert("cut_bp".to_owned(), Value::Int(1500));
    b.say(
        t,
        "competitor-tracking",
        Body::Broadcast {
            topic: "competitor_category_cut".into(),
            entity: Some(EntityRef::Category("speakers".into())),
            detail,
        },
    );
    for sku in &speakers {
        let cut = b.price(sku) * 85 / 100;
        b.say(
            t,
            "competitor-tracking",
            Body::CompetitorPrice {
                sku: sku.clone(),
                competitor: "rival".into(),
                price_minor: cut,
            },
        );
        let units = if b.price(sku) > 20_000 { 200 } else { 40 };
        let at = b.at(130, 20);
        let i = intention(
            Action::SetPrice {
                sku: sku.clone(),
                price_minor: cut,
            },
            "rival cut speakers 15 %; match it",
            (cut - b.price(sku)) * units,
            (cut - b.price(sku)) * units,
            Objective::SalesGrowth,
        );
        b.intend(at, "pricing", i);
    }
}

fn viral(b: &mut B) {
    let t = b.at(0, 0);
    b.intend(
        t,
        "merchandising",
        intention(
            Action::Discontinue { sku: "W1".into() },
            "W1 is replaced next season by W1-pro",
            -20_000,
            -5_000,
            Objective::CostOptimisation,
        ),
    );
    let t = b.at(180, 0);
    b.say(
        t,
        "marketing",
        Body::TrafficSpike {
            sku: "W1".into(),
            increase_bp: 50_000,
        },
    );
    b.say(
        t,
        "inventory",
        Body::StockChanged {
            sku: "W1".into(),
            stock: 40,
        },
    );
    let at = b.at(185, 10);
    b.intend(
        at,
        "inventory",
        intention(
            Action::Reorder {
                sku: "W1".into(),
                quantity: 600,
            },
            "traffic +500 % and 40 left: reorder 600",
            300_000,
            100_000,
            Objective::SalesGrowth,
        ),
    );
    let at = b.at(185, 10);
    let up = b.price("W1") * 110 / 100;
    b.intend(
        at,
        "pricing",
        intention(
            Action::SetPrice {
                sku: "W1".into(),
                price_minor: up,
            },
            "demand far above stock: +10 %",
            60_000,
            60_000,
            Objective::MarginProtection,
        ),
    );
    let at = b.at(185, 10);
    b.intend(
        at,
        "marketing",
        intention(
            Action::ChangeAdBudget {
                campaign: "w1-social".into(),
                budget_minor: 150_000,
            },
            "ride the wave: more social spend",
            200_000,
            50_000,
            Objective::SalesGrowth,
        ),
    );
    let n = 3 + b.rng.below(3);
    for k in 1..=n {
        let (o, c) = (format!("O-V{k}"), format!("C-V{k}"));
        let at = b.at(190, 20);
        b.say(
            at,
            "orders",
            Body::OrderPlaced {
                order: o.clone(),
                customer: c,
                total_minor: 19_999,
            },
        );
        if k == n {
            let at = b.at(225, 0);
            b.say(
                at,
                "fraud",
                Body::OrderFlagged {
                    order: o.clone(),
                    reason: "20 units to a freight forwarder from a new account".into(),
                },
            );
        }
        let at = b.at(240, 0);
        b.say(
            at,
            "orders",
            Body::OrderDelayed {
                order: o.clone(),
                days: 5,
            },
        );
        let at = b.at(250, 15);
        b.intend(
            at,
            "customer-service",
            intention(
                Action::OfferPerk {
                    order: o,
                    perk: Perk::FreeShipping,
                },
                "sorry for the wait: free shipping",
                -500,
                -500,
                Objective::CustomerExperience,
            ),
        );
    }
}

fn supply_delay(b: &mut B) {
    let affected: Vec<String> = ["C", "H"]
        .iter()
        .flat_map(|p| (1..=6).map(move |i| format!("{p}{i}")))
        .chain((4..=6).map(|i| format!("W{i}")))
        .collect();
    let n = 4 + b.rng.below(3);
    for k in 1..=n {
        let (o, c) = (format!("O-D{k}"), format!("C-D{k}"));
        let t = b.at(0, 30);
        b.say(
            t,
            "orders",
            Body::OrderPlaced {
                order: o,
                customer: c,
                total_minor: 29_999,
            },
        );
    }
    let t = b.at(60, 0);
    b.say(
        t,
        "supply",
        Body::SupplierDelay {
            supplier: "acme".into(),
            skus: affected,
            days: 21,
        },
    );
    b.start_run(
        t,
        "acme-delay",
        "supplier-delay-response",
        ("supplier", "acme"),
    );
    for k in 1..=n {
        let (o, c) = (format!("O-D{k}"), format!("C-D{k}"));
        b.say(
            t,
            "orders",
            Body::OrderDelayed {
                order: o.clone(),
                days: 21,
            },
        );
        let notify = Action::NotifyCustomer {
            customer: c,
            order: o,
            topic: "delay".into(),
        };
        let at = b.at(65, 5);
        b.step_intend(
            at,
            "customer-service",
            intention(
                notify.clone(),
                "the supplier is 3 weeks late: tell the customer",
                0,
                0,
                Objective::CustomerExperience,
            ),
            "acme-delay",
            "notify-customers",
        );
        let at = b.at(72, 5);
        b.intend(
            at,
            "orders",
            intention(
                notify,
                "the order will miss its date; notify the customer",
                0,
                0,
                Objective::CustomerExperience,
            ),
        );
    }
    let at = b.at(90, 10);
    b.step_intend(
        at,
        "marketing",
        intention(
            Action::ChangeAdBudget {
                campaign: "acme-skus".into(),
                budget_minor: 0,
            },
            "stop paying for traffic to skus that cannot ship",
            0,
            20_000,
            Objective::CostOptimisation,
        ),
        "acme-delay",
        "pause-ads",
    );
    let at = b.at(110, 10);
    b.step_intend(
        at,
        "marketing",
        intention(
            generic(
                EntityRef::Campaign("acme-skus".into()),
                "promotions",
                Value::Text("paused".into()),
            ),
            "no promotion on delayed skus",
            0,
            0,
            Objective::CustomerExperience,
        ),
        "acme-delay",
        "adjust-promotions",
    );
}
