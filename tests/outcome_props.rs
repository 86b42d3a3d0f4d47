//! Property tests of outcomes: random price changes, promotions, catalog
//! prices and sales records (periods of any length, before and after the
//! changes, across midnight). Each sales record's pieces tile its period,
//! add up to its figures exactly, and each is attributed to at most one
//! decision: the one in force for that sku at that time (a decision that
//! approved a price or a promotion on it). The scorecard of the live
//! context equals the scorecard of a replay of the log and of a snapshot
//! round trip, and the sums the fold keeps for each decision equal a scan
//! of its pieces.

use std::collections::BTreeMap;

use parley::command::Command;
use parley::context::Context;
use parley::ledger::{Ledger, Options};
use parley::outcomes::measure::Realized;
use parley::reader::LedgerRead;
use parley::record::{Body, Timeline};
use parley::scorecard::scorecard;
use parley::vocab::{Action, Observed};
use proptest::prelude::*;
use serde_json::json;

const T0: u64 = 1_764_147_600_000;
const HOUR_MS: u64 = 3_600_000;
const SKUS: [&str; 3] = ["S1", "S2", "S3"];

#[derive(Clone, Debug)]
enum Op {
    /// Time passes (hours).
    Wait(u64),
    Price {
        sku: usize,
        price: i64,
    },
    Catalog {
        sku: usize,
        price: i64,
    },
    Promotion {
        sku: usize,
        starts_h: u64,
        hours: u64,
    },
    /// Sales over `[now − back_h, now − back_h + hours)`.
    Sales {
        sku: usize,
        back_h: u64,
        hours: u64,
        units: i64,
        unit_price: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..30).prop_map(Op::Wait),
        (0usize..3, 600i64..3000).prop_map(|(sku, price)| Op::Price { sku, price }),
        (0usize..3, 600i64..3000).prop_map(|(sku, price)| Op::Catalog { sku, price }),
        (0usize..3, 0u64..20, 1u64..30).prop_map(|(sku, starts_h, hours)| Op::Promotion {
            sku,
            starts_h,
            hours
        }),
        (0usize..3, 0u64..60, 1u64..80, 0i64..500, 1i64..3000).prop_map(
            |(sku, back_h, hours, units, unit_price)| {
                Op::Sales {
                    sku,
                    back_h,
                    hours,
                    units,
                    unit_price,
                }
            }
        ),
    ]
}

fn append(ledger: &Ledger, v: serde_json::Value) -> Option<u64> {
    ledger
        .append(Command::parse(&v.to_string()).unwrap())
        .ok()
        .map(|a| a.seq)
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
    for (agent, domain) in [
        ("pricing", "pricing"),
        ("marketing", "marketing"),
        ("merch", "merchandising"),
        ("orders", "orders"),
    ] {
        append(
            &ledger,
            json!({"producer":"ops","at_ms":T0,"kind":"agent_registered","profile":{"agent":agent,"domain":domain,"priority":50}}),
        );
    }
    for sku in SKUS {
        append(
            &ledger,
            json!({"producer":"merch","at_ms":T0,"kind":"catalog","sku":sku,"category":"audio","cost_minor":500,"price_minor":1000,"stock":10,"lifecycle":"active"}),
        );
    }
    ledger
}

fn run(ledger: &Ledger, ops: &[Op]) {
    let mut t = T0 + 1000;
    for op in ops {
        t += 1000;
        let v = match op {
            Op::Wait(h) => {
                t += h * HOUR_MS;
                continue;
            }
            Op::Price { sku, price } => {
                json!({"producer":"pricing","at_ms":t,"kind":"intend","intention":{"action":{"type":"set_price","sku":SKUS[*sku],"price_minor":price},"reasoning":"r","impact":{"revenue_minor":1000,"margin_minor":100},"objective":"sales-growth"}})
            }
            Op::Catalog { sku, price } => {
                json!({"producer":"merch","at_ms":t,"kind":"catalog","sku":SKUS[*sku],"category":"audio","cost_minor":500,"price_minor":price,"stock":10,"lifecycle":"active"})
            }
            Op::Promotion {
                sku,
                starts_h,
                hours,
            } => {
                let start = t + starts_h * HOUR_MS;
                json!({"producer":"marketing","at_ms":t,"kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"skus":[SKUS[*sku]]},"discount_bp":500,"starts_at_ms":start,"ends_at_ms":start + hours * HOUR_MS},"reasoning":"r","impact":{"revenue_minor":1000,"margin_minor":-100},"objective":"sales-growth"}})
            }
            Op::Sales {
                sku,
                back_h,
                hours,
                units,
                unit_price,
            } => {
                let from = t.saturating_sub(back_h * HOUR_MS);
                let revenue = units * unit_price;
                json!({"producer":"orders","at_ms":t,"kind":"outcome","outcome":{"type":"sales","sku":SKUS[*sku],"from_ms":from,"to_ms":from + hours * HOUR_MS,"units":units,"revenue_minor":revenue,"margin_minor":revenue - units * 500}})
            }
        };
        append(ledger, v);
    }
}

/// When each approved decision changed a sku's terms, and until when (for
/// promotions), from the log: what attribution may name.
fn terms_from_log(
    records: &[parley::record::StoredRecord],
) -> BTreeMap<u64, (String, u64, Option<u64>)> {
    let mut intents = BTreeMap::new();
    let mut out = BTreeMap::new();
    for r in records {
        match &r.record.body {
            Body::Intend { intention } => {
                intents.insert(r.record.envelope.seq, intention.action.clone());
            }
            Body::Decision { decision } if decision.outcome.is_approval() => {
                let at = r.record.envelope.recorded_at_ms;
                match intents.get(&decision.intention) {
                    Some(Action::SetPrice { sku, .. }) => {
                        out.insert(decision.intention, (sku.clone(), at, None));
                    }
                    Some(Action::LaunchPromotion {
                        target: parley::vocab::PromotionTarget::Skus(s),
                        starts_at_ms,
                        ends_at_ms,
                        ..
                    }) => {
                        out.insert(
                            decision.intention,
                            (s[0].clone(), (*starts_at_ms).max(at), Some(*ends_at_ms)),
                        );
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_piece_is_under_one_decision_in_force_and_scorecards_replay(ops in prop::collection::vec(op(), 1..40)) {
        let ledger = ledger();
        run(&ledger, &ops);
        let head = ledger.head_seq();
        let mut records = Vec::new();
        ledger.scan(1, head, &mut |r| { records.push(r); Ok(()) }).unwrap();
        let live = ledger.context_at(head).unwrap();
        let decided = terms_from_log(&records);
        for r in &records {
            let Body::Outcome { outcome } = &r.record.body else { continue };
            let Observed::Sales { sku, from_ms, to_ms, units, revenue_minor, margin_minor } = &**outcome else { continue };
            let seq = r.record.envelope.seq;
            let mut pieces: Vec<_> = live.outcomes.skus[sku].pieces.iter().filter(|p| p.seq == seq).collect();
            if pieces.is_empty() {
                // Only the newest pieces per sku are kept.
                continue;
            }
            pieces.sort_by_key(|p| p.from_ms);
            prop_assert_eq!(pieces[0].from_ms, *from_ms);
            prop_assert_eq!(pieces.last().unwrap().to_ms, *to_ms);
            for w in pieces.windows(2) {
                prop_assert_eq!(w[0].to_ms, w[1].from_ms, "pieces tile the period");
            }
            prop_assert_eq!(pieces.iter().map(|p| p.units).sum::<i64>(), *units);
            prop_assert_eq!(pieces.iter().map(|p| p.revenue_minor).sum::<i64>(), *revenue_minor);
            prop_assert_eq!(pieces.iter().map(|p| p.margin_minor).sum::<i64>(), *margin_minor);
            for p in &pieces {
                let Some(i) = p.intention else { continue };
                let (on, from, until) = decided.get(&i).cloned().expect("a piece names an approved decision");
                prop_assert_eq!(&on, sku, "the decision is about this sku");
                prop_assert!(from <= p.from_ms, "in force from {} before the piece at {}", from, p.from_ms);
                if let Some(end) = until {
                    prop_assert!(p.to_ms <= end, "a promotion's piece ends with it");
                }
            }
        }
        // The sums the fold keeps for each decision equal a scan of the
        // pieces (none was evicted in logs this small).
        for a in live.outcomes.acted.values() {
            let (mut realized, mut baseline) = (Realized::default(), Realized::default());
            let (from, w) = (a.from_ms, a.window_ms);
            for sku in &a.skus {
                for p in &live.outcomes.skus[sku].pieces {
                    if p.intention == Some(a.intention) {
                        realized.add(p, from, from + w);
                    } else {
                        baseline.add(p, from.saturating_sub(w), from);
                    }
                }
            }
            prop_assert_eq!(a.realized, realized, "realized sums of #{}", a.intention);
            prop_assert_eq!(a.baseline, baseline, "baseline sums of #{}", a.intention);
        }
        let mut replayed = Context::default();
        for r in &records {
            replayed.apply(r).unwrap();
        }
        let from_snapshot = Context::from_snapshot(&live.to_snapshot()).unwrap();
        let card = scorecard(&live, None, None);
        prop_assert_eq!(&card, &scorecard(&replayed, None, None));
        prop_assert_eq!(&card, &scorecard(&from_snapshot, None, None));
        prop_assert_eq!(live.state_hash(), replayed.state_hash());
    }
}
