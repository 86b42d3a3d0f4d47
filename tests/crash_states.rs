//! Power loss at every point (ARCHITECTURE.md, "Durability"): a workload
//! (create, the store's setup, appends across segment rolls, a clean close,
//! a reopen, more appends, a close) runs through a recording disk; then
//! every crash point of its trace is rebuilt as the states a power cut may
//! leave (`parley::log::crash_states`: each unsynced write kept, dropped or
//! torn at 512-byte sectors, each directory's unsynced entries applied up to
//! some point), and each distinct state must recover: every acknowledged
//! record present and identical, no record the writer did not write, the
//! chain verifies, replay is 0 divergent.
//!
//! `PARLEY_CRASH_STATES=N` sets how many random states are built besides
//! the two extremes of every point (default 1500);
//! `PARLEY_CRASH_STATES_SEED` the seed, `PARLEY_CRASH_COMMANDS` the
//! workload's length (default 60). `tools/crash-states N` runs a
//! release build and prints the count.

mod common;

use std::collections::BTreeSet;

use common::traced;
use parley::log::crash_states::{materialize, points, Crash};
use parley::log::trace::{Op, TraceDisk};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_crash_state_of_the_workload_recovers_what_was_acknowledged() {
    let states_max = env_u64("PARLEY_CRASH_STATES", 1500);
    let seed = env_u64("PARLEY_CRASH_STATES_SEED", 0x5eed_c4a5);
    let root = tempfile::tempdir().unwrap();
    let disk = TraceDisk::new();
    let commands = env_u64("PARLEY_CRASH_COMMANDS", 60);
    let written = traced::run(&root.path().join("ledger"), &disk, commands);
    let ops = disk.ops().expect("the trace is complete");
    let syncs = ops.iter().filter(|o| matches!(o, Op::Sync { .. })).count();
    let renames = ops
        .iter()
        .filter(|o| matches!(o, Op::Rename { .. }))
        .count();
    assert!(
        renames >= 3,
        "the workload rolls segments: {renames} renames"
    );
    let all = points(&ops);
    let last_acked = all.last().unwrap().acked;
    assert_eq!(last_acked, *written.keys().max().unwrap());
    // Every point gets both extremes, and random states are spread over
    // the points.
    let mut plan = Vec::new();
    for p in &all {
        plan.push((*p, Crash::KeepAll));
        plan.push((*p, Crash::DropAll));
    }
    let mut s = seed;
    for _ in 0..states_max {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let p = all[((s >> 33) % all.len() as u64) as usize];
        plan.push((p, Crash::Random(s)));
    }
    let mut seen = BTreeSet::new();
    let (mut checked, mut violations, mut torn) = (0u64, Vec::new(), 0u64);
    for (point, crash) in plan {
        let out = tempfile::tempdir().unwrap();
        let digest = materialize(&ops, point, crash, root.path(), out.path()).unwrap();
        // The same files with less acknowledged is a weaker check: the key
        // holds both.
        if !seen.insert((digest, point.acked)) {
            continue;
        }
        checked += 1;
        match traced::check(&out.path().join("ledger"), point.acked, &written) {
            Ok(r) => torn += u64::from(r.torn_cut),
            Err(why) => violations.push(format!("op {} {crash:?}: {why}", point.ops)),
        }
    }
    println!(
        "crash states checked: {checked} distinct (of {} points, {} operations, {syncs} syncs, {renames} renames); torn writes cut: {torn}; violations: {}",
        all.len(),
        ops.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(torn > 0, "some states tear a write and recovery cuts it");
}
