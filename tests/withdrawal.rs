//! An agent withdraws its pending intention: the resolver's next record is
//! an `expired` decision whose expiry read cites the withdrawal, replay
//! re-derives it, and a withdrawal of a deferral waiting on time closes it
//! before its time comes.

mod common;

use common::cmd;
use parley::ledger::{Ledger, Options};
use parley::record::{Body, Timeline};
use parley::vocab::{Field, Outcome, OutcomeKind};
use serde_json::json;

const T0: u64 = 1_764_147_600_000;

fn ledger() -> Ledger {
    let ledger = Ledger::in_memory(Options {
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        auto_clock: false,
        ..Options::default()
    })
    .unwrap();
    let rules = parley::rules::DEFAULT_RULES;
    for line in [
        json!({"producer":"ops","at_ms":T0,"kind":"rules_installed","text":rules}),
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}),
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":40}}),
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":30}}),
        json!({"producer":"merchandising","at_ms":T0,"kind":"catalog","sku":"S1","category":"audio","cost_minor":3000,"price_minor":4999,"stock":80,"lifecycle":"active"}),
    ] {
        ledger.append(cmd(line)).unwrap();
    }
    ledger
}

fn intend(at_ms: u64, revenue_minor: i64, extra: serde_json::Value) -> serde_json::Value {
    let mut intention = json!({"action":{"type":"set_price","sku":"S1","price_minor":5499},
        "reasoning":"r","impact":{"revenue_minor":revenue_minor,"margin_minor":100},"objective":"sales-growth"});
    if let (Some(i), Some(e)) = (intention.as_object_mut(), extra.as_object()) {
        i.extend(e.clone());
    }
    json!({"producer":"pricing","at_ms":at_ms,"kind":"intend","intention":intention})
}

/// The decision a withdrawal caused: (its seq, the decision).
fn closed_by(ledger: &Ledger, intention: u64, at_ms: u64) -> (u64, u64, parley::vocab::Decision) {
    let w = json!({"producer":"pricing","at_ms":at_ms,"kind":"intention_withdrawn","intention":intention});
    let ack = ledger.append(cmd(w)).unwrap();
    let (seq, body) = ack
        .follow_ups
        .first()
        .cloned()
        .expect("a decision follows the withdrawal");
    let Body::Decision { decision } = body else {
        panic!("the withdrawal caused {body:?}");
    };
    (ack.seq, seq, *decision)
}

#[test]
fn a_withdrawn_escalation_is_closed_at_once_citing_the_withdrawal() {
    let ledger = ledger();
    let ack = ledger
        .append(cmd(intend(T0 + 1000, 900_000, json!({}))))
        .unwrap();
    let i = ack.seq;
    let first = ack.follow_ups[0].1.clone();
    assert!(
        matches!(first, Body::Decision { ref decision } if matches!(decision.outcome, Outcome::Escalated { .. }))
    );
    let (w, _, d) = closed_by(&ledger, i, T0 + 2000);
    assert_eq!((d.intention, d.outcome.kind()), (i, OutcomeKind::Expired));
    let expiry = d
        .trace
        .iter()
        .flat_map(|t| &t.reads)
        .find(|r| r.field == Field::ExpiresAtMs)
        .unwrap();
    assert_eq!(expiry.seq, w, "the expiry read cites the withdrawal");
    // The human can no longer settle it, and replay re-derives the decision.
    let late = json!({"producer":"ops","at_ms":T0 + 3000,"kind":"human_resolution","intention":i,"option":0,"rationale":"late"});
    assert!(ledger.append(cmd(late)).is_err());
    let head = ledger.head().unwrap().seq;
    let seqs: Vec<u64> = (1..=head).collect();
    let log = parley::reader::LedgerRead::read(&ledger, &seqs).unwrap();
    let mut replay = parley::replay::Replayer::new(parley::resolver::Resolvers::released());
    for r in &log {
        replay.feed(r).expect("replay re-derives every decision");
    }
}

#[test]
fn a_deferral_withdrawn_before_its_time_is_closed_then() {
    const H: u64 = 3_600_000;
    let ledger = ledger();
    // A promotion runs on S1 from tomorrow for ten days: a price change on
    // S1 meanwhile is deferred until it ends.
    let promo = json!({"producer":"marketing","at_ms":T0 + 1000,"kind":"intend","intention":{
        "action":{"type":"launch_promotion","target":{"skus":["S1"]},"discount_bp":1000,
            "starts_at_ms":T0 + 25 * H,"ends_at_ms":T0 + 240 * H},
        "reasoning":"r","impact":{"revenue_minor":1000,"margin_minor":100},"objective":"sales-growth"}});
    ledger.append(cmd(promo)).unwrap();
    let ack = ledger
        .append(cmd(intend(T0 + 26 * H, 1000, json!({}))))
        .unwrap();
    let Body::Decision { decision } = &ack.follow_ups[0].1 else {
        panic!()
    };
    assert_eq!(
        decision.outcome.kind(),
        OutcomeKind::Deferred,
        "{decision:?}"
    );
    let (_, _, d) = closed_by(&ledger, ack.seq, T0 + 27 * H);
    assert_eq!(d.outcome.kind(), OutcomeKind::Expired);
    // The promotion ends: nothing more is decided about the withdrawn one.
    let tick = json!({"producer":"merchandising","at_ms":T0 + 250 * H,"kind":"fact","entity":"sku:S1","attribute":"tick","value":1});
    let after = ledger.append(cmd(tick)).unwrap();
    let decided =
        after.follow_ups.iter().chain(&after.timers).any(
            |(_, b)| matches!(b, Body::Decision { decision } if decision.intention == ack.seq),
        );
    assert!(!decided, "{after:?}");
}
