//! Workflows under random interleavings of step reports, step intentions and the
//! passing of time: the final run state is the same live and in replay, every
//! record parley wrote is re-derived exactly, and no step completes (and no step
//! intention is approved) before the steps it depends on completed.

mod common;

use std::collections::BTreeMap;

use parley::command::Command;
use parley::context::Context;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, StoredRecord};
use parley::replay::Replayer;
use parley::workflow::{Definition, FLASH_SALE};
use proptest::prelude::*;
use serde_json::json;

const T0: u64 = 1_764_147_600_000;
const MINUTE: u64 = 60_000;
const RUNS: [&str; 2] = ["sale-a", "sale-b"];

#[derive(Clone, Debug)]
enum Op {
    Complete { run: usize, step: usize },
    Fail { run: usize, step: usize },
    Intend { run: usize, step: usize },
    Wait { minutes: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..5usize).prop_map(|(run, step)| Op::Complete { run, step }),
        1 => (0..2usize, 0..5usize).prop_map(|(run, step)| Op::Fail { run, step }),
        5 => (0..2usize, 0..5usize).prop_map(|(run, step)| Op::Intend { run, step }),
        2 => (1..90u64).prop_map(|minutes| Op::Wait { minutes }),
    ]
}

fn cmd(v: serde_json::Value) -> Command {
    Command::parse(&v.to_string()).unwrap()
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

fn run_ops(ops: &[Op]) -> (Ledger, Definition) {
    let def = Definition::parse(FLASH_SALE).unwrap();
    let opts = Options {
        first_admin: "ops".into(),
        genesis_at_ms: Some(T0),
        auto_clock: false,
        ..Options::default()
    };
    let ledger = Ledger::in_memory(opts).unwrap();
    let mut t = T0;
    for (agent, domain) in [
        ("pricing", "pricing"),
        ("inventory", "inventory"),
        ("customer-service", "customer-service"),
        ("marketing", "marketing"),
        ("merchandising", "merchandising"),
    ] {
        ledger
            .append(cmd(json!({"producer":"ops","at_ms":t,"kind":"agent_registered","profile":{"agent":agent,"domain":domain,"priority":1}})))
            .unwrap();
    }
    ledger
        .append(cmd(json!({"producer":"merchandising","at_ms":t,"kind":"catalog","sku":"S","category":"c","cost_minor":100,"price_minor":1000,"stock":5,"lifecycle":"active"})))
        .unwrap();
    for run in RUNS {
        ledger
            .append(cmd(json!({"producer":"marketing","at_ms":t,"kind":"workflow_started","run":run,"workflow":"flash-sale-preparation","version":1,"params":{"skus":"S"}})))
            .unwrap();
    }
    for (i, op) in ops.iter().enumerate() {
        t += 1_000;
        let c = match op {
            Op::Complete { run, step } | Op::Fail { run, step } => {
                let s = &def.steps[*step];
                let mut v = json!({"producer":s.owner,"at_ms":t,"kind":"step_completed","run":RUNS[*run],"step":s.name});
                if matches!(op, Op::Fail { .. }) {
                    v["kind"] = "step_failed".into();
                    v["reason"] = "it broke".into();
                }
                v
            }
            Op::Intend { run, step } => {
                let s = &def.steps[*step];
                json!({"producer":s.owner,"at_ms":t,"kind":"intend","intention":{
                    "action":{"type":"generic","entity":format!("campaign:{}", RUNS[*run]),"attribute":format!("{}-{i}", s.name),"value":1},
                    "reasoning":"my step","impact":{"revenue_minor":0,"margin_minor":0},"objective":"sales-growth",
                    "workflow_step":{"run":RUNS[*run],"step":s.name}}})
            }
            Op::Wait { minutes } => {
                t += minutes * MINUTE;
                json!({"producer":"ops","at_ms":t,"kind":"clock"})
            }
        };
        // Reports the run does not allow (not ready, ended, …) are refused: fine.
        common::append_or_refused(&ledger, cmd(c));
    }
    (ledger, def)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn runs_are_the_same_live_and_in_replay(ops in proptest::collection::vec(op(), 1..60)) {
        let (ledger, def) = run_ops(&ops);
        let records = all(&ledger);
        let mut replay = Replayer::default();
        for r in &records {
            replay.feed(r).map_err(|d| TestCaseError::fail(format!("diverges: {d:?}")))?;
        }
        replay.finish().map_err(|d| TestCaseError::fail(format!("owed: {d:?}")))?;
        let live = ledger.context_at(ledger.head().unwrap().seq).unwrap();
        prop_assert_eq!(&live.workflows, &replay.context().workflows);
        prop_assert_eq!(live.state_hash(), replay.context().state_hash());

        // Dependency order: completions, and approvals of step intentions,
        // come after every dependency's completion.
        let mut completed: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut step_of: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut fold = Context::default();
        for r in &records {
            let seq = r.record.envelope.seq;
            let deps_done = |run: &str, step: &str, completed: &BTreeMap<(String, String), u64>| {
                def.step(step).is_some_and(|(_, d)| {
                    d.depends_on.iter().all(|x| completed.contains_key(&(run.to_owned(), x.clone())))
                })
            };
            match &r.record.body {
                Body::StepCompleted { run, step, .. } => {
                    prop_assert!(deps_done(run, step, &completed), "{step} of {run} completed early at {seq}");
                    completed.insert((run.clone(), step.clone()), seq);
                }
                Body::Intend { intention } => {
                    if let Some(s) = &intention.workflow_step {
                        step_of.insert(seq, (s.run.clone(), s.step.clone()));
                    }
                }
                Body::Decision { decision } if decision.outcome.is_approval() => {
                    if let Some((run, step)) = step_of.get(&decision.intention) {
                        prop_assert!(deps_done(run, step, &completed), "{step} of {run} approved early at {seq}");
                    }
                }
                _ => {}
            }
            fold.apply(r).unwrap();
        }
        prop_assert_eq!(fold.state_hash(), live.state_hash());
    }
}
