//! The ledger core: appends, restarts, idempotency, time, concurrency, and
//! every kind of damage recovery must tell apart.

mod common;

use std::sync::Arc;

use common::{fact, flip_byte, frame_map, unclean, Tear};
use parley::entity::EntityRef;
use parley::ledger::{Ledger, LedgerError, Options};
use parley::log::LogError;
use parley::reader::LedgerRead;
use parley::reader::LogView;
use parley::record::Timeline;
use parley::sequencer::AppendError;
use parley::value::Value;
use parley::verify::verify_dir;

fn small() -> Options {
    Options {
        segment_bytes: 4096,
        ledger_id: Some("ldg-test".into()),
        genesis_at_ms: Some(1),
        timeline: Timeline::Scripted,
        initial_rules: None,
        initial_workflows: Vec::new(),
        ..Options::default()
    }
}

fn fill(ledger: &Ledger, n: u64, start_ms: u64) {
    for i in 0..n {
        let shelf = format!("shelf:S{}", i % 7);
        ledger
            .append(fact(
                "inventory",
                start_ms + i,
                Some(&format!("k{start_ms}-{i}")),
                &shelf,
                "stock",
                i as i64,
            ))
            .unwrap();
    }
}

#[test]
fn appends_survive_a_restart_and_keys_stay_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert!(report.created);
    let first = ledger
        .append(fact("inventory", 10, Some("once"), "shelf:A", "stock", 5))
        .unwrap();
    assert_eq!(first.seq, 2, "seq 1 is the genesis record");
    assert!(!first.duplicate);
    fill(&ledger, 50, 20);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();

    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert!(!report.created);
    assert_eq!(ledger.head(), Some(head));
    let again = ledger
        .append(fact("inventory", 99, Some("once"), "shelf:A", "stock", 5))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!((again.seq, again.hash), (first.seq, first.hash));
    assert_eq!(ledger.head(), Some(head), "a duplicate appends nothing");
    // The same key for a different command is refused, naming the original.
    let err = ledger
        .append(fact("inventory", 99, Some("once"), "shelf:A", "stock", 6))
        .unwrap_err();
    assert_eq!(
        err,
        AppendError::KeyConflict {
            key: "once".into(),
            original: first.seq
        }
    );
    // The same key from another producer is another command.
    let other = ledger
        .append(fact("pricing", 100, Some("once"), "shelf:A", "price", 6))
        .unwrap();
    assert!(!other.duplicate);
    let seqs = ledger
        .entity_seqs(&EntityRef::parse("shelf:A").unwrap())
        .unwrap();
    assert_eq!(seqs, vec![2, other.seq]);
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
    assert!(verify_dir(dir.path()).unwrap().ok);
}

#[test]
fn time_never_goes_backwards_and_cannot_be_trapped() {
    let ledger = Ledger::in_memory(small()).unwrap();
    ledger
        .append(fact("a", 5_000, None, "shelf:A", "stock", 1))
        .unwrap();
    let err = ledger
        .append(fact("a", 4_999, None, "shelf:A", "stock", 2))
        .unwrap_err();
    assert_eq!(
        err,
        AppendError::TimeBackwards {
            at_ms: 4_999,
            last_ms: 5_000
        }
    );
    // A scripted ledger needs every command's time, and a bounded step.
    let mut cmd = fact("a", 0, None, "shelf:A", "stock", 3);
    cmd.envelope.at_ms = None;
    assert_eq!(ledger.append(cmd).unwrap_err(), AppendError::TimeMissing);
    let far = fact("a", 253_402_300_799_999, None, "shelf:A", "stock", 3);
    assert!(matches!(
        ledger.append(far).unwrap_err(),
        AppendError::TimeJump { .. }
    ));
    // On a wall-clock ledger a time far ahead of the clock is refused, and a
    // command without a time takes the clock.
    let wall = Ledger::in_memory(Options {
        timeline: Timeline::Wall,
        ..small()
    })
    .unwrap();
    let ahead = fact("a", u64::MAX / 2, None, "shelf:A", "stock", 1);
    assert!(matches!(
        wall.append(ahead),
        Err(AppendError::Invalid(_) | AppendError::TimeAhead { .. })
    ));
    let ahead = fact("a", 253_402_300_799_999, None, "shelf:A", "stock", 1);
    assert!(matches!(
        wall.append(ahead).unwrap_err(),
        AppendError::TimeAhead { .. }
    ));
    let mut cmd = fact("a", 0, None, "shelf:A", "stock", 3);
    cmd.envelope.at_ms = None;
    assert!(wall.append(cmd).unwrap().recorded_at_ms > 1);
}

#[test]
fn concurrent_producers_get_a_gapless_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_batch: 64,
        timeline: Timeline::Wall,
        ..small()
    };
    let (ledger, _) = Ledger::open(dir.path(), opts).unwrap();
    let ledger = Arc::new(ledger);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..300)
                    .map(|i| {
                        let mut c = fact(
                            &format!("agent-{t}"),
                            0,
                            Some(&format!("{i}")),
                            "shelf:X",
                            "n",
                            i,
                        );
                        c.envelope.at_ms = None;
                        ledger.append(c).unwrap().seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=1201).collect::<Vec<_>>());
    assert_eq!(ledger.derived_differences().unwrap(), None);
    drop(ledger);
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.records), (true, Some(1201)));
}

#[test]
fn invalid_and_oversized_commands_are_refused_whole() {
    let ledger = Ledger::in_memory(small()).unwrap();
    let mut c = fact("", 1, None, "shelf:A", "stock", 1);
    let err = ledger.append(c.clone()).unwrap_err();
    assert!(
        matches!(&err, AppendError::Invalid(_)) && err.to_string().contains("producer"),
        "{err}"
    );
    c.envelope.producer = "a".into();
    c.body = parley::record::Body::Fact {
        entity: EntityRef::parse("shelf:A").unwrap(),
        attribute: "blob".into(),
        value: Value::Text("x".repeat(parley::record::RECORD_BYTES_MAX)),
    };
    let err = ledger.append(c).unwrap_err();
    assert!(matches!(err, AppendError::Record(_)), "{err:?}");
    assert_eq!(ledger.head().unwrap().seq, 1, "nothing was appended");
}

#[test]
fn a_torn_final_batch_after_a_crash_is_cut_off_and_reported() {
    // A writer killed in this boot leaves a page prefix; one that lost power
    // (another boot) may leave any sectors unwritten, a prefix among them.
    for (power_cut, tear) in [
        (false, Tear::Killed),
        (true, Tear::PowerCut),
        (true, Tear::Killed),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
        fill(&ledger, 10, 10);
        let head = ledger.head().unwrap();
        ledger.close().unwrap();
        // The writer crashed while writing one more batch: the head file
        // still says "open" at the head it had recorded.
        if power_cut {
            common::unclean_other_boot(dir.path(), head.seq, head.hash);
        } else {
            unclean(dir.path(), head.seq, head.hash);
        }
        let (torn_seq, torn_at) = common::write_torn_batch(dir.path(), tear);
        let bad = verify_dir(dir.path()).unwrap();
        assert_eq!(
            (bad.ok, bad.first_bad_seq, bad.damage),
            (false, Some(torn_seq), Some("torn")),
            "{tear:?}: {bad:?}"
        );

        let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
        let torn = report.recovery.torn_tail.expect("torn tail reported");
        assert_eq!((torn.seq, torn.offset), (torn_seq, torn_at as u64));
        assert_eq!(
            ledger.head(),
            Some(head),
            "every acknowledged record is kept"
        );
        let ack = ledger
            .append(fact("a", 6_000, None, "shelf:B", "stock", 1))
            .unwrap();
        assert_eq!(
            ack.seq, torn_seq,
            "appending continues where the valid log ends"
        );
        assert_eq!(ledger.derived_differences().unwrap(), None);
        ledger.close().unwrap();
        assert!(verify_dir(dir.path()).unwrap().ok);
    }
}

#[test]
fn in_the_same_boot_only_a_killed_writes_prefix_is_torn() {
    // An unwritten sector in the middle of a unit cannot come from a killed
    // process (the page cache kept its whole pwrite prefix): in this boot it
    // is damage, refused at its seq by the writer and every reader.
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 10, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    unclean(dir.path(), head.seq, head.hash);
    let (torn_seq, _) = common::write_torn_batch(dir.path(), Tear::PowerCut);
    let bad = verify_dir(dir.path()).unwrap();
    assert_eq!((bad.ok, bad.damage), (false, Some("corrupt")), "{bad:?}");
    assert!(bad.first_bad_seq >= Some(torn_seq), "{bad:?}");
    let err = Ledger::open(dir.path(), small()).err().expect("refused");
    assert!(
        matches!(&err, LedgerError::Log(LogError::Corrupt { .. }))
            && err.to_string().contains("this boot"),
        "{err}"
    );
}

#[test]
fn after_a_clean_close_the_same_damage_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 10, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    let (torn_seq, _) = common::write_torn_batch(dir.path(), Tear::Killed);
    assert_eq!(torn_seq, head.seq + 1);
    let bad = verify_dir(dir.path()).unwrap();
    assert_eq!((bad.ok, bad.damage), (false, Some("corrupt")), "{bad:?}");
    // Named at the record the cut reached (the unit holds two).
    let named = bad.first_bad_seq.unwrap();
    assert!((torn_seq..=torn_seq + 1).contains(&named), "{bad:?}");
    let err = Ledger::open(dir.path(), small()).err().expect("refused");
    assert!(
        matches!(&err, LedgerError::Log(LogError::Corrupt { seq, .. }) if *seq == named),
        "{err}"
    );
}

#[test]
fn a_log_missing_acknowledged_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 10, 10);
    ledger.close().unwrap();
    let frames = frame_map(&dir.path().join("log"));
    let (seq, path, at, len) = frames.last().unwrap().clone();
    // The last acknowledged record is zeroed out of the file: the log alone
    // looks like it ends early, but log/head says what was acknowledged.
    let mut data = std::fs::read(&path).unwrap();
    data[at..at + len].fill(0);
    std::fs::write(&path, &data).unwrap();
    let err = Ledger::open(dir.path(), small()).err().expect("refused");
    assert!(
        matches!(&err, LedgerError::Log(LogError::Corrupt { seq: s, .. }) if *s == seq),
        "{err}"
    );
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
    assert!(
        LogView::open(dir.path()).is_err(),
        "read commands refuse it too"
    );
}

#[test]
fn damage_to_acknowledged_data_is_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 40, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    unclean(dir.path(), 1, common::genesis_hash(dir.path()));
    let frames = frame_map(&dir.path().join("log"));
    // A record in the middle of the last segment, with later batches after it.
    let last_path = frames.last().unwrap().1.clone();
    let (seq, path, at, _) = frames.iter().find(|f| f.1 == last_path).unwrap().clone();
    assert!(seq < head.seq);
    flip_byte(&path, at + 60);
    match Ledger::open(dir.path(), small()) {
        Err(LedgerError::Log(LogError::Corrupt { seq: s, .. })) => assert_eq!(s, seq),
        other => panic!("expected corruption at seq {seq}, got {:?}", other.err()),
    }
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
}

#[test]
fn a_flipped_byte_in_a_middle_segment_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 120, 10);
    ledger.close().unwrap();
    let frames = frame_map(&dir.path().join("log"));
    let segments: std::collections::BTreeSet<_> = frames.iter().map(|f| f.1.clone()).collect();
    assert!(segments.len() >= 3, "the test needs several segments");
    let middle = segments.iter().nth(1).unwrap();
    let (seq, path, at, len) = frames
        .iter()
        .filter(|f| &f.1 == middle)
        .nth(2)
        .unwrap()
        .clone();
    flip_byte(&path, at + len - 40);
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
    assert!(report.reason.unwrap().contains("hash"));
}

#[test]
fn a_cut_segment_is_reported_with_the_last_seq_it_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 12, 10);
    ledger.close().unwrap();
    let frames = frame_map(&dir.path().join("log"));
    let (seq, path, at, _) = frames[frames.len() - 3].clone();
    // Cut the file at a frame boundary: the records from `seq` on are gone.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(at as u64).unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
    assert!(report.reason.unwrap().contains("cut short"));
    let err = Ledger::open(dir.path(), small())
        .err()
        .expect("open refuses");
    assert!(
        err.to_string().contains(&format!("after seq {}", seq - 1)),
        "{err}"
    );
}

#[test]
fn a_cut_zero_tail_after_a_clean_close_loses_nothing_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 3, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    // Cut right after the last write unit: only preallocated zeros go.
    let tail = parley::log::recovery::analyze(
        &dir.path().join("log"),
        parley::log::recovery::Proof::default(),
    )
    .unwrap();
    let last = tail.last.unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last.path)
        .unwrap();
    file.set_len(last.end).unwrap();
    assert!(
        verify_dir(dir.path()).unwrap().ok,
        "nothing acknowledged is missing"
    );
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert!(report.recovery.reextended);
    assert_eq!(ledger.head(), Some(head));
    fill(&ledger, 3, 100);
    ledger.close().unwrap();
    assert!(verify_dir(dir.path()).unwrap().ok);
}

#[test]
fn a_lost_or_damaged_derived_store_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 30, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();

    std::fs::remove_dir_all(dir.path().join("derived")).unwrap();
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert_eq!(report.derived.caught_up, head.seq);
    assert_eq!(ledger.derived_differences().unwrap(), None);
    let dup = ledger
        .append(fact(
            "inventory",
            10_000,
            Some("k10-3"),
            "shelf:S3",
            "stock",
            3,
        ))
        .unwrap();
    assert!(dup.duplicate, "idempotency keys come back with the rebuild");
    ledger.close().unwrap();

    // Garbage where sled keeps its files.
    let derived = dir.path().join("derived");
    for entry in std::fs::read_dir(&derived).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, b"this is not a sled file at all").unwrap();
        }
    }
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    assert_eq!(ledger.derived_differences().unwrap(), None);
    assert_eq!(ledger.head(), Some(head));
    ledger.close().unwrap();
}

#[test]
fn another_ledgers_derived_store_is_replaced_not_mistaken_for_loss() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, n) in [(&a, 30), (&b, 5)] {
        let opts = Options {
            ledger_id: Some(format!("ldg-{n}")),
            ..small()
        };
        let (ledger, _) = Ledger::open(dir.path(), opts).unwrap();
        fill(&ledger, n, 10);
        ledger.close().unwrap();
    }
    std::fs::remove_dir_all(b.path().join("derived")).unwrap();
    common::copy_dir(&a.path().join("derived"), &b.path().join("derived"));
    let (ledger, report) = Ledger::open(b.path(), small()).unwrap();
    assert_eq!(
        report.derived.rebuilt_because.as_deref(),
        Some("it belongs to another ledger")
    );
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
}

#[test]
fn one_writer_even_when_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    let err = Ledger::open(dir.path(), small()).err().expect("locked");
    assert!(matches!(err, LedgerError::Locked(_)), "{err}");
    // No file can be deleted to let a second writer in: the lock is on log/.
    let _ = std::fs::remove_file(dir.path().join("LOCK"));
    let _ = std::fs::remove_file(dir.path().join("log").join("head"));
    let err = Ledger::open(dir.path(), small())
        .err()
        .expect("still locked");
    assert!(matches!(err, LedgerError::Locked(_)), "{err}");
    // A writer that finds the derived store held by another refuses, and
    // wipes nothing (here the lock on log/ is taken first).
    assert!(dir.path().join("derived").is_dir());
    ledger.close().unwrap();
    Ledger::open(dir.path(), small())
        .unwrap()
        .0
        .close()
        .unwrap();
}

#[test]
fn a_writer_whose_log_directory_is_replaced_stops_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 3, 10);
    // Someone swaps log/ for a copy (a restore, a careless script): the
    // lock on the old directory no longer keeps other writers out of the new
    // one, and what this writer appends lands where no one reads it.
    let log = dir.path().join("log");
    let moved = dir.path().join("log.old");
    std::fs::rename(&log, &moved).unwrap();
    common::copy_dir(&moved, &log);
    assert!(
        !parley::log::segment::writer_running(&log),
        "the new directory is not locked"
    );
    let err = ledger
        .append(fact("a", 100, None, "shelf:Z", "n", 1))
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::OutcomeUnknown(r) if r.contains("no longer the directory")),
        "{err:?}"
    );
    let err = ledger
        .append(fact("a", 101, None, "shelf:Z", "n", 2))
        .unwrap_err();
    assert!(matches!(&err, AppendError::Failed(_)), "{err:?}");
    drop(ledger);
    // The ledger at DIR is the copy, and a new writer goes on with it.
    let (second, _) = Ledger::open(dir.path(), small()).unwrap();
    let ack = second
        .append(fact("b", 100, None, "shelf:Y", "n", 1))
        .unwrap();
    second.close().unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head_seq, Some(ack.seq));
}

#[test]
fn a_zeroed_frame_header_cannot_hide_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 12, 10);
    ledger.close().unwrap();
    unclean(dir.path(), 1, common::genesis_hash(dir.path()));
    let frames = frame_map(&dir.path().join("log"));
    let last_path = frames.last().unwrap().1.clone();
    let (seq, path, at, _) = frames.iter().find(|f| f.1 == last_path).unwrap().clone();
    let mut data = std::fs::read(&path).unwrap();
    data[at..at + 20].fill(0);
    std::fs::write(&path, &data).unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
    let err = Ledger::open(dir.path(), small()).err().expect("refused");
    assert!(
        matches!(err, LedgerError::Log(LogError::Corrupt { seq: s, .. }) if s == seq),
        "{err}"
    );
}

#[test]
fn the_entity_index_spans_segments_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3_000u64;
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    // Ten commands in flight at a time: a batch (one write unit) holds at
    // most ten small records, far below the 4 KiB segment size, so every
    // segment holds at most 4 KiB of units and 3,000 records need many
    // segments, however the writer groups them. (A unit is never split: a
    // batch larger than a segment gets a segment of its own, grown to fit.)
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let tickets: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let shelf = format!("shelf:E{}", i % 3);
                ledger
                    .submit(fact("inventory", 10 + i, None, &shelf, "stock", i as i64))
                    .unwrap()
            })
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    }
    let e1 = EntityRef::parse("shelf:E1").unwrap();
    let want: Vec<u64> = (0..n).filter(|i| i % 3 == 1).map(|i| i + 2).collect();
    assert_eq!(ledger.entity_seqs(&e1).unwrap(), want);
    ledger.close().unwrap();
    let segments = std::fs::read_dir(dir.path().join("log")).unwrap().count() - 1;
    let sealed = std::fs::read_dir(dir.path().join("index"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "idx")
        })
        .count();
    assert!(segments > 3, "the test needs several segments");
    assert_eq!(
        sealed,
        segments - 1,
        "every sealed segment has an index file"
    );
    // A reader in another "process" (no writer) finds the same.
    let (view, _) = LogView::open(dir.path()).unwrap();
    assert_eq!(view.entity_seqs(&e1).unwrap(), want);
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert_eq!(
        report.derived.caught_up, 0,
        "close wrote the pending layer to sled"
    );
    assert_eq!(ledger.entity_seqs(&e1).unwrap(), want);
    ledger.close().unwrap();
    // Without the index files, reads scan the segments instead.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (view, _) = LogView::open(dir.path()).unwrap();
    assert_eq!(view.entity_seqs(&e1).unwrap(), want);
}

#[test]
fn reads_by_seq_survive_a_stale_or_damaged_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 300, 10);
    ledger.close().unwrap();
    let seqs: Vec<u64> = (2..=301).step_by(7).collect();
    let check = || {
        let (view, _) = LogView::open(dir.path()).unwrap();
        let got = view.read(&seqs).unwrap();
        assert_eq!(
            got.iter()
                .map(|r| r.record.envelope.seq)
                .collect::<Vec<_>>(),
            seqs
        );
        for r in &got {
            let i = r.record.envelope.seq - 2;
            assert!(
                matches!(&r.record.body, parley::record::Body::Fact { value: Value::Int(v), .. } if *v == i as i64)
            );
        }
    };
    check();
    // Damage every index file: reads walk the segments and stay right.
    for entry in std::fs::read_dir(dir.path().join("index")).unwrap() {
        let p = entry.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        for i in (200..n).step_by(97) {
            b[i] ^= 0x5a;
        }
        std::fs::write(&p, b).unwrap();
    }
    check();
    // A writer rebuilds the damaged ones when it opens.
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert!(report.indexes_rebuilt > 0);
    ledger.close().unwrap();
    check();
}

/// An engine whose `fdatasync` fails from the `fail_at`-th append on: the
/// batch reaches the log (as it may, on a real disk) and then the error comes.
struct FailingSync {
    inner: parley::log::memory::MemoryLog,
    appends: usize,
    fail_at: usize,
}

impl parley::log::LogEngine for FailingSync {
    fn head(&self) -> Option<parley::log::Head> {
        parley::log::LogEngine::head(&self.inner)
    }
    fn append(
        &mut self,
        batch: &[parley::log::EncodedRecord],
        at: &mut Vec<parley::log::Location>,
    ) -> Result<(), LogError> {
        self.appends += 1;
        parley::log::LogEngine::append(&mut self.inner, batch, at)?;
        if self.appends >= self.fail_at {
            return Err(LogError::Io {
                op: "fdatasync",
                path: "segment".into(),
                source: std::io::Error::from_raw_os_error(5), // EIO
            });
        }
        Ok(())
    }
    fn reader(&self) -> Arc<dyn parley::log::LogReader> {
        parley::log::LogEngine::reader(&self.inner)
    }
}

#[test]
fn an_append_whose_outcome_is_unknown_is_never_reported_as_failed() {
    let engine = FailingSync {
        inner: parley::log::memory::MemoryLog::new(),
        appends: 0,
        // The genesis batch is append 1; the first command's batch fails.
        fail_at: 2,
    };
    let reader = parley::log::LogEngine::reader(&engine.inner);
    let ledger = Ledger::with_engine(Box::new(engine), small()).unwrap();
    let err = ledger
        .append(fact("a", 10, Some("k1"), "shelf:A", "n", 1))
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::OutcomeUnknown(_)),
        "a failed sync of a written batch: {err:?}"
    );
    assert_eq!(parley::answer::code(&err).name(), "outcome-unknown");
    assert!(err.to_string().contains("same idempotency key"), "{err}");
    // It was in fact written: "failed" would have been a lie.
    let mut kinds = Vec::new();
    reader
        .scan(1, u64::MAX, &mut |r| {
            kinds.push(r.record.envelope.seq);
            Ok(())
        })
        .unwrap();
    assert_eq!(kinds.len(), 2, "genesis and the command are in the log");
    // The writer takes nothing more, and says so: this one was never written.
    let err = ledger
        .append(fact("a", 11, Some("k2"), "shelf:A", "n", 2))
        .unwrap_err();
    assert!(matches!(&err, AppendError::Failed(_)), "{err:?}");
    assert_eq!(parley::answer::code(&err).name(), "ledger-failed");
    let mut after = 0;
    reader
        .scan(1, u64::MAX, &mut |_| {
            after += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(after, 2, "a command answered `failed` is not in the log");
}
