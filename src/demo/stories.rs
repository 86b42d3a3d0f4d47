//! The seed's scenarios, one function each: what happens in the store and
//! what each agent announces. Every agent decides from the facts it sees,
//! at its own pace (the seed's jitter).

use std::collections::BTreeMap;

use super::scenarios::{generic, intention, Beat, Rng, Scenario, B, WINDOW_MS};
use super::store::{catalog, HOUR_MS, T0_MS};
use crate::entity::EntityRef;
use crate::record::Body;
use crate::value::Value;
use crate::vocab::{Action, Objective, Perk, PromotionTarget};

pub(super) fn conflict(b: &mut B) {
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

pub(super) fn redundancy(b: &mut B) {
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

pub(super) fn sequencing(b: &mut B) {
    let t = b.at(0, 0);
    b.start_run(t, "sale-c6", "flash-sale-preparation", ("skus", "C6"));
    flash_steps(b, "sale-c6", &["C6"], 15, [5, 15, 25, 35]);
}

pub(super) fn flash_sale(b: &mut B) {
    let t = b.at(0, 0);
    b.start_run(
        t,
        "sale-hp",
        "flash-sale-preparation",
        ("skus", "H1,H2,H3,H4"),
    );
    flash_steps(b, "sale-hp", &["H1", "H2", "H3", "H4"], 20, [2, 5, 20, 10]);
}

pub(super) fn price_war(b: &mut B) {
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
    // S3's brand has a minimum advertised price of 90 % of its list price:
    // the store's own guard (`map-price-floor`) refuses a deeper cut.
    let floor = b.price("S3") * 90 / 100;
    b.say(
        t,
        "merchandising",
        Body::Fact {
            entity: EntityRef::Sku("S3".into()),
            attribute: "map_price_minor".into(),
            value: Value::Int(floor),
        },
    );
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

pub(super) fn viral(b: &mut B) {
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
    viral_reactions(b);
    viral_orders(b);
}

/// Each agent reacts to the spike in its own domain, unaware of the others.
fn viral_reactions(b: &mut B) {
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
}

/// Orders pour in; one looks like fraud; all of them are late.
fn viral_orders(b: &mut B) {
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

pub(super) fn supply_delay(b: &mut B) {
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
    supply_delay_notices(b, t, n);
    supply_delay_marketing(b);
}

/// Every delayed order: customer service (the workflow's step) and orders
/// (on its own) both want to tell the customer.
fn supply_delay_notices(b: &mut B, t: u64, n: u64) {
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
}

/// Marketing's steps: pause the ads, then the promotions.
fn supply_delay_marketing(b: &mut B) {
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

/// Builds scenario `name` as the `index`-th of the run, with the seed's jitter.
pub(super) fn build(name: &str, index: u64, rng: &mut Rng) -> Option<Scenario> {
    let start = T0_MS + HOUR_MS + index * WINDOW_MS;
    let mut b = B::new(start, rng, catalog());
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
    let mut beats = b.into_beats();
    // The store's time reaches the window's end: parley records every
    // timer due by then.
    let end = start + WINDOW_MS - HOUR_MS;
    beats.push(Beat {
        at_ms: end,
        producer: super::store::ADMIN.into(),
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
