//! Property test of platform deliveries: any ordering of the example store's
//! webhook stream, with deliveries retried (same delivery id) and re-sent
//! (a new delivery id, the same payload), leaves the context the ordered
//! stream leaves: the same catalog, stock, costs, orders, customers, refunds
//! and held versions. Only the seqs that stamp the values (and the count of
//! superseded records) may differ, and they are left out of the comparison.

use parley::command::{Command, CommandEnvelope};
use parley::context::Context;
use parley::integration::{self, Currency, Mapped};
use parley::ledger::{Ledger, Options};
use parley::record::{Body, Timeline};
use parley::vocab::Platform;
use proptest::prelude::*;
use serde_json::{json, Value};

const T0: u64 = 1_764_147_600_000;

/// One delivery of the example store: its platform id and mapped payload.
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    body: Body,
}

/// The example deliveries that map to a record, in the platforms' time
/// order (the stale product update sits where its `updated_at` puts it).
fn deliveries() -> Vec<Delivery> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/store-webhooks");
    let manifest = std::fs::read_to_string(dir.join("deliveries.jsonl")).unwrap();
    let mut lines: Vec<Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.insert(
        1,
        json!({"platform":"shopify","topic":"products/update","delivery":"stale-1","file":"shopify/products-update-stale.json"}),
    );
    let gbp = Currency::parse("GBP").unwrap();
    let mut out = Vec::new();
    for l in lines {
        let platform = match l["platform"].as_str().unwrap() {
            "shopify" => Platform::Shopify,
            _ => Platform::Woocommerce,
        };
        let body = std::fs::read(dir.join(l["file"].as_str().unwrap())).unwrap();
        match integration::map(platform, l["topic"].as_str().unwrap(), &body, gbp).unwrap() {
            Mapped::Object(synced) => out.push(Delivery {
                id: format!("{platform}:{}", l["delivery"].as_str().unwrap()),
                body: Body::Synced { synced },
            }),
            Mapped::NotMapped(_) => {}
        }
    }
    assert!(
        out.len() >= 15,
        "the example store maps {} deliveries",
        out.len()
    );
    out
}

fn ledger() -> Ledger {
    let opts = Options {
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        auto_clock: false,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let line = json!({"producer":"ops","at_ms":T0,"kind":"agent_registered",
        "profile":{"agent":"store-sync","domain":"integration","priority":10}});
    ledger
        .append(Command::parse(&line.to_string()).unwrap())
        .unwrap();
    ledger
}

/// Folds `stream` (each delivery with the idempotency key it came with)
/// and returns the context at the end.
fn fold(stream: &[(String, Body)]) -> Context {
    let ledger = ledger();
    for (key, body) in stream {
        let command = Command {
            envelope: CommandEnvelope {
                producer: "store-sync".into(),
                at_ms: Some(T0),
                idempotency_key: Some(key.clone()),
                ..CommandEnvelope::default()
            },
            body: body.clone(),
        };
        ledger
            .append(command)
            .expect("a mapped delivery is admitted");
    }
    let head = ledger.head().expect("the ledger has records").seq;
    ledger.context_at(head).unwrap()
}

/// The context's values without the seqs that stamp them: every sku's
/// catalog fields, every order, every generic fact (order status, customer
/// figures), the outcome totals (refunds) and the versions held. (The
/// history of a sku's selling terms is when parley saw each price, so it
/// follows arrival, and is left out.)
fn values(ctx: &Context) -> Value {
    let skus: Vec<Value> = ctx
        .store
        .skus()
        .map(|(id, s)| {
            json!([
                id,
                s.category.value,
                s.price_minor.value,
                s.cost_minor.value,
                s.stock.value,
                s.lifecycle.value.name()
            ])
        })
        .collect();
    let orders: Vec<Value> = ctx
        .store
        .orders()
        .map(|(id, o)| json!([id, o.customer.value, o.total_minor.value]))
        .collect();
    let facts: Vec<Value> = ctx
        .store
        .facts()
        .map(|((e, a), v)| json!([e.to_string(), a, format!("{:?}", v.value)]))
        .collect();
    let held: Vec<Value> = ctx
        .synced
        .objects()
        .map(|(k, h)| {
            json!([
                format!("{k:?}"),
                h.version.updated_at_ms,
                format!("{:?}", h.version.digest)
            ])
        })
        .collect();
    json!({
        "skus": skus,
        "orders": orders,
        "facts": facts,
        "totals": serde_json::to_value(&ctx.outcomes.totals).unwrap(),
        "held": held,
    })
}

/// A shuffled stream: each delivery at least once, some retried with their
/// own id, some re-sent under a new id.
fn shuffled() -> impl Strategy<Value = Vec<(usize, u8)>> {
    let n = deliveries().len();
    let copies = prop::collection::vec((0..n, 0u8..3), 0..12);
    (Just((0..n).collect::<Vec<usize>>()).prop_shuffle(), copies).prop_flat_map(|(order, extra)| {
        let mut all: Vec<(usize, u8)> = order.into_iter().map(|i| (i, 0)).collect();
        all.extend(extra);
        Just(all).prop_shuffle()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_any_repeats_leave_the_ordered_context(stream in shuffled()) {
        let all = deliveries();
        let ordered: Vec<(String, Body)> =
            all.iter().map(|d| (d.id.clone(), d.body.clone())).collect();
        let expected = values(&fold(&ordered));
        let mixed: Vec<(String, Body)> = stream
            .iter()
            .map(|&(i, copy)| {
                let d = &all[i];
                // copy 0 and 1: the platform's own delivery (a retry when
                // repeated); 2: the same payload under a new delivery id.
                let key = if copy == 2 { format!("{}-again", d.id) } else { d.id.clone() };
                (key, d.body.clone())
            })
            .collect();
        let got = values(&fold(&mixed));
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn the_ordered_stream_keeps_the_newest_of_everything() {
    let all = deliveries();
    let ordered: Vec<(String, Body)> = all.iter().map(|d| (d.id.clone(), d.body.clone())).collect();
    let ctx = fold(&ordered);
    let sku = ctx.store.sku("SKU-TR-42").unwrap();
    // products/update (84.99) is newer than the stale 99.99.
    assert_eq!(sku.price_minor.value, 8499);
    assert_eq!(sku.cost_minor.value, 4120);
    // The level at 10:00 is newer than the product's count at 09:00.
    assert_eq!(sku.stock.value, 38);
    assert_eq!(ctx.store.sku("SKU-TR-43").unwrap().stock.value, 35);
    assert_eq!(ctx.store.sku("WC-MUG").unwrap().price_minor.value, 1100);
    assert_eq!(ctx.store.order("4001").unwrap().total_minor.value, 16998);
    assert_eq!(ctx.store.order("4002").unwrap().customer.value, "guest");
    assert_eq!(ctx.outcomes.totals.refund_minor, 8499);
    assert_eq!(ctx.synced.superseded(), 0, "in time order nothing is late");
    // Backwards, every update but the newest of each object is late.
    let backwards: Vec<(String, Body)> = ordered.iter().rev().cloned().collect();
    let ctx = fold(&backwards);
    assert_eq!(ctx.store.sku("SKU-TR-42").unwrap().price_minor.value, 8499);
    assert_eq!(
        ctx.synced.superseded(),
        6,
        "product ×2, order, customer, woo product, woo order"
    );
}
