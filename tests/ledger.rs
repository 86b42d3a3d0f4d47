//! The ledger core: appends, restarts, idempotency, time, concurrency, and every
//! kind of damage recovery must tell apart.

mod common;

use std::sync::Arc;

use common::{fact, flip_byte, frame_map};
use parley::ledger::{Ledger, LedgerError, Options};
use parley::log::LogError;
use parley::sequencer::AppendError;
use parley::value::Value;
use parley::verify::verify_dir;

fn small() -> Options {
    Options {
        segment_bytes: 4096,
        ledger_id: Some("ldg-test".into()),
        genesis_at_ms: Some(1),
        initial_rules: None,
        initial_workflows: Vec::new(),
        ..Options::default()
    }
}

fn fill(ledger: &Ledger, n: u64, start_ms: u64) {
    for i in 0..n {
        let sku = format!("sku:S{}", i % 7);
        ledger
            .append(fact(
                "inventory",
                start_ms + i,
                Some(&format!("k{start_ms}-{i}")),
                &sku,
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
        .append(fact("inventory", 10, Some("once"), "sku:A", "stock", 5))
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
        .append(fact("inventory", 99, Some("once"), "sku:A", "stock", 6))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!((again.seq, again.hash), (first.seq, first.hash));
    assert_eq!(ledger.head(), Some(head), "a duplicate appends nothing");
    // The same key from another producer is another command.
    let other = ledger
        .append(fact("pricing", 100, Some("once"), "sku:A", "price", 6))
        .unwrap();
    assert!(!other.duplicate);
    let derived = ledger.derived().unwrap();
    assert_eq!(
        derived.fact("sku:A", "stock").unwrap(),
        Some((Value::Int(5), 2))
    );
    assert_eq!(derived.entity_seqs("sku:A").unwrap(), vec![2, other.seq]);
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
    assert!(verify_dir(dir.path()).unwrap().ok);
}

#[test]
fn time_never_goes_backwards() {
    let ledger = Ledger::in_memory(small()).unwrap();
    ledger
        .append(fact("a", 5_000, None, "sku:A", "stock", 1))
        .unwrap();
    let err = ledger
        .append(fact("a", 4_999, None, "sku:A", "stock", 2))
        .unwrap_err();
    assert_eq!(
        err,
        AppendError::TimeBackwards {
            at_ms: 4_999,
            last_ms: 5_000
        }
    );
    assert!(err.to_string().contains("before the last record"));
    // Without a time of its own a command takes the wall clock, never less than the last.
    let mut cmd = fact("a", 0, None, "sku:A", "stock", 3);
    cmd.envelope.at_ms = None;
    assert!(ledger.append(cmd).unwrap().recorded_at_ms >= 5_000);
}

#[test]
fn concurrent_producers_get_a_gapless_order() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(
        dir.path(),
        Options {
            max_batch: 64,
            ..small()
        },
    )
    .unwrap();
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
                            "sku:X",
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
    let mut c = fact("", 1, None, "sku:A", "stock", 1);
    assert!(
        matches!(ledger.append(c.clone()), Err(AppendError::Invalid(m)) if m.contains("producer"))
    );
    c.envelope.producer = "a".into();
    c.body = parley::record::Body::Fact {
        entity: "sku:A".into(),
        attribute: "blob".into(),
        value: Value::Text("x".repeat(parley::record::MAX_RECORD_BYTES)),
    };
    let err = ledger.append(c).unwrap_err();
    assert!(matches!(err, AppendError::Record(_)), "{err:?}");
    assert_eq!(ledger.head().unwrap().seq, 1, "nothing was appended");
}

/// Writes, after the last record, the frames of a batch the writer never finished:
/// `seq_a` cut in half and `seq_b` complete (pages reach the disk out of order).
fn write_torn_batch(dir: &std::path::Path) -> (u64, usize) {
    use parley::log::encode_record;
    use parley::log::frame::write_frame;
    use parley::record::{Body, Envelope, Record, FORMAT_VERSION};
    let frames = frame_map(&dir.join("log"));
    let (seq, path, at, len) = frames.last().unwrap().clone();
    let mut data = std::fs::read(&path).unwrap();
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&data[at + len - 32..at + len]);
    let mut buf = Vec::new();
    for s in [seq + 1, seq + 2] {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: s,
                recorded_at_ms: 5_000,
                producer: "a".into(),
                idempotency_key: None,
                causation: None,
                correlation: None,
            },
            body: Body::Fact {
                entity: "sku:T".into(),
                attribute: "n".into(),
                value: Value::Int(1),
            },
        };
        let enc = encode_record(&record, &prev).unwrap();
        prev = enc.hash;
        write_frame(&mut buf, seq + 1, &enc);
    }
    let first_len = buf.len() / 2;
    buf[first_len / 2..first_len].fill(0); // the first frame is torn
    let torn_at = at + len;
    data[torn_at..torn_at + buf.len()].copy_from_slice(&buf);
    std::fs::write(&path, &data).unwrap();
    (seq + 1, torn_at)
}

#[test]
fn a_torn_final_batch_is_cut_off_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 10, 10);
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    let (torn_seq, torn_at) = write_torn_batch(dir.path());
    let bad = verify_dir(dir.path()).unwrap();
    assert_eq!((bad.ok, bad.first_bad_seq), (false, Some(torn_seq)));

    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    let torn = report.recovery.torn_tail.expect("torn tail reported");
    assert_eq!((torn.seq, torn.offset), (torn_seq, torn_at as u64));
    assert_eq!(
        ledger.head(),
        Some(head),
        "every acknowledged record is kept"
    );
    let ack = ledger
        .append(fact("a", 6_000, None, "sku:B", "stock", 1))
        .unwrap();
    assert_eq!(
        ack.seq, torn_seq,
        "appending continues where the valid log ends"
    );
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
    assert!(verify_dir(dir.path()).unwrap().ok);
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
    // cannot tell, but the derived store has seen it.
    let mut data = std::fs::read(&path).unwrap();
    data[at..at + len].fill(0);
    std::fs::write(&path, &data).unwrap();
    let err = Ledger::open(dir.path(), small()).err().expect("refused");
    assert!(
        err.to_string()
            .contains(&format!("ends at seq {}", seq - 1)),
        "{err}"
    );
    // `rebuild` is the deliberate way to accept the log as it is.
    let (ledger, _) = Ledger::open_rebuilding(dir.path(), small()).unwrap();
    assert_eq!(ledger.head().unwrap().seq, seq - 1);
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
}

#[test]
fn damage_to_acknowledged_data_is_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 40, 10);
    ledger.close().unwrap();
    let frames = frame_map(&dir.path().join("log"));
    // A record in the middle of the last segment, with later batches after it.
    let last_path = frames.last().unwrap().1.clone();
    let (seq, path, at, _) = frames.iter().find(|f| f.1 == last_path).unwrap().clone();
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
fn a_truncated_segment_is_reported_not_taken_as_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 12, 10);
    ledger.close().unwrap();
    let frames = frame_map(&dir.path().join("log"));
    let (seq, path, at, _) = frames[frames.len() - 3].clone();
    // Cut the file at a frame boundary: the records from `seq` on are gone.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(at as u64)
        .unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.ok, report.first_bad_seq), (false, Some(seq)));
    assert!(report.reason.unwrap().contains("truncated"));
    let err = Ledger::open(dir.path(), small())
        .err()
        .expect("open refuses");
    assert!(err.to_string().contains("truncated"), "{err}");
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
            "sku:S3",
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
fn a_second_process_cannot_open_the_same_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    let err = Ledger::open(dir.path(), small()).err().expect("locked");
    assert!(matches!(err, LedgerError::Locked(_)), "{err}");
    ledger.close().unwrap();
    Ledger::open(dir.path(), small())
        .unwrap()
        .0
        .close()
        .unwrap();
}

#[test]
fn a_zeroed_frame_header_cannot_hide_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 12, 10);
    ledger.close().unwrap();
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
fn the_entity_index_spans_flushed_chunks_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * parley::derived::FLUSH_RECORDS as u64 + 100;
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    let tickets: Vec<_> = (0..n)
        .map(|i| {
            ledger
                .submit(fact(
                    "inventory",
                    10 + i,
                    None,
                    &format!("sku:E{}", i % 3),
                    "stock",
                    i as i64,
                ))
                .unwrap()
        })
        .collect();
    for t in tickets {
        t.wait().unwrap();
    }
    let want: Vec<u64> = (0..n).filter(|i| i % 3 == 1).map(|i| i + 2).collect();
    assert_eq!(
        ledger.derived().unwrap().entity_seqs("sku:E1").unwrap(),
        want
    );
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
    let (ledger, report) = Ledger::open(dir.path(), small()).unwrap();
    assert_eq!(
        report.derived.caught_up, 0,
        "close wrote the pending layer to sled"
    );
    assert_eq!(
        ledger.derived().unwrap().entity_seqs("sku:E1").unwrap(),
        want
    );
    assert_eq!(
        ledger.derived().unwrap().fact("sku:E2", "stock").unwrap(),
        Some((Value::Int(n as i64 - 1), n + 1))
    );
    ledger.close().unwrap();
}

#[test]
fn reads_by_seq_use_the_offset_index_and_survive_a_stale_one() {
    use parley::log::offsets::OffsetStore;
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    fill(&ledger, 300, 10);
    let seqs: Vec<u64> = (2..=301).step_by(7).collect();
    let check = |ledger: &Ledger| {
        let got = ledger.read(&seqs).unwrap();
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
    check(&ledger);
    // Many segments were sealed (4 KiB each): their offsets are in the store.
    let derived = ledger.derived().unwrap();
    let first_sealed = parley::log::scan::list_segments(&dir.path().join("log")).unwrap()[1].0;
    assert!(derived
        .chunk(first_sealed, 0)
        .is_some_and(|c| !c.is_empty()));
    // A stale index (here: every offset wrong) is caught by the checks and rebuilt.
    derived.put(first_sealed, 0, &[64; 40]);
    check(&ledger);
    assert_ne!(derived.chunk(first_sealed, 0), Some(vec![64; 40]));
    ledger.close().unwrap();
    // Without the derived store, reads walk the segments and rebuild the index.
    std::fs::remove_dir_all(dir.path().join("derived")).unwrap();
    let (ledger, _) = Ledger::open(dir.path(), small()).unwrap();
    check(&ledger);
    ledger.close().unwrap();
}
