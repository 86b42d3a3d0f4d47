//! Deferred intentions are re-decided by a clock record the sequencer appends when
//! their time passes with nothing else arriving; agents never poll.

// These tests wait on the wall clock (bounded waits, wall-time envelopes).
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cmd, TestClock};
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::Body;
use parley::replay::Replayer;

const T0: u64 = 1_764_147_600_000;

#[test]
fn a_deferral_is_re_decided_by_a_clock_record_when_its_time_comes() {
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let opts = Options {
        first_admin: "ops".into(),
        clock: clock.clone(),
        genesis_at_ms: Some(T0),
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let ack = common::defer_a_price(&ledger, T0);
    let head = ledger.head().unwrap().seq;

    // Nothing arrives; the wall clock passes the promotion's end.
    clock.0.store(T0 + 60_001, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.head().unwrap().seq < head + 2 {
        assert!(Instant::now() < deadline, "no clock record was appended");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut tail = Vec::new();
    ledger
        .scan(head + 1, u64::MAX, &mut |r| {
            tail.push(r);
            Ok(())
        })
        .unwrap();
    assert!(
        matches!(tail[0].record.body, Body::Clock),
        "{:?}",
        tail[0].record.body
    );
    assert_eq!(tail[0].record.envelope.producer, "parley");
    let Body::Decision { decision } = &tail[1].record.body else {
        panic!("{:?}", tail[1].record.body)
    };
    assert_eq!(
        (decision.intention, decision.outcome.name()),
        (ack.seq, "approved")
    );
    assert_eq!(
        decision.follows,
        Some(ack.seq + 1),
        "the re-decision cites the first"
    );

    // And replay reaches the same decisions from the log alone.
    let mut replay = Replayer::default();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            replay.feed(&r).unwrap();
            Ok(())
        })
        .unwrap();
    replay.finish().unwrap();
}

#[test]
fn a_step_deadline_passing_with_nothing_arriving_times_the_step_out() {
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let opts = Options {
        first_admin: "ops".into(),
        clock: clock.clone(),
        genesis_at_ms: Some(T0),
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    ledger
        .append(cmd(serde_json::json!({"producer":"ops","kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":1}})))
        .unwrap();
    let ack = ledger
        .append(cmd(serde_json::json!({"producer":"marketing","kind":"workflow_started","run":"d-1","workflow":"supplier-delay-response","version":1,"params":{"supplier":"acme"}})))
        .unwrap();
    let head = ledger.head().unwrap().seq;
    assert_eq!(
        head,
        ack.seq + 1,
        "the first step is announced with the start"
    );

    // `pause-ads` has 60 minutes from the start; the wall clock passes them.
    clock.0.store(T0 + 3_600_001, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.head().unwrap().seq < head + 3 {
        assert!(Instant::now() < deadline, "the deadline passed unnoticed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut kinds = Vec::new();
    ledger
        .scan(head + 1, u64::MAX, &mut |r| {
            kinds.push(r.record.body.kind());
            Ok(())
        })
        .unwrap();
    assert_eq!(kinds, ["clock", "step_timed_out", "run_finished"]);

    // Replay sees the same timeout at the same place.
    let mut replay = Replayer::default();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            replay.feed(&r).unwrap();
            Ok(())
        })
        .unwrap();
    replay.finish().unwrap();
}

/// A scripted ledger with the store's agents, a human and one sku.
fn scripted() -> Ledger {
    let opts = Options {
        first_admin: "ops".into(),
        genesis_at_ms: Some(T0),
        timeline: parley::record::Timeline::Scripted,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    for c in [
        serde_json::json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":1}}),
        serde_json::json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":1}}),
        serde_json::json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":1}}),
        serde_json::json!({"producer":"ops","at_ms":T0,"kind":"human_registered","human":"maya"}),
        serde_json::json!({"producer":"merchandising","at_ms":T0,"kind":"catalog","sku":"S","category":"c","cost_minor":1000,"price_minor":100000,"stock":1,"lifecycle":"active"}),
    ] {
        ledger.append(cmd(c)).unwrap();
    }
    ledger
}

const HOUR: u64 = 3_600_000;

#[test]
fn an_expired_escalation_cannot_be_settled_late_and_its_expiry_is_stamped_when_due() {
    let ledger = scripted();
    // Above the £5,000 threshold: escalated, expiring 48 h later (the rules).
    let ack = ledger
        .append(cmd(serde_json::json!({"producer":"pricing","at_ms":T0 + 1,"kind":"intend","intention":{"action":{"type":"set_price","sku":"S","price_minor":90000},"reasoning":"r","impact":{"revenue_minor":-900000,"margin_minor":-900000},"objective":"sales-growth"}})))
        .unwrap();
    let (_, d) = ack.decision().unwrap();
    assert_eq!(d.outcome.name(), "escalated");
    let expires = T0 + 1 + 48 * HOUR;
    // The first command after the expiry: a person approves, an hour late.
    let late = ledger.append(cmd(serde_json::json!({"producer":"maya","at_ms":expires + HOUR,"kind":"human_resolution","intention":ack.seq,"option":0,"rationale":"ok"})));
    let err = late.expect_err("a late settlement is refused");
    assert!(err.to_string().contains("no open escalation"), "{err}");
    // The expiry is on the log before it, at the time it was due, with the
    // rules' safe default.
    let mut tail = Vec::new();
    ledger
        .scan(ack.seq + 2, u64::MAX, &mut |r| {
            tail.push(r);
            Ok(())
        })
        .unwrap();
    assert!(
        matches!(tail[0].record.body, Body::Clock),
        "{:?}",
        tail[0].record.body
    );
    assert_eq!(tail[0].record.envelope.producer, "parley");
    assert_eq!(tail[0].record.envelope.recorded_at_ms, expires);
    let Body::Decision { decision } = &tail[1].record.body else {
        panic!("{:?}", tail[1].record.body)
    };
    assert_eq!(
        (
            decision.intention,
            decision.outcome.name(),
            decision.rule.name()
        ),
        (ack.seq, "rejected", "escalation.expiry")
    );
    assert_eq!(tail[1].record.envelope.recorded_at_ms, expires);
    assert_eq!(tail.len(), 2, "the refused command left nothing else");
    let mut replay = Replayer::default();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            replay.feed(&r).unwrap();
            Ok(())
        })
        .unwrap();
    replay.finish().unwrap();
}

#[test]
fn a_deferral_is_re_decided_at_its_end_not_at_the_next_command() {
    let ledger = scripted();
    ledger
        .append(cmd(serde_json::json!({"producer":"marketing","at_ms":T0 + 1,"kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"skus":["S"]},"discount_bp":1000,"starts_at_ms":T0,"ends_at_ms":T0 + 2 * HOUR},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":1},"objective":"sales-growth"}})))
        .unwrap();
    let ack = ledger
        .append(cmd(serde_json::json!({"producer":"pricing","at_ms":T0 + 2,"kind":"intend","intention":{"action":{"type":"set_price","sku":"S","price_minor":99000},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":1},"objective":"sales-growth"}})))
        .unwrap();
    assert_eq!(ack.decision().unwrap().1.outcome.name(), "deferred");
    // Nothing happens for ten hours; then a fact arrives. The re-decision
    // is recorded first, stamped at the promotion's end, and the answer
    // names it among the timers.
    let fact = ledger
        .append(cmd(serde_json::json!({"producer":"pricing","at_ms":T0 + 10 * HOUR,"kind":"fact","entity":"sku:S","attribute":"note","value":1})))
        .unwrap();
    let decided: Vec<_> = fact
        .timers
        .iter()
        .filter_map(|(seq, b)| match b {
            Body::Decision { decision } => Some((*seq, decision.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), 1, "{:?}", fact.timers);
    assert_eq!(decided[0].1.intention, ack.seq);
    assert_eq!(decided[0].1.outcome.name(), "approved");
    let mut at = 0;
    ledger
        .scan(decided[0].0, decided[0].0, &mut |r| {
            at = r.record.envelope.recorded_at_ms;
            Ok(())
        })
        .unwrap();
    assert_eq!(at, T0 + 2 * HOUR, "stamped when it was due");
    assert!(fact.seq > decided[0].0, "before the fact");
}
