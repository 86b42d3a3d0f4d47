//! Disk faults (ARCHITECTURE.md, "Durability"), injected by the recording
//! disk (`parley::log::trace`) at a chosen operation: EIO on a write and on
//! an fdatasync, a short write, ENOSPC when a segment is allocated, and an
//! fdatasync that reports success but loses the data.
//!
//! After a failed write or fdatasync the writer acknowledges nothing more,
//! never writes or syncs that log again (after a failed fdatasync the page
//! cache may have dropped the data: a retry that succeeds proves nothing),
//! stops with an error naming the operation and the file, and records no
//! clean close. The next open recovers: every acknowledged record is there,
//! both with the page cache kept (a process crash) and with everything
//! unsynced lost (a power cut). A lying fdatasync cannot be seen when it
//! happens; after the power cut it is found by the evidence and refused,
//! never cut off quietly.

mod common;

use std::path::Path;

use common::traced;
use parley::ledger::Ledger;
use parley::log::crash_states::{materialize, points, Crash};
use parley::log::trace::{Fault, FaultKind, Op, OpKind, Target, TraceDisk};
use parley::AppendError;

/// Commands offered to a faulty writer at most.
const COMMANDS_MAX: u64 = 400;

/// Opens a ledger through `disk`, sets up the store and appends commands
/// one at a time until one fails. Returns the highest acknowledged seq and
/// the error.
fn until_failure(dir: &Path, disk: &TraceDisk) -> (u64, AppendError) {
    let (ledger, _) = Ledger::open(dir, traced::opts(Some(disk))).unwrap();
    let mut acked = 0;
    let commands = traced::store()
        .into_iter()
        .chain((0..COMMANDS_MAX).map(|i| traced::command(i, traced::T0_MS + 1_000 * (i + 1))));
    for c in commands {
        match ledger.append(c) {
            Ok(ack) => {
                let last = ack.follow_ups.iter().map(|f| f.0).max().unwrap_or(0);
                acked = ack.seq.max(last);
                disk.ack(acked);
            }
            Err(e) => {
                // Stopped: every later command is refused, naming why.
                let later =
                    ledger.append(traced::command(COMMANDS_MAX, traced::T0_MS + 1_000_000_000));
                match later {
                    Err(AppendError::Failed(why)) => assert!(why.contains("os error"), "{why}"),
                    other => panic!("a stopped writer took a command: {other:?}"),
                }
                assert!(ledger.failure().is_some());
                ledger
                    .close()
                    .unwrap_or_else(|e| eprintln!("close after the fault: {e}"));
                return (acked, e);
            }
        }
    }
    panic!("the planted fault never fired in {COMMANDS_MAX} commands");
}

/// The states a crash right after the failure leaves, both ways, recover.
fn recovers(root: &Path, disk: &TraceDisk, acked: u64) {
    let ops = disk.ops().unwrap();
    let end = *points(&ops).last().unwrap();
    assert_eq!(end.acked, acked);
    let written = traced::hashes(&root.join("ledger"));
    for crash in [
        Crash::KeepAll,
        Crash::DropAll,
        Crash::Random(7),
        Crash::Random(99),
    ] {
        let out = tempfile::tempdir().unwrap();
        materialize(&ops, end, crash, root, out.path()).unwrap();
        traced::check(&out.path().join("ledger"), acked, &written)
            .unwrap_or_else(|why| panic!("{crash:?}: {why}"));
    }
    // And the real directory (the page cache as the writer left it) opens
    // for writing and takes the next command.
    let dir = root.join("ledger");
    let (ledger, _) = Ledger::open(&dir, traced::opts(None)).unwrap();
    assert!(ledger.head().unwrap().seq >= acked);
    ledger
        .append(traced::command(
            COMMANDS_MAX + 1,
            traced::T0_MS + 1_000_000_000,
        ))
        .unwrap();
    ledger.close().unwrap();
    traced::replay(&dir).unwrap();
}

/// The file ids of segment operations that failed, and every operation
/// after the first failure.
fn after_failure(ops: &[Op]) -> (Option<u32>, &[Op]) {
    let i = ops
        .iter()
        .position(|o| matches!(o, Op::Failed { .. }))
        .expect("the fault fired");
    let file = match &ops[i] {
        Op::Failed { file, .. } => *file,
        _ => None,
    };
    (file, &ops[i + 1..])
}

fn plant(on: OpKind, nth: u64, kind: FaultKind) -> TraceDisk {
    TraceDisk::new().plant(Fault {
        on,
        target: Target::Segments,
        nth,
        kind,
    })
}

#[test]
fn a_failed_fdatasync_stops_the_writer_which_never_retries_it() {
    let root = tempfile::tempdir().unwrap();
    let disk = plant(OpKind::Sync, 12, FaultKind::Eio);
    let (acked, err) = until_failure(&root.path().join("ledger"), &disk);
    let text = err.to_string();
    assert!(matches!(err, AppendError::OutcomeUnknown(_)), "{err:?}");
    assert!(
        text.contains("fdatasync") && text.contains(".seg"),
        "{text}"
    );
    assert!(text.contains("Input/output error"), "{text}");
    let ops = disk.ops().unwrap();
    let (file, after) = after_failure(&ops);
    let file = file.unwrap();
    // Nothing more is written to or synced on any segment after the failure.
    assert!(
        !after.iter().any(
            |o| matches!(o, Op::Sync { file: f, .. } | Op::Write { file: f, .. } if *f == file)
        ),
        "the failed file was written or synced again: {after:?}"
    );
    assert!(
        !after.iter().any(
            |o| matches!(o, Op::Create { path, .. } if path.extension().is_some_and(|e| e == "tmp"))
        ),
        "no new segment after the failure"
    );
    assert!(
        !after.iter().any(|o| matches!(o, Op::Ack { .. })),
        "nothing acknowledged after it"
    );
    recovers(root.path(), &disk, acked);
}

#[test]
fn a_failed_write_stops_the_writer_and_the_next_open_recovers() {
    let root = tempfile::tempdir().unwrap();
    let disk = plant(OpKind::Write, 20, FaultKind::Eio);
    let (acked, err) = until_failure(&root.path().join("ledger"), &disk);
    assert!(err.to_string().contains("write"), "{err}");
    let ops = disk.ops().unwrap();
    let (_, after) = after_failure(&ops);
    assert!(!after.iter().any(|o| matches!(o, Op::Ack { .. })));
    recovers(root.path(), &disk, acked);
}

#[test]
fn a_short_write_leaves_a_torn_unit_that_the_next_open_cuts_off() {
    let root = tempfile::tempdir().unwrap();
    let disk = plant(OpKind::Write, 20, FaultKind::ShortWrite);
    let (acked, err) = until_failure(&root.path().join("ledger"), &disk);
    assert!(err.to_string().contains("No space left"), "{err}");
    let ops = disk.ops().unwrap();
    let torn = ops
        .iter()
        .any(|o| matches!(o, Op::Write { bytes, .. } if !bytes.is_empty()));
    assert!(torn);
    // With the page cache kept, half a unit is on disk: the open cuts it off.
    let out = tempfile::tempdir().unwrap();
    let end = *points(&ops).last().unwrap();
    materialize(&ops, end, Crash::KeepAll, root.path(), out.path()).unwrap();
    let written = traced::hashes(&root.path().join("ledger"));
    let r = traced::check(&out.path().join("ledger"), acked, &written).unwrap();
    assert!(r.torn_cut, "the half-written unit is cut off");
    assert_eq!(r.head, acked, "the torn unit was never acknowledged");
    recovers(root.path(), &disk, acked);
}

#[test]
fn a_full_disk_when_a_segment_is_allocated_stops_cleanly_and_leaves_no_temp() {
    let root = tempfile::tempdir().unwrap();
    // The first allocation creates the ledger; the third is a later roll.
    let disk = plant(OpKind::Allocate, 3, FaultKind::NoSpace);
    let (acked, err) = until_failure(&root.path().join("ledger"), &disk);
    let text = err.to_string();
    assert!(
        text.contains("preallocate") && text.contains("No space left"),
        "{text}"
    );
    let log = root.path().join("ledger/log");
    let temps: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        temps.is_empty(),
        "a failed segment creation leaves nothing: {temps:?}"
    );
    recovers(root.path(), &disk, acked);
}

#[test]
fn a_lying_fdatasync_is_found_after_the_power_cut_and_refused_not_cut() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ledger");
    let disk = plant(OpKind::Sync, 12, FaultKind::LostSync);
    let (ledger, _) = Ledger::open(&dir, traced::opts(Some(&disk))).unwrap();
    for c in traced::store() {
        disk.ack(ledger.append(c).unwrap().seq);
    }
    traced::append_range(&ledger, &disk, 0, 40, 1);
    // The clean close records (and syncs, in log/head) what was acknowledged.
    ledger.close().unwrap();
    let ops = disk.ops().unwrap();
    assert!(ops.iter().any(|o| matches!(o, Op::Sync { lost: true, .. })));
    let end = *points(&ops).last().unwrap();
    let out = tempfile::tempdir().unwrap();
    materialize(&ops, end, Crash::DropAll, root.path(), out.path()).unwrap();
    let lost = out.path().join("ledger");
    let report = parley::verify::verify_dir(&lost).unwrap();
    assert_eq!(report.damage, Some("corrupt"), "{report:?}");
    let bad = report.first_bad_seq.unwrap();
    assert!(
        bad <= end.acked,
        "the damage is named at an acknowledged seq: {report:?}"
    );
    let before = common::snapshot_files(&lost.join("log"));
    let err = Ledger::open(&lost, traced::opts(None))
        .err()
        .expect("refused");
    match &err {
        parley::ledger::LedgerError::Log(e) => {
            let seq = e.corrupt_seq().unwrap_or_else(|| panic!("{e}"));
            assert!(seq <= end.acked, "named at an acknowledged seq: {e}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        before,
        common::snapshot_files(&lost.join("log")),
        "nothing cut"
    );
}

#[test]
fn a_failed_evidence_sync_refuses_the_open_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ledger");
    let disk = TraceDisk::new();
    traced::run(&dir, &disk, 20);
    let before = traced::hashes(&dir);
    let faulty = TraceDisk::new().plant(Fault {
        on: OpKind::Sync,
        target: Target::HeadFile,
        nth: 1,
        kind: FaultKind::Eio,
    });
    let err = Ledger::open(&dir, traced::opts(Some(&faulty)))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("head") && text.contains("fdatasync"),
        "{text}"
    );
    assert_eq!(before, traced::hashes(&dir));
    let (ledger, _) = Ledger::open(&dir, traced::opts(None)).unwrap();
    assert_eq!(ledger.head().unwrap().seq, *before.keys().max().unwrap());
    ledger.close().unwrap();
}
