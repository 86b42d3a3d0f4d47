//! `parley suggest`'s proposals rest on the evidence they name: people
//! approved every threshold escalation they settled → raise the threshold to
//! the largest; escalations expired as often as people settled them → a
//! longer window; nothing else is proposed on that evidence, a proposal's
//! rule set installs (its `why` citing the seq), and too little evidence
//! proposes nothing.

use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::record::Timeline;
use parley::scorecard::suggest::{propose, Change, Install};
use serde_json::json;

const T0: u64 = 1_764_147_600_000;
const HOUR_MS: u64 = 3_600_000;

fn append(ledger: &Ledger, v: serde_json::Value) -> u64 {
    let cmd = Command::parse(&v.to_string()).unwrap();
    ledger
        .append(cmd)
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .seq
}

fn ledger() -> Ledger {
    ledger_at(parley::resolver::CURRENT)
}

fn ledger_at(version: u32) -> Ledger {
    let opts = Options {
        resolver_version: version,
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        auto_clock: false,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    append(
        &ledger,
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}),
    );
    append(
        &ledger,
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"merch","domain":"merchandising","priority":40}}),
    );
    append(
        &ledger,
        json!({"producer":"ops","at_ms":T0,"kind":"human_registered","human":"maya"}),
    );
    for (sku, category) in [("S1", "audio"), ("S2", "video"), ("S3", "games")] {
        append(
            &ledger,
            json!({"producer":"merch","at_ms":T0,"kind":"catalog","sku":sku,"category":category,"cost_minor":1000,"price_minor":2000,"stock":10,"lifecycle":"active"}),
        );
    }
    ledger
}

/// A price rise on `sku` projecting `revenue` (above the £5,000 threshold).
fn big(ledger: &Ledger, sku: &str, revenue: i64, at: u64) -> u64 {
    append(
        ledger,
        json!({"producer":"pricing","at_ms":at,"kind":"intend","intention":{"action":{"type":"set_price","sku":sku,"price_minor":2500},"reasoning":"demand","impact":{"revenue_minor":revenue,"margin_minor":revenue / 4},"objective":"sales-growth"}}),
    )
}

fn context(ledger: &Ledger) -> parley::context::Context {
    ledger.context_at(ledger.head().unwrap().seq).unwrap()
}

#[test]
fn people_approving_every_threshold_escalation_propose_a_higher_threshold() {
    let ledger = ledger();
    // Three escalations no precedent settles (other categories), approved.
    let mut at = T0 + 1000;
    for (sku, revenue) in [("S1", 600_000), ("S2", 1_500_000)] {
        let i = big(&ledger, sku, revenue, at);
        append(
            &ledger,
            json!({"producer":"maya","at_ms":at + 1000,"kind":"human_resolution","intention":i,"option":0,"rationale":"fine"}),
        );
        at += 10_000;
    }
    assert!(
        propose(&context(&ledger)).is_empty(),
        "two cases are too few"
    );
    let i = big(&ledger, "S3", 4_012_345, at);
    append(
        &ledger,
        json!({"producer":"maya","at_ms":at + 1000,"kind":"human_resolution","intention":i,"option":0,"rationale":"fine"}),
    );
    let ctx = context(&ledger);
    let proposals = propose(&ctx);
    assert_eq!(proposals.len(), 1, "{proposals:#?}");
    let p = &proposals[0];
    assert_eq!(p.id, "threshold");
    assert_eq!(
        p.change,
        Change::Threshold {
            from_minor: 500_000,
            to_minor: 4_100_000
        }
    );
    assert_eq!((p.evidence.cases, p.evidence.supporting), (3, 3));
    assert_eq!(
        p.why,
        format!("parley suggest, as of seq {}: threshold", ctx.seq)
    );
    let Install::Rules { text } = &p.install else {
        panic!("a rule set: {p:?}")
    };
    let rules = parley::rules::RuleSet::parse(text).unwrap();
    assert_eq!(rules.threshold.escalate_above_minor, 4_100_000);
    assert!(rules.change.is_none(), "the why is given at install");
}

#[test]
fn escalations_expiring_as_often_as_settled_propose_a_longer_window() {
    let ledger = ledger();
    let mut at = T0 + 1000;
    for (sku, revenue) in [("S1", 600_000), ("S2", 1_500_000), ("S3", 4_000_000)] {
        big(&ledger, sku, revenue, at);
        at += 10_000;
    }
    // 49 h later (the default rules wait 48 h): a command brings the timers.
    append(
        &ledger,
        json!({"producer":"merch","at_ms":at + 49 * HOUR_MS,"kind":"catalog","sku":"S1","category":"audio","cost_minor":1000,"price_minor":2000,"stock":9,"lifecycle":"active"}),
    );
    let ctx = context(&ledger);
    let p: Vec<_> = propose(&ctx)
        .into_iter()
        .filter(|p| p.id == "escalation-window")
        .collect();
    assert_eq!(p.len(), 1, "three escalations expired, none settled");
    assert_eq!(
        p[0].change,
        Change::EscalationWindow {
            from_h: 48,
            to_h: 96
        }
    );
    assert_eq!((p[0].evidence.cases, p[0].evidence.supporting), (3, 3));
}

/// Three price changes to 13 % margin on S1..S3, each measured: each sold
/// as many units as before at the lower price, so each lost margin (and
/// pricing's forecasts realized far from what it projected).
fn losing_price_changes(ledger: &Ledger) {
    const DAY_MS: u64 = 24 * HOUR_MS;
    append(
        ledger,
        json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"orders","domain":"orders","priority":10}}),
    );
    let sales = |sku: &str, from: u64, units: i64, price: i64, at: u64| json!({"producer":"orders","at_ms":at,"kind":"outcome","outcome":{"type":"sales","sku":sku,"from_ms":from,"to_ms":from + DAY_MS,"units":units,"revenue_minor":units * price,"margin_minor":units * (price - 1000)}});
    for (k, sku) in ["S1", "S2", "S3"].into_iter().enumerate() {
        let t = T0 + (k as u64 + 1) * 2 * DAY_MS;
        append(ledger, sales(sku, t - DAY_MS, 10, 2000, t - 1000));
        // 11.50 over a cost of 10.00: 13 % left, above the 5 % floor.
        append(
            ledger,
            json!({"producer":"pricing","at_ms":t,"kind":"intend","intention":{"action":{"type":"set_price","sku":sku,"price_minor":1150},"reasoning":"match","impact":{"revenue_minor":1000,"margin_minor":100},"objective":"sales-growth"}}),
        );
        append(ledger, sales(sku, t, 10, 1150, t + DAY_MS + 1000));
    }
}

#[test]
fn price_changes_near_the_floor_that_all_lost_margin_propose_a_higher_floor() {
    let ledger = ledger();
    losing_price_changes(&ledger);
    let all = propose(&context(&ledger));
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["margin-floor", "calibration:pricing"], "{all:#?}");
    let p = &all[0];
    assert_eq!(
        p.change,
        Change::MarginFloor {
            from_bp: 500,
            to_bp: 1400
        }
    );
    assert_eq!((p.evidence.cases, p.evidence.supporting), (3, 3));
}

#[test]
fn a_ledger_whose_resolver_does_not_learn_is_not_offered_learning_tables() {
    let ledger = ledger_at(3);
    losing_price_changes(&ledger);
    let ids: Vec<String> = propose(&context(&ledger))
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        ids,
        ["margin-floor"],
        "version 3 would refuse [calibration]"
    );
}
