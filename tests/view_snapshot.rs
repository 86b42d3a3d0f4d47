//! A read-only view's context starts from the writer's context snapshot
//! (`DIR/derived/context.snapshot`, read as a file) when one of this log is
//! at or before the seq asked for. The context must be the one a fold from
//! the first record gives; a snapshot that is damaged, cut short or of
//! another log must be passed over for that fold; damage to a record the
//! snapshot stands for must still be refused at its seq; and nothing under
//! the data directory may change.

mod common;

use std::path::Path;

use common::{copy_dir, flip_byte, frame_map, snapshot_files};
use parley::derived::{read_snapshot_file, SNAPSHOT_FILE};
use parley::ledger::{Ledger, Options};
use parley::reader::{fold, LedgerRead, LogView};

fn opts(id: &str) -> Options {
    Options {
        snapshot_every: 64,
        ..common::small_segments(id)
    }
}

/// Stock movements of the demo store from `from`, `n` of them, one command
/// each, on a writer opened on `dir`; closed (the close stores a snapshot
/// at its head). Returns the head.
fn append(dir: &Path, id: &str, from: u64, n: u64) -> u64 {
    let (ledger, _) = Ledger::open(dir, opts(id)).unwrap();
    if from == 0 {
        common::append_store(&ledger);
    }
    for i in from..from + n {
        let at = 1_764_147_700_000u64 + 1_000 * i;
        ledger.append(common::stock_change(at, i)).unwrap();
    }
    let head = ledger.head().unwrap().seq;
    ledger.close().unwrap();
    head
}

/// A closed ledger whose snapshot file is at `earlier`, before its head
/// `head`: the snapshot the first close stored, put back after a second
/// writer appended more. Returns (earlier, head).
fn with_an_earlier_snapshot(dir: &Path, id: &str) -> (u64, u64) {
    let earlier = append(dir, id, 0, 300);
    let file = dir.join("derived").join(SNAPSHOT_FILE);
    let kept = std::fs::read(&file).unwrap();
    let head = append(dir, id, 300, 120);
    std::fs::write(&file, kept).unwrap();
    assert!(earlier < head);
    (earlier, head)
}

/// The state hash a fold from the first record gives at `seq`.
fn folded(view: &LogView, seq: u64) -> String {
    fold(view.files().unwrap(), seq).unwrap().state_hash()
}

/// Everything under the data directory, to prove a view wrote nothing.
fn all_files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    snapshot_files(dir)
}

#[test]
fn a_view_starts_from_the_snapshot_and_gets_the_context_a_fold_gets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (earlier, head) = with_an_earlier_snapshot(dir, "ldg-view-snap");
    assert_eq!(
        read_snapshot_file(&dir.join("derived")).map(|s| s.0),
        Some(earlier)
    );
    let before = all_files(dir);
    let (view, _) = LogView::open(dir).unwrap();
    assert_eq!(view.head_seq(), head);
    // At the head: the snapshot, then the records after it.
    let (ctx, from) = view.context_from_snapshot(head).unwrap();
    assert_eq!(from, Some(earlier));
    assert_eq!(ctx.seq, head);
    assert_eq!(ctx.state_hash(), folded(&view, head));
    // At the snapshot's own seq, and between it and the head.
    for seq in [earlier, earlier + 1, (earlier + head) / 2] {
        let (ctx, from) = view.context_from_snapshot(seq).unwrap();
        assert_eq!(from, Some(earlier), "at {seq}");
        assert_eq!(ctx.state_hash(), folded(&view, seq), "at {seq}");
    }
    // Before the snapshot: a fold.
    let (ctx, from) = view.context_from_snapshot(earlier - 1).unwrap();
    assert_eq!(from, None);
    assert_eq!(ctx.state_hash(), folded(&view, earlier - 1));
    assert!(
        all_files(dir) == before,
        "a view wrote under the data directory"
    );
}

#[test]
fn a_snapshot_that_cannot_stand_for_the_log_is_passed_over_for_a_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let (_, head) = with_an_earlier_snapshot(&clean, "ldg-view-snap");
    // Another ledger's snapshot: same commands, another ledger id, so every
    // record hash differs.
    let other = tmp.path().join("other");
    append(&other, "ldg-view-other", 0, 300);
    let file = |d: &Path| d.join("derived").join(SNAPSHOT_FILE);
    let good = std::fs::read(file(&clean)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("another log's", std::fs::read(file(&other)).unwrap()),
        ("cut short", good[..good.len() / 2].to_vec()),
        ("a flipped byte in the context", {
            let mut b = good.clone();
            let at = b.len() - 10;
            b[at] ^= 0x40;
            b
        }),
        ("a flipped byte in its header", {
            let mut b = good.clone();
            b[1] ^= 0x01;
            b
        }),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let work = tmp.path().join("work");
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&clean, &work);
        std::fs::write(file(&work), bytes).unwrap();
        let (view, _) = LogView::open(&work).unwrap();
        let (ctx, from) = view.context_from_snapshot(head).unwrap();
        assert_eq!(from, None, "{what}");
        assert_eq!(ctx.state_hash(), folded(&view, head), "{what}");
    }
    // No snapshot file at all.
    std::fs::remove_file(file(&clean)).unwrap();
    let (view, _) = LogView::open(&clean).unwrap();
    assert_eq!(view.context_from_snapshot(head).unwrap().1, None);
}

#[test]
fn damage_a_snapshot_stands_for_is_refused_at_its_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let (earlier, head) = with_an_earlier_snapshot(&clean, "ldg-view-snap");
    let frames = frame_map(&clean.join("log"));
    let segments: Vec<_> = {
        let mut s: Vec<_> = frames.iter().map(|f| f.1.clone()).collect();
        s.dedup();
        s
    };
    assert!(segments.len() > 3, "several segments: {}", segments.len());
    // A record in the first sealed segment, one in the middle of the log,
    // the snapshot's own record and the one just before it.
    let targets = [5, earlier / 2, earlier - 1, earlier];
    for seq in targets {
        let (_, path, at, len) = frames.iter().find(|f| f.0 == seq).unwrap().clone();
        let work = tmp.path().join("work");
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&clean, &work);
        let path = work.join("log").join(path.file_name().unwrap());
        flip_byte(&path, at + len / 2);
        let before = all_files(&work);
        let (view, _) = LogView::open(&work).unwrap();
        let err = view.context_from_snapshot(head).unwrap_err();
        assert_eq!(err.corrupt_seq(), Some(seq), "flip at {seq}: {err}");
        assert!(all_files(&work) == before, "flip at {seq}: a view wrote");
    }
}

#[test]
fn beside_a_running_writer_a_view_reads_the_snapshot_it_finds_up_to_its_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ledger, _) = Ledger::open(dir, opts("ldg-view-live")).unwrap();
    common::append_store(&ledger);
    let mut used = 0;
    for round in 0..6u64 {
        for i in 0..50 {
            let n = round * 50 + i;
            let at = 1_764_147_700_000u64 + 1_000 * n;
            ledger.append(common::stock_change(at, n)).unwrap();
        }
        // The snapshot thread may or may not have stored the newest
        // snapshot yet: whichever file is there, the context is a fold's.
        let (view, report) = LogView::open(dir).unwrap();
        assert!(report.writer_running);
        let head = view.head_seq();
        let (ctx, from) = view.context_from_snapshot(head).unwrap();
        assert!(from.is_none_or(|s| s <= head), "round {round}: {from:?}");
        assert_eq!(ctx.seq, head);
        assert_eq!(ctx.state_hash(), folded(&view, head), "round {round}");
        used += u32::from(from.is_some());
    }
    ledger.close().unwrap();
    // After the close, the snapshot at the head is there and used.
    let (view, _) = LogView::open(dir).unwrap();
    let head = view.head_seq();
    assert_eq!(view.context_from_snapshot(head).unwrap().1, Some(head));
    println!("{used} of 6 views beside the writer started from a snapshot");
}
