//! Properties of decisions a store can trust:
//! - amounts over their whole documented range, and just past it: nothing
//!   panics, out-of-range amounts are refused at parse naming the field,
//!   decisions are the same live and in replay;
//! - random commands, some from producers without the right to send them,
//!   some naming unknown entities: every value a decision read names the
//!   record that wrote it, no non-admin changes who may act or the rules,
//!   and replay agrees.

mod common;

use parley::bounds::{COUNT_MAX, IMPACT_MAX_MINOR, MONEY_MAX_MINOR};
use parley::command::Command;
use parley::entity::EntityRef;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, StoredRecord, Timeline};
use parley::replay::Replayer;
use parley::vocab::Field;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const T0: u64 = 1_764_147_600_000;
const HOUR: u64 = 3_600_000;

fn ledger() -> Ledger {
    Ledger::in_memory(Options {
        first_admin: "ops".into(),
        ledger_id: Some("ldg-trust".into()),
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        ..Options::default()
    })
    .unwrap()
}

fn preamble() -> Vec<Json> {
    let mut out = Vec::new();
    for (a, p) in [
        ("pricing", 50),
        ("marketing", 40),
        ("inventory", 30),
        ("merchandising", 45),
        ("orders", 20),
    ] {
        out.push(json!({"producer":"ops","kind":"agent_registered","profile":{"agent":a,"domain":a,"priority":p}}));
    }
    out.push(json!({"producer":"ops","kind":"human_registered","human":"maya"}));
    for (s, c, cost, price) in [
        ("A", "x", 6200, 7999),
        ("B", "x", 3000, 4999),
        ("C", "y", 2000, 3999),
    ] {
        out.push(json!({"producer":"merchandising","kind":"catalog","sku":s,"category":c,"cost_minor":cost,"price_minor":price,"stock":100,"lifecycle":"active"}));
    }
    out.push(json!({"producer":"orders","kind":"order_placed","order":"O-1","customer":"C-1","total_minor":5000}));
    out
}

/// Interesting amounts: the ends of each range, just past them, and others.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(-IMPACT_MAX_MINOR - 1),
        Just(-IMPACT_MAX_MINOR),
        Just(-1),
        Just(0),
        Just(1),
        Just(COUNT_MAX),
        Just(COUNT_MAX + 1),
        Just(MONEY_MAX_MINOR),
        Just(MONEY_MAX_MINOR + 1),
        Just(IMPACT_MAX_MINOR),
        Just(IMPACT_MAX_MINOR + 1),
        Just(i64::MAX),
        any::<i64>(),
        0..20_000i64,
    ]
}

fn bp() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(9_999),
        Just(10_000),
        Just(10_001),
        Just(-1),
        0..12_000i64
    ]
}

/// One command with amounts drawn from anywhere, and the fields it carries
/// that have a range: (field path, value, min, max).
fn amount_command() -> impl Strategy<Value = (Json, Vec<(&'static str, i64, i64, i64)>)> {
    let sku = prop_oneof![Just("A"), Just("B"), Just("C")];
    prop_oneof![
        (sku.clone(), amount(), amount(), amount()).prop_map(|(s, price, rev, margin)| (
            json!({"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":s,"price_minor":price},"reasoning":"r","impact":{"revenue_minor":rev,"margin_minor":margin},"objective":"sales-growth"}}),
            vec![
                ("intention.action.price_minor", price, 1, MONEY_MAX_MINOR),
                ("intention.impact.revenue_minor", rev, -IMPACT_MAX_MINOR, IMPACT_MAX_MINOR),
                ("intention.impact.margin_minor", margin, -IMPACT_MAX_MINOR, IMPACT_MAX_MINOR),
            ]
        )),
        (bp(), amount()).prop_map(|(d, rev)| (
            json!({"producer":"marketing","kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"category":"x"},"discount_bp":d,"starts_at_ms":T0 + 100 * HOUR,"ends_at_ms":T0 + 200 * HOUR},"reasoning":"r","impact":{"revenue_minor":rev,"margin_minor":0},"objective":"sales-growth"}}),
            vec![
                ("intention.action.discount_bp", d, 1, 10_000),
                ("intention.impact.revenue_minor", rev, -IMPACT_MAX_MINOR, IMPACT_MAX_MINOR),
            ]
        )),
        (sku.clone(), amount(), amount()).prop_map(|(s, cost, price)| (
            json!({"producer":"merchandising","kind":"catalog","sku":s,"category":"x","cost_minor":cost,"price_minor":price,"stock":1,"lifecycle":"active"}),
            vec![("cost_minor", cost, 0, MONEY_MAX_MINOR), ("price_minor", price, 1, MONEY_MAX_MINOR)]
        )),
        (sku.clone(), amount()).prop_map(|(s, stock)| (
            json!({"producer":"inventory","kind":"stock_changed","sku":s,"stock":stock}),
            vec![("stock", stock, 0, COUNT_MAX)]
        )),
        (sku, amount()).prop_map(|(s, q)| (
            json!({"producer":"inventory","kind":"intend","intention":{"action":{"type":"reorder","sku":s,"quantity":q},"reasoning":"r","impact":{"revenue_minor":0,"margin_minor":0},"objective":"sales-growth"}}),
            vec![("intention.action.quantity", q, 1, COUNT_MAX)]
        )),
        (amount(), amount()).prop_map(|(b, rev)| (
            json!({"producer":"marketing","kind":"intend","intention":{"action":{"type":"change_ad_budget","campaign":"c","budget_minor":b},"reasoning":"r","impact":{"revenue_minor":rev,"margin_minor":0},"objective":"sales-growth"}}),
            vec![
                ("intention.action.budget_minor", b, 0, MONEY_MAX_MINOR),
                ("intention.impact.revenue_minor", rev, -IMPACT_MAX_MINOR, IMPACT_MAX_MINOR),
            ]
        )),
    ]
}

fn all(ledger: &Ledger) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

fn replays(log: &[StoredRecord]) -> Result<(), String> {
    let mut replay = Replayer::default();
    for r in log {
        replay
            .feed(r)
            .map_err(|d| format!("{d}: {:?}", d.problem))?;
    }
    replay.finish().map_err(|d| d.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn amounts_over_their_whole_range(cmds in proptest::collection::vec(amount_command(), 1..30)) {
        let ledger = ledger();
        let mut at = T0;
        for c in preamble() {
            at += 1_000;
            let mut c = c;
            c["at_ms"] = at.into();
            ledger.append(Command::parse(&c.to_string()).unwrap()).unwrap();
        }
        for (mut c, ranges) in cmds {
            at += 60_000;
            c["at_ms"] = at.into();
            let out_of_range: Vec<_> = ranges.iter().filter(|(_, v, lo, hi)| v < lo || v > hi).collect();
            // u32 fields refuse negatives and values past u32 at deserialization.
            match Command::parse(&c.to_string()) {
                Ok(cmd) => {
                    prop_assert!(out_of_range.is_empty(), "accepted {c} with {out_of_range:?}");
                    common::append_or_refused(&ledger, cmd);
                }
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(!out_of_range.is_empty(), "refused an in-range command {c}: {e}");
                    prop_assert!(
                        out_of_range.iter().any(|(f, ..)| e.contains(f.rsplit('.').next().unwrap())),
                        "the error names none of {out_of_range:?}: {e}"
                    );
                }
            }
        }
        prop_assert_eq!(replays(&all(&ledger)), Ok(()));
    }
}

/// A command from a random producer, possibly without the right to send
/// it, possibly naming things that do not exist.
fn wild() -> impl Strategy<Value = Json> {
    let who = prop_oneof![
        Just("ops"),
        Just("pricing"),
        Just("marketing"),
        Just("maya"),
        Just("stranger")
    ];
    let sku = prop_oneof![Just("A"), Just("B"), Just("C"), Just("GHOST")];
    prop_oneof![
        (who.clone(), prop_oneof![Just("pricing"), Just("maya"), Just("newbie"), Just("parley")])
            .prop_map(|(p, a)| json!({"producer":p,"kind":"agent_registered","profile":{"agent":a,"domain":"pricing","priority":90}})),
        (who.clone(), prop_oneof![Just("pricing"), Just("maya"), Just("sam")])
            .prop_map(|(p, h)| json!({"producer":p,"kind":"human_registered","human":h})),
        (who.clone(), 0..900_000i64).prop_map(|(p, limit)| json!({"producer":p,"kind":"rules_installed",
            "text": parley::rules::DEFAULT_RULES.replace("escalate_above_minor = 500000", &format!("escalate_above_minor = {limit}"))})),
        (who.clone(), 2..5u32).prop_map(|(p, v)| json!({"producer":p,"kind":"workflow_defined",
            "text": parley::workflow::FLASH_SALE.replace("version = 1", &format!("version = {v}"))})),
        (who.clone(), sku.clone(), 1000..12_000i64, -900_000..900_000i64)
            .prop_map(|(p, s, price, rev)| json!({"producer":p,"kind":"intend","intention":{"action":{"type":"set_price","sku":s,"price_minor":price},"reasoning":"r","impact":{"revenue_minor":rev,"margin_minor":rev / 3},"objective":"sales-growth"}})),
        (who.clone(), prop_oneof![Just("O-1"), Just("O-404")])
            .prop_map(|(p, o)| json!({"producer":p,"kind":"intend","intention":{"action":{"type":"offer_perk","order":o,"perk":"free_shipping"},"reasoning":"r","impact":{"revenue_minor":-499,"margin_minor":-499},"objective":"customer-experience"}})),
        (sku.clone(), 1..2_000i64).prop_map(|(s, d)| json!({"producer":"marketing","kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"skus":[s]},"discount_bp":d,"starts_at_ms":T0 + 50 * HOUR,"ends_at_ms":T0 + 90 * HOUR},"reasoning":"r","impact":{"revenue_minor":600_000,"margin_minor":-1},"objective":"sales-growth"}})),
        (sku, 0..300i64).prop_map(|(s, n)| json!({"producer":"inventory","kind":"stock_changed","sku":s,"stock":n})),
        (who, 0..4u32).prop_map(|(p, option)| json!({"producer":p,"kind":"human_resolution","intention":"ESCALATED","option":option,"rationale":"why"})),
        Just(json!({"producer":"scheduler","kind":"clock"})),
    ]
}

/// The record at `read.seq` wrote what was read: it names the read's entity
/// (a rule parameter comes from a rules record; "now" from any record).
fn read_is_backed(
    log: &[StoredRecord],
    read: &parley::vocab::Read,
    context_seq: u64,
) -> Result<(), String> {
    if read.seq == 0 || read.seq > context_seq {
        return Err(format!(
            "{read:?} names seq {} outside 1..={context_seq}",
            read.seq
        ));
    }
    let r = &log[usize::try_from(read.seq - 1).unwrap()];
    match &read.entity {
        Some(e) => {
            let names = r.record.index_entities();
            if names.contains(e) {
                Ok(())
            } else {
                Err(format!(
                    "{read:?}: seq {} ({}) does not name {e}: {names:?}",
                    read.seq,
                    r.record.body.kind()
                ))
            }
        }
        None if read.field == Field::NowMs => Ok(()),
        None if matches!(r.record.body, Body::RulesInstalled { .. }) => Ok(()),
        None => Err(format!(
            "{read:?}: a rule parameter read from a {} record",
            r.record.body.kind()
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn decisions_read_only_what_records_wrote_and_only_admins_set_the_rules(
        cmds in proptest::collection::vec((wild(), 0..6u64), 1..50)
    ) {
        let ledger = ledger();
        let mut at = T0;
        for c in preamble() {
            at += 1_000;
            let mut c = c;
            c["at_ms"] = at.into();
            ledger.append(Command::parse(&c.to_string()).unwrap()).unwrap();
        }
        let mut escalated = Vec::new();
        for (mut c, dt_h) in cmds {
            at += dt_h * HOUR / 2 + 1;
            c["at_ms"] = at.into();
            if c["intention"] == "ESCALATED" {
                let Some(seq) = escalated.last() else { continue };
                c["intention"] = json!(seq);
            }
            let Ok(cmd) = Command::parse(&c.to_string()) else { continue };
            if let Ok(ack) = ledger.append(cmd) {
                for (_, b) in &ack.follow_ups {
                    if let Body::Decision { decision } = b {
                        if decision.outcome.name() == "escalated" {
                            escalated.push(decision.intention);
                        }
                    }
                }
            }
        }
        let log = all(&ledger);
        let mut admins: Vec<String> = vec!["ops".into()];
        for r in &log {
            let producer = &r.record.envelope.producer;
            if r.record.body.is_admin() && producer != "parley" {
                prop_assert!(admins.contains(producer), "{producer} wrote a {} record", r.record.body.kind());
            }
            if let Body::AdminRegistered { admin } = &r.record.body {
                admins.push(admin.clone());
            }
            if let Body::Decision { decision } = &r.record.body {
                for step in &decision.trace {
                    for read in &step.reads {
                        if let Err(e) = read_is_backed(&log, read, decision.context_seq) {
                            prop_assert!(false, "decision {}: {e}", r.record.envelope.seq);
                        }
                    }
                }
                if decision.outcome.is_approval() {
                    let unknown = EntityRef::Sku("GHOST".into());
                    prop_assert!(decision.entity != unknown, "approved an action on an unknown sku");
                }
            }
        }
        prop_assert_eq!(replays(&log), Ok(()));
    }
}
