//! Segment seals (src/log/seal.rs): the writer seals each segment it filled;
//! the writer's open checks a sealed segment by one hash of its file, and
//! anything a seal cannot vouch for (a missing, damaged or stale seal, a
//! changed byte) is checked frame by frame and refused at its seq, exactly
//! as without seals.

use std::path::{Path, PathBuf};

use parley::ledger::{Ledger, LedgerError, Options};
use parley::log::open_check::{check_through, OpenCheck, Walked};
use parley::log::recovery::{analyze, Proof};
use parley::log::seal::Seal;
use parley::log::segment::segments;
use parley::log::LogError;
use parley::record::Timeline;

fn opts() -> Options {
    Options {
        segment_bytes: 16 << 10,
        ledger_id: Some("ldg-seal".into()),
        genesis_at_ms: Some(1_764_147_600_000),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        ..Options::default()
    }
}

/// A closed ledger of several segments; its head.
fn build(dir: &Path) -> u64 {
    let (ledger, _) = Ledger::open(dir, opts()).unwrap();
    let mut at = 1_764_147_700_000u64;
    for round in 0..8 {
        let tickets: Vec<_> = (0..40)
            .map(|i| {
                at += 1_000;
                let text = format!(
                    r#"{{"producer":"ops","at_ms":{at},"kind":"broadcast","topic":"round_{round}","entity":"sku:S{i}","detail":{{"i":{i}}}}}"#
                );
                ledger.submit(parley::Command::parse(&text).unwrap()).unwrap()
            })
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    }
    let head = ledger.head().unwrap().seq;
    ledger.close().unwrap();
    head
}

fn seal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seal"))
        .collect();
    v.sort();
    v
}

fn check(dir: &Path, head: u64, write: bool) -> Result<OpenCheck, LogError> {
    check_through(&dir.join("log"), &dir.join("index"), head, write, None)
}

fn reopen(dir: &Path) -> Result<(), LedgerError> {
    let (ledger, _) = Ledger::open(dir, opts())?;
    ledger.close()
}

#[test]
fn the_writer_seals_every_segment_it_filled_and_open_checks_them_by_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let head = build(tmp.path());
    let segs = segments(&tmp.path().join("log")).unwrap();
    assert!(segs.len() >= 4, "several segments: {}", segs.len());
    let seals = seal_files(tmp.path());
    assert_eq!(
        seals.len(),
        segs.len() - 1,
        "every segment but the active one"
    );
    for ((first, _), next) in segs.iter().zip(&segs[1..]) {
        let seal = Seal::read(&tmp.path().join("index"), *first).expect("a whole seal");
        assert_eq!((seal.first_seq, seal.last_seq), (*first, next.0 - 1));
    }
    let how = check(tmp.path(), head, false).unwrap();
    assert_eq!(
        how,
        OpenCheck {
            by_seal: seals.len() as u32,
            by_frames: 1,
            by_walk: 0,
            sealed_now: 0
        }
    );
    reopen(tmp.path()).unwrap();
}

/// What recovery's walk of the last segment found, as a writer's open
/// hands it to the check.
fn walked(dir: &Path) -> Walked {
    let log = dir.join("log");
    let proof = Proof::gather(&log, &dir.join("derived")).unwrap();
    let tail = analyze(&log, proof).unwrap();
    let (last, head) = (tail.last.unwrap(), tail.head.unwrap());
    Walked {
        first_seq: last.first_seq,
        first_prev: last.first_prev.unwrap(),
        last: (head.seq, head.hash),
    }
}

#[test]
fn the_segment_recovery_walked_is_not_read_again_and_nothing_else_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let head = build(tmp.path());
    let (log, index) = (tmp.path().join("log"), tmp.path().join("index"));
    let w = walked(tmp.path());
    let segs = segments(&log).unwrap();
    assert_eq!(w.first_seq, segs.last().unwrap().0);
    let how = check_through(&log, &index, head, false, Some(w)).unwrap();
    let sealed = segs.len() as u32 - 1;
    assert_eq!(
        how,
        OpenCheck {
            by_seal: sealed,
            by_frames: 0,
            by_walk: 1,
            sealed_now: 0
        }
    );
    // A walk that does not end where the check does is not used.
    let how = check_through(&log, &index, head - 1, false, Some(w)).unwrap();
    assert_eq!((how.by_walk, how.by_frames), (0, 1));
    // The walk's first link must still join the segment before it.
    let mut unlinked = w;
    unlinked.first_prev[0] ^= 1;
    let err = check_through(&log, &index, head, false, Some(unlinked)).unwrap_err();
    assert_eq!(err.corrupt_seq(), Some(w.first_seq), "{err}");
    // Damage in a sealed segment is refused at the same seq, walk or not.
    let path = &segs[1].1;
    let mut bytes = std::fs::read(path).unwrap();
    let data_end = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[64 + (data_end - 64) / 2] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    let with = check_through(&log, &index, head, false, Some(w)).unwrap_err();
    let without = check_through(&log, &index, head, false, None).unwrap_err();
    assert!(with.corrupt_seq().is_some(), "{with}");
    assert_eq!(
        with.corrupt_seq(),
        without.corrupt_seq(),
        "{with} / {without}"
    );
}

#[test]
fn a_missing_or_damaged_seal_costs_a_frame_check_and_is_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let head = build(tmp.path());
    let seals = seal_files(tmp.path());
    let kept = std::fs::read(&seals[1]).unwrap();
    std::fs::remove_file(&seals[0]).unwrap();
    let mut damaged = kept.clone();
    damaged[60] ^= 0x10;
    std::fs::write(&seals[1], &damaged).unwrap();
    let without = check(tmp.path(), head, false).unwrap();
    assert_eq!((without.by_frames, without.sealed_now), (3, 0));
    assert!(
        !seals[0].exists(),
        "a check that does not write seals writes none"
    );
    let how = check(tmp.path(), head, true).unwrap();
    assert_eq!((how.by_frames, how.sealed_now), (3, 2));
    assert_eq!(
        std::fs::read(&seals[1]).unwrap(),
        kept,
        "the same seal again"
    );
    assert!(seals[0].exists());
    assert_eq!(check(tmp.path(), head, false).unwrap().by_frames, 1);
}

#[test]
fn a_changed_byte_in_a_sealed_segment_is_refused_at_its_seq_as_without_seals() {
    let tmp = tempfile::tempdir().unwrap();
    let head = build(tmp.path());
    let segs = segments(&tmp.path().join("log")).unwrap();
    let (first, path) = &segs[1];
    // A byte in the middle of the second segment's data: a frame's bytes.
    let mut bytes = std::fs::read(path).unwrap();
    let data_end = bytes.iter().rposition(|b| *b != 0).unwrap();
    let at = 64 + (data_end - 64) / 2;
    bytes[at] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    let sealed = check(tmp.path(), head, true).unwrap_err();
    let seals = seal_files(tmp.path());
    for s in &seals {
        std::fs::remove_file(s).unwrap();
    }
    let unsealed = check(tmp.path(), head, false).unwrap_err();
    let (LogError::Corrupt { seq: a, .. }, LogError::Corrupt { seq: b, .. }) = (&sealed, &unsealed)
    else {
        panic!("corruption both ways: {sealed} / {unsealed}");
    };
    assert_eq!(a, b, "the same seq with and without seals");
    assert!(
        *a >= *first && *a < segs[2].0,
        "in the damaged segment: {a}"
    );
    assert_eq!(sealed.to_string(), unsealed.to_string());
    assert!(reopen(tmp.path()).is_err(), "the writer refuses it");
}

#[test]
fn a_seal_of_another_segment_does_not_vouch_for_this_one() {
    let tmp = tempfile::tempdir().unwrap();
    let head = build(tmp.path());
    let segs = segments(&tmp.path().join("log")).unwrap();
    // The second segment's file replaced by the third's bytes (renamed to
    // its place); the seals stay as they were.
    std::fs::copy(&segs[2].1, &segs[1].1).unwrap();
    let err = check(tmp.path(), head, true).unwrap_err();
    let LogError::Corrupt { seq, .. } = err else {
        panic!("corruption: {err}");
    };
    assert_eq!(seq, segs[1].0, "named at the segment's first seq");
}

/// Every entity's seqs, from the records themselves.
fn truth(dir: &Path) -> std::collections::BTreeMap<String, Vec<u64>> {
    use parley::reader::{LedgerRead, LogView};
    let (view, _) = LogView::open(dir).unwrap();
    let mut out: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    view.scan(1, view.head_seq(), &mut |r| {
        for e in r.record.index_entities() {
            let seqs = out.entry(e.to_string()).or_default();
            if seqs.last() != Some(&r.record.envelope.seq) {
                seqs.push(r.record.envelope.seq);
            }
        }
        Ok(())
    })
    .unwrap();
    out
}

/// Opens the ledger, appends one record naming `sku:{probe}`, closes it;
/// then every entity's seqs as a read-only view finds them in the index
/// files the writer left, and as the truth has them.
fn answers_after_a_write(dir: &Path, probe: &str) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    use parley::reader::{LedgerRead, LogView};
    let (ledger, _) = Ledger::open(dir, opts()).unwrap();
    let at = ledger.head().unwrap().recorded_at_ms + 1;
    let text = format!(
        r#"{{"producer":"ops","at_ms":{at},"kind":"broadcast","topic":"probe","entity":"sku:{probe}"}}"#
    );
    let head = ledger
        .append(parley::Command::parse(&text).unwrap())
        .unwrap()
        .seq;
    ledger.close().unwrap();
    // The partial index the writer left covers the whole active segment,
    // each frame where the segment has it.
    let (first, path) = segments(&dir.join("log")).unwrap().pop().unwrap();
    let file = parley::log::index::IndexFile::open(
        &dir.join("index")
            .join(parley::log::index::file_name(first, true)),
    )
    .unwrap();
    assert_eq!(file.last_seq(), head);
    assert_eq!(
        file.offsets().unwrap(),
        parley::log::read::walk_offsets(&path, first, u64::MAX).unwrap()
    );
    let truth = truth(dir);
    let (view, _) = LogView::open(dir).unwrap();
    let got = truth
        .keys()
        .map(|e| {
            view.entity_seqs(&parley::entity::EntityRef::parse(e).unwrap())
                .unwrap()
        })
        .collect();
    (got, truth.into_values().collect())
}

#[test]
fn the_active_segments_index_taken_up_from_a_stale_or_damaged_partial_file_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let segs = segments(&tmp.path().join("log")).unwrap();
    let active = segs.last().unwrap().0;
    let partial = tmp
        .path()
        .join("index")
        .join(parley::log::index::file_name(active, true));
    let stale = std::fs::read(&partial).expect("a clean close leaves the partial index");
    // More records in the same segment, then the older partial file back:
    // the open takes it up and indexes the records after it.
    let (ledger, _) = Ledger::open(tmp.path(), opts()).unwrap();
    for i in 0..5 {
        let text = format!(
            r#"{{"producer":"ops","at_ms":{},"kind":"broadcast","topic":"late","entity":"sku:L{i}"}}"#,
            1_764_148_100_000u64 + i
        );
        ledger
            .append(parley::Command::parse(&text).unwrap())
            .unwrap();
    }
    ledger.close().unwrap();
    assert_eq!(
        segments(&tmp.path().join("log")).unwrap().last().unwrap().0,
        active,
        "still the same active segment"
    );
    std::fs::write(&partial, &stale).unwrap();
    let (got, truth) = answers_after_a_write(tmp.path(), "P1");
    assert_eq!(got, truth, "from a stale partial");
    // A damaged partial file is not taken up: the same answers.
    let mut damaged = std::fs::read(&partial).unwrap();
    let n = damaged.len();
    damaged[n - 5] ^= 0x40;
    std::fs::write(&partial, &damaged).unwrap();
    let (got, truth) = answers_after_a_write(tmp.path(), "P2");
    assert_eq!(got, truth, "from a damaged partial");
}
