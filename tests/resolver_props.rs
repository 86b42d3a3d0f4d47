//! Property tests over random logs of facts, intentions, rule changes, clocks and
//! human resolutions: live decisions = replayed decisions; a snapshot at any seq
//! plus the tail = the full fold; interleaving records about entities no rule
//! connects never changes a decision; nothing panics.

use parley::command::Command;
use parley::context::Context;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, StoredRecord};
use parley::replay::Replayer;
use parley::rules::DEFAULT_RULES;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const T0: u64 = 1_764_147_600_000;
const HOUR: u64 = 3_600_000;
const AGENTS: [&str; 6] = [
    "pricing",
    "marketing",
    "inventory",
    "customer-service",
    "orders",
    "merchandising",
];
const TOPICS: [&str; 2] = ["delay", "refund"];
const OBJECTIVES: [&str; 5] = [
    "risk",
    "margin-protection",
    "customer-experience",
    "sales-growth",
    "cost-optimisation",
];

#[derive(Clone, Debug)]
enum Op {
    Price {
        agent: usize,
        sku: usize,
        price: i64,
        revenue: i64,
        objective: usize,
        expires_h: Option<u64>,
    },
    Promo {
        sku: Option<usize>,
        discount_bp: u32,
        start_h: u64,
        len_h: u64,
        revenue: i64,
    },
    Reorder {
        sku: usize,
    },
    Discontinue {
        sku: usize,
    },
    Notify {
        agent: usize,
        customer: usize,
        topic: usize,
    },
    Perk {
        order: usize,
    },
    Flag {
        order: usize,
    },
    Stock {
        sku: usize,
        stock: i64,
    },
    Rules {
        min_margin_bp: i64,
        threshold: i64,
    },
    Resolve {
        pick: usize,
        option: u32,
        human: bool,
    },
    Clock,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, 0..3usize, 2000i64..9000, -900_000i64..900_000, 0..5usize, proptest::option::of(1..48u64))
            .prop_map(|(agent, sku, price, revenue, objective, expires_h)| Op::Price { agent, sku, price, revenue, objective, expires_h }),
        2 => (proptest::option::of(0..3usize), 100u32..3000, 0..48u64, 1..72u64, -100_000i64..700_000)
            .prop_map(|(sku, discount_bp, start_h, len_h, revenue)| Op::Promo { sku, discount_bp, start_h, len_h, revenue }),
        1 => (0..3usize).prop_map(|sku| Op::Reorder { sku }),
        1 => (0..3usize).prop_map(|sku| Op::Discontinue { sku }),
        2 => (0..6usize, 0..2usize, 0..2usize).prop_map(|(agent, customer, topic)| Op::Notify { agent, customer, topic }),
        1 => (0..2usize).prop_map(|order| Op::Perk { order }),
        1 => (0..2usize).prop_map(|order| Op::Flag { order }),
        1 => (0..3usize, 0..100i64).prop_map(|(sku, stock)| Op::Stock { sku, stock }),
        1 => (prop_oneof![Just(0i64), Just(500), Just(2000)], prop_oneof![Just(1000i64), Just(500_000)])
            .prop_map(|(min_margin_bp, threshold)| Op::Rules { min_margin_bp, threshold }),
        2 => (any::<usize>(), 0..2u32, proptest::bool::weighted(0.85)).prop_map(|(pick, option, human)| Op::Resolve { pick, option, human }),
        1 => Just(Op::Clock),
    ]
}

/// One stream's entity names: streams with different tags share no entity.
fn sku(tag: &str, i: usize) -> String {
    format!("SKU-{tag}{i}")
}

fn intend(
    agent: &str,
    at: u64,
    action: Json,
    revenue: i64,
    objective: &str,
    expires: Option<u64>,
) -> Json {
    let mut intention = json!({"action": action, "reasoning": "generated", "impact": {"revenue_minor": revenue, "margin_minor": revenue / 4}, "objective": objective});
    if let Some(e) = expires {
        intention["expires_at_ms"] = json!(e);
    }
    json!({"producer": agent, "at_ms": at, "kind": "intend", "intention": intention})
}

fn preamble(tags: &[&str]) -> Vec<Json> {
    let mut out = Vec::new();
    for (i, a) in AGENTS.iter().enumerate() {
        let mut profile = json!({"agent": a, "domain": if *a == "customer-service" { "customer-service" } else { *a }, "priority": 10 * i});
        if *a == "merchandising" {
            profile["autonomy"] = json!({"discontinue": "propose-and-approve"});
        }
        out.push(
            json!({"producer": "ops", "at_ms": T0, "kind": "agent_registered", "profile": profile}),
        );
    }
    out.push(json!({"producer": "ops", "at_ms": T0, "kind": "human_registered", "human": "maya"}));
    for tag in tags {
        for i in 0..3 {
            out.push(json!({"producer": "merchandising", "at_ms": T0, "kind": "catalog", "sku": sku(tag, i), "category": format!("cat-{tag}"), "cost_minor": 3000 + 500 * i as i64, "price_minor": 5000 + 700 * i as i64, "stock": 40, "lifecycle": "active"}));
        }
        for o in 0..2 {
            out.push(json!({"producer": "orders", "at_ms": T0, "kind": "order_placed", "order": format!("O-{tag}{o}"), "customer": format!("C-{tag}{o}"), "total_minor": 9000}));
        }
    }
    out
}

/// The command for an op, at `at`, for stream `tag`. Resolutions need the
/// escalated intentions seen so far; `None` when the op has nothing to act on.
fn command(op: &Op, tag: &str, at: u64, escalated: &[u64]) -> Option<Json> {
    Some(match op {
        Op::Price {
            agent,
            sku: s,
            price,
            revenue,
            objective,
            expires_h,
        } => intend(
            AGENTS[*agent],
            at,
            json!({"type": "set_price", "sku": sku(tag, *s), "price_minor": price}),
            *revenue,
            OBJECTIVES[*objective],
            expires_h.map(|h| at + h * HOUR),
        ),
        Op::Promo {
            sku: s,
            discount_bp,
            start_h,
            len_h,
            revenue,
        } => {
            let target = match s {
                Some(s) => json!({"skus": [sku(tag, *s)]}),
                None => json!({"category": format!("cat-{tag}")}),
            };
            let start = at + start_h * HOUR;
            intend(
                "marketing",
                at,
                json!({"type": "launch_promotion", "target": target, "discount_bp": discount_bp, "starts_at_ms": start, "ends_at_ms": start + len_h * HOUR}),
                *revenue,
                "sales-growth",
                None,
            )
        }
        Op::Reorder { sku: s } => intend(
            "inventory",
            at,
            json!({"type": "reorder", "sku": sku(tag, *s), "quantity": 10}),
            0,
            "sales-growth",
            None,
        ),
        Op::Discontinue { sku: s } => intend(
            "merchandising",
            at,
            json!({"type": "discontinue", "sku": sku(tag, *s)}),
            -100,
            "cost-optimisation",
            None,
        ),
        Op::Notify {
            agent,
            customer,
            topic,
        } => intend(
            AGENTS[*agent],
            at,
            json!({"type": "notify_customer", "customer": format!("C-{tag}{customer}"), "order": format!("O-{tag}{customer}"), "topic": TOPICS[*topic]}),
            0,
            "customer-experience",
            None,
        ),
        Op::Perk { order } => intend(
            "customer-service",
            at,
            json!({"type": "offer_perk", "order": format!("O-{tag}{order}"), "perk": "free_shipping"}),
            -499,
            "customer-experience",
            None,
        ),
        Op::Flag { order } => {
            json!({"producer": "fraud", "at_ms": at, "kind": "order_flagged", "order": format!("O-{tag}{order}"), "reason": "generated"})
        }
        Op::Stock { sku: s, stock } => {
            json!({"producer": "inventory", "at_ms": at, "kind": "stock_changed", "sku": sku(tag, *s), "stock": stock})
        }
        Op::Rules {
            min_margin_bp,
            threshold,
        } => {
            let text = DEFAULT_RULES
                .replace(
                    "min_margin_bp = 500",
                    &format!("min_margin_bp = {min_margin_bp}"),
                )
                .replace(
                    "escalate_above_minor = 500000",
                    &format!("escalate_above_minor = {threshold}"),
                );
            json!({"producer": "ops", "at_ms": at, "kind": "rules_installed", "text": text})
        }
        Op::Resolve {
            pick,
            option,
            human,
        } => {
            let target = *escalated.get(pick % escalated.len().max(1))?;
            let who = if *human { "maya" } else { "pricing" };
            json!({"producer": who, "at_ms": at, "kind": "human_resolution", "intention": target, "option": option, "rationale": "generated"})
        }
        Op::Clock => json!({"producer": "scheduler", "at_ms": at, "kind": "clock"}),
    })
}

/// Runs commands; returns the log and, per command, the decision (outcome, rule).
fn run(commands: &[Json]) -> (Vec<StoredRecord>, Vec<Option<(String, String)>>) {
    let opts = Options {
        first_admin: "ops".into(),
        timeline: parley::record::Timeline::Scripted,
        genesis_at_ms: Some(T0),
        auto_clock: false,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let mut outcomes = Vec::new();
    for c in commands {
        let cmd = Command::parse(&c.to_string()).unwrap();
        let outcome = match ledger.append(cmd) {
            Ok(ack) => ack
                .decision()
                .map(|(_, d)| (d.outcome.name().to_owned(), d.rule.name().to_owned())),
            Err(e) => Some(("refused".to_owned(), e.to_string())),
        };
        outcomes.push(outcome);
    }
    let mut log = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            log.push(r);
            Ok(())
        })
        .unwrap();
    (log, outcomes)
}

/// Builds a timed command list from ops, feeding resolutions the escalations seen.
fn live_run(ops: &[(Op, u64)]) -> Vec<StoredRecord> {
    let opts = Options {
        first_admin: "ops".into(),
        timeline: parley::record::Timeline::Scripted,
        genesis_at_ms: Some(T0),
        auto_clock: false,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    for c in preamble(&["a"]) {
        ledger
            .append(Command::parse(&c.to_string()).unwrap())
            .unwrap();
    }
    let mut at = T0;
    let mut escalated = Vec::new();
    for (op, dt_h) in ops {
        at += dt_h * HOUR / 2;
        let Some(c) = command(op, "a", at, &escalated) else {
            continue;
        };
        if let Ok(ack) = ledger.append(Command::parse(&c.to_string()).unwrap()) {
            if let Some((_, d)) = ack.decision() {
                if d.outcome.name() == "escalated" {
                    escalated.push(d.intention);
                }
            }
        }
    }
    let mut log = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            log.push(r);
            Ok(())
        })
        .unwrap();
    log
}

/// Folds `records`, checking every invariant after each step (in every
/// build, not only under `debug_assert!`).
fn fold(records: &[StoredRecord]) -> Context {
    let mut ctx = Context::default();
    for r in records {
        ctx.apply(r).unwrap();
        let seq = r.record.envelope.seq;
        ctx.check()
            .unwrap_or_else(|v| panic!("after seq {seq}: {v}"));
    }
    ctx
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn live_decisions_equal_replayed_decisions(ops in proptest::collection::vec((op(), 0..20u64), 1..60)) {
        let log = live_run(&ops);
        let mut replay = Replayer::default();
        for r in &log {
            if let Err(d) = replay.feed(r) {
                prop_assert!(false, "diverged: {d}: {:?}", d.problem);
            }
        }
        prop_assert!(replay.finish().is_ok());
        prop_assert_eq!(replay.context().state_hash(), fold(&log).state_hash());
    }

    #[test]
    fn a_snapshot_plus_the_tail_is_the_full_state(ops in proptest::collection::vec((op(), 0..20u64), 1..60), cut in any::<proptest::sample::Index>()) {
        let log = live_run(&ops);
        let k = cut.index(log.len());
        let snapshot = fold(&log[..k]).to_snapshot();
        let mut ctx = Context::from_snapshot(&snapshot).unwrap();
        for r in &log[k..] {
            ctx.apply(r).unwrap();
            prop_assert_eq!(ctx.check(), Ok(()));
        }
        prop_assert_eq!(ctx.state_hash(), fold(&log).state_hash());
    }

    #[test]
    fn interleaving_disjoint_entities_changes_no_decision(
        a in proptest::collection::vec(op(), 1..25),
        b in proptest::collection::vec(op(), 1..25),
        order in proptest::collection::vec(any::<bool>(), 50),
    ) {
        // Rule changes and resolutions connect streams (one rule set, one
        // precedent list), so the disjoint streams leave them out.
        let keep = |o: &&Op| !matches!(o, Op::Rules { .. } | Op::Resolve { .. });
        let a: Vec<Op> = a.iter().filter(keep).cloned().collect();
        let b: Vec<Op> = b.iter().filter(keep).cloned().collect();
        let ca: Vec<Json> = a.iter().filter_map(|o| command(o, "a", T0, &[])).collect();
        let cb: Vec<Json> = b.iter().filter_map(|o| command(o, "b", T0, &[])).collect();
        let pre = preamble(&["a", "b"]);
        let sequential: Vec<Json> = pre.iter().chain(&ca).chain(&cb).cloned().collect();
        let (_, seq_out) = run(&sequential);
        let (ia, ib) = (pre.len(), pre.len() + ca.len());
        let (want_a, want_b) = (&seq_out[ia..ib], &seq_out[ib..]);
        // Interleave, keeping each stream's own order.
        let (mut i, mut j, mut mixed, mut from_a) = (0, 0, pre.clone(), Vec::new());
        for k in 0.. {
            if i == ca.len() && j == cb.len() { break; }
            let take_a = j == cb.len() || (i < ca.len() && order[k % order.len()]);
            if take_a { mixed.push(ca[i].clone()); i += 1; from_a.push(true); } else { mixed.push(cb[j].clone()); j += 1; from_a.push(false); }
        }
        let (_, mixed_out) = run(&mixed);
        let got_a: Vec<_> = mixed_out[pre.len()..].iter().zip(&from_a).filter(|(_, a)| **a).map(|(o, _)| o.clone()).collect();
        let got_b: Vec<_> = mixed_out[pre.len()..].iter().zip(&from_a).filter(|(_, a)| !**a).map(|(o, _)| o.clone()).collect();
        prop_assert_eq!(got_a, want_a.to_vec());
        prop_assert_eq!(got_b, want_b.to_vec());
    }
}

#[test]
fn a_tampered_decision_is_caught_by_replay() {
    let ops: Vec<(Op, u64)> = vec![
        (
            Op::Price {
                agent: 0,
                sku: 0,
                price: 5200,
                revenue: 100,
                objective: 3,
                expires_h: None,
            },
            1,
        ),
        (
            Op::Price {
                agent: 1,
                sku: 0,
                price: 4000,
                revenue: 100,
                objective: 4,
                expires_h: None,
            },
            1,
        ),
    ];
    let mut log = live_run(&ops);
    let pos = log
        .iter()
        .rposition(|r| matches!(r.record.body, Body::Decision { .. }))
        .unwrap();
    if let Body::Decision { decision } = &mut log[pos].record.body {
        decision.outcome = parley::vocab::Outcome::Approved;
        decision.rule = parley::vocab::RuleId::Approve;
    }
    let mut clean = Replayer::default();
    let untampered = live_run(&ops);
    untampered.iter().for_each(|r| clean.feed(r).unwrap());
    assert!(
        clean.decisions() >= 2,
        "the run made decisions to tamper with"
    );
    let mut replay = Replayer::default();
    let err = log
        .iter()
        .find_map(|r| replay.feed(r).err())
        .expect("divergence");
    assert_eq!(err.seq, log[pos].record.envelope.seq);
}
