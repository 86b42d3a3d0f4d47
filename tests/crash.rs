//! Crash safety, after sled's `test_crash_recovery`: a child `parley run` appends
//! a stream of keyed commands and prints each acknowledgement; the parent waits
//! for the child's first acknowledgement, then kills it with SIGKILL a random
//! moment later (so every cycle kills a writer that has acknowledged
//! something, whatever its start-up costs), reopens the ledger and checks that
//! every acknowledged record is present and identical, the chain verifies, the
//! derived store agrees with the log, retried keys are not appended twice, and
//! appending continues. It counts the torn writes the kills produced (a
//! SIGKILL can cut a large `pwrite` short) and recovery cut off.
//!
//! `PARLEY_CRASH_CYCLES` (default 20) and `PARLEY_CRASH_SEED` steer it;
//! `tools/crash-test N` runs N cycles on a release build.

// These tests wait on the wall clock (bounded waits, wall-time envelopes).
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::parley_bin;
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::Body;
use parley::value::Value;
use parley::verify::verify_dir;

/// Commands one child is offered at most (it is killed long before).
const CYCLE_COMMANDS_MAX: u64 = 2_000_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn command(i: u64) -> String {
    // Some commands carry a payload, so batches span many pages and a kill
    // can land inside a write.
    let value = if i % 7 == 0 {
        format!("\"{i}:{}\"", "p".repeat(2_000))
    } else {
        i.to_string()
    };
    format!(
        "{{\"producer\":\"crash\",\"idempotency_key\":\"c{i}\",\"kind\":\"fact\",\"entity\":\"shelf:S{}\",\"attribute\":\"n\",\"value\":{value}}}\n",
        i % 100
    )
}

/// How a cycle ended.
struct Cycle {
    acks: Vec<(u64, u64, bool)>,
    /// The kill came after the child's first acknowledgement.
    after_ack: bool,
}

/// Runs one child from command `from`, waits for its first acknowledgement
/// and kills it `kill_after` later; returns the acknowledgements it printed:
/// (command index, seq, duplicate).
fn run_child(data: &std::path::Path, from: u64, kill_after: Duration) -> Cycle {
    let mut child = Command::new(parley_bin())
        .args(["run", "--data", data.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start parley run");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut buf = String::new();
        for i in from..from + CYCLE_COMMANDS_MAX {
            buf.push_str(&command(i));
            if buf.len() > 16 << 10 {
                if stdin.write_all(buf.as_bytes()).is_err() {
                    return; // the child is gone
                }
                buf.clear();
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut first = Some(first_tx);
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if !line.ends_with('\n') => break, // cut by the kill: not an ack
                Ok(_) => {
                    let v: serde_json::Value = serde_json::from_str(&line).expect("ack is JSON");
                    assert_eq!(v["ok"], true, "unexpected failure: {line}");
                    let idx = from + v["line"].as_u64().unwrap() - 1;
                    acks.push((idx, v["seq"].as_u64().unwrap(), v["duplicate"] == true));
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
        acks
    });
    // The first acknowledgement must come: a writer that never acknowledges
    // anything is a failure, not a cycle to skip.
    let after_ack = first_rx.recv_timeout(Duration::from_secs(60)).is_ok();
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    let acks = reader.join().unwrap();
    feeder.join().unwrap();
    Cycle { acks, after_ack }
}

/// Every acknowledged command (index → seq) is in `ledger` at its seq with
/// its own value, and no key was appended twice; returns the record count.
fn check_acknowledged(ledger: &Ledger, acked: &BTreeMap<u64, u64>, what: &str) -> u64 {
    let mut by_key: BTreeMap<u64, u64> = BTreeMap::new();
    let mut records = 0u64;
    ledger
        .scan(1, u64::MAX, &mut |r| {
            records += 1;
            if let (Some(key), Body::Fact { value, .. }) =
                (&r.record.envelope.idempotency_key, &r.record.body)
            {
                let idx: u64 = key[1..].parse().unwrap();
                let v = match value {
                    Value::Int(v) => *v as u64,
                    Value::Text(t) => t.split(':').next().unwrap().parse().unwrap(),
                    other => panic!("unexpected value {other:?}"),
                };
                assert_eq!(
                    v, idx,
                    "record {} holds another command's value",
                    r.record.envelope.seq
                );
                assert!(
                    by_key.insert(idx, r.record.envelope.seq).is_none(),
                    "key {key} appended twice"
                );
            }
            Ok(())
        })
        .unwrap();
    for (idx, seq) in acked {
        assert_eq!(
            by_key.get(idx),
            Some(seq),
            "{what}: acknowledged command {idx} (seq {seq}) is missing"
        );
    }
    records
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let cycles: u32 = std::env::var("PARLEY_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("PARLEY_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {cycles} cycles, PARLEY_CRASH_SEED={seed}");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    // command index -> seq of every acknowledged command
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut torn_tails = 0;
    let mut killed_after_ack = 0;
    let mut last_records = 0;
    let mut restarts_that_appended = 0;
    for cycle in 0..cycles {
        let next = acked.keys().next_back().map_or(0, |k| k + 1);
        // Resend the last few acknowledged commands: their keys must not append again.
        let from = next.saturating_sub(3);
        let kill_after = Duration::from_millis(rng.next() % 250);
        let Cycle { acks, after_ack } = run_child(&data, from, kill_after);
        assert!(
            after_ack,
            "cycle {cycle}: the child acknowledged nothing within 60 s"
        );
        killed_after_ack += u32::from(after_ack);
        if cycle > 0 && acks.iter().any(|a| !a.2) {
            restarts_that_appended += 1;
        }
        for (idx, seq, duplicate) in &acks {
            match acked.get(idx) {
                Some(original) => {
                    assert!(*duplicate, "cycle {cycle}: command {idx} appended twice");
                    assert_eq!(seq, original, "cycle {cycle}: command {idx} changed seq");
                }
                None => {
                    acked.insert(*idx, *seq);
                }
            }
        }

        // Restart: recovery, then every check.
        let (ledger, report) =
            Ledger::open(&data, Options::default()).expect("reopen after SIGKILL");
        torn_tails += u32::from(report.recovery.torn_tail.is_some());
        let records = check_acknowledged(&ledger, &acked, &format!("cycle {cycle}"));
        assert_eq!(
            ledger.derived_differences().unwrap(),
            None,
            "cycle {cycle}: derived store disagrees"
        );
        ledger.close().unwrap();
        let v = verify_dir(&data).unwrap();
        assert!(v.ok, "cycle {cycle}: {v:?}");
        assert!(records >= last_records);
        last_records = records;
        eprintln!(
            "cycle {cycle:>3}: killed {:>3} ms after the first ack, {:>6} acks this run, {:>7} acknowledged in all, {:>7} records{}",
            kill_after.as_millis(),
            acks.len(),
            acked.len(),
            records,
            if report.recovery.torn_tail.is_some() { ", a torn write cut off" } else { "" }
        );
    }
    eprintln!("crash test passed: {cycles} cycles, {killed_after_ack} killed after an acknowledgement, {} acknowledged commands all present, {restarts_that_appended} restarts appended more, {torn_tails} torn writes produced and recovered", acked.len());
    assert!(
        !acked.is_empty(),
        "no command was ever acknowledged: the test exercised nothing"
    );
    if cycles >= 4 {
        assert!(
            restarts_that_appended > 0,
            "no restarted child ever appended: the test exercised no restart"
        );
    }
}

/// The seed of a soak: `var` if set, else the clock (printed, to re-run it).
fn seed_from(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// The testers' campaign, in the tree: kill a writer under load, flip one
/// bit in the final write unit it left (the last whole unit, or the torn one
/// after it), then open it. A writer either opens with every acknowledged
/// record, or refuses; verify names the same seq; `parley repair --yes`
/// either cuts what was never acknowledged (then every acknowledged record
/// is still there) or refuses and changes nothing. Never is an acknowledged
/// record erased. `PARLEY_KILL_FLIPS` trials (default 4; `tools/bitflip-test`
/// runs 200), seed `PARLEY_FLIP_SEED`.
#[test]
fn flips_in_the_final_unit_of_a_killed_ledger_never_erase_acknowledged_records() {
    use parley::log::recovery::{examine, Proof};
    let trials: u32 = std::env::var("PARLEY_KILL_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed = seed_from("PARLEY_FLIP_SEED");
    eprintln!("killed-ledger flips: {trials} trials, PARLEY_FLIP_SEED={seed}");
    let mut rng = XorShift(seed);
    let (mut opened, mut repaired, mut kept, mut in_torn, mut acked_total) = (0, 0, 0, 0, 0);
    for t in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("ledger");
        let Cycle { acks, after_ack } =
            run_child(&data, 0, Duration::from_millis(rng.next() % 100));
        assert!(after_ack, "trial {t}: the child acknowledged nothing");
        let acked: BTreeMap<u64, u64> = acks.iter().map(|a| (a.0, a.1)).collect();
        acked_total += acked.len();
        // The final unit: the torn one past the valid data, if the kill left
        // one (half the time), else the last whole unit.
        let log = data.join("log");
        let proof = Proof::gather(&log, &data.join("derived")).unwrap();
        let ex = examine(&log, &proof).unwrap();
        let last = ex.tail.last.clone().unwrap();
        let torn = ex.extent();
        let (path, from, to) = if torn > 0 && rng.next() % 2 == 0 {
            in_torn += 1;
            (last.path.clone(), last.end, last.end + torn)
        } else {
            (last.path.clone(), last.last_unit.unwrap(), last.end)
        };
        let offset = from + rng.next() % (to - from);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize] ^= 1 << (rng.next() % 8);
        std::fs::write(&path, &bytes).unwrap();
        let what = format!("trial {t} (flip at {} offset {offset})", path.display());
        match Ledger::open(&data, Options::default()) {
            Ok((ledger, _)) => {
                check_acknowledged(&ledger, &acked, &what);
                ledger.close().unwrap();
                opened += 1;
                continue;
            }
            Err(parley::ledger::LedgerError::Log(e)) if e.corrupt_seq().is_some() => {
                let v = verify_dir(&data).unwrap();
                assert_eq!(
                    v.first_bad_seq,
                    e.corrupt_seq(),
                    "{what}: verify and the writer disagree: {v:?} / {e}"
                );
            }
            Err(other) => panic!("{what}: the writer failed otherwise: {other}"),
        }
        let before = std::fs::read(&path).unwrap();
        let out = Command::new(parley_bin())
            .args(["repair", "--data", data.to_str().unwrap(), "--yes"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            let (ledger, _) = Ledger::open(&data, Options::default())
                .unwrap_or_else(|e| panic!("{what}: repaired, yet refused: {e}\n{text}"));
            check_acknowledged(&ledger, &acked, &what);
            ledger.close().unwrap();
            repaired += 1;
        } else {
            assert!(text.contains("acknowledged"), "{what}: {text}");
            assert!(
                std::fs::read(&path).unwrap() == before,
                "{what}: a refusing repair changed the log"
            );
            kept += 1;
        }
    }
    eprintln!(
        "killed-ledger flips passed: {trials} trials ({in_torn} in a torn unit), {acked_total} acknowledged records, 0 erased: {opened} opened with all of them, {repaired} refused then repaired with all of them, {kept} refused as damage to acknowledged records and left as they were"
    );
}
