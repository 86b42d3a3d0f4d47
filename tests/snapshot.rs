//! Context snapshots in the derived store: a writer's open starts from the
//! snapshot and folds only the log after it, and the result is the same
//! context a fold of the whole log gives. A snapshot that is not of this log,
//! does not decode, or was written by another format is ignored; one that
//! decodes but holds a wrong context is what `verify --derived` reports.

mod common;

use std::path::Path;

use parley::command::Command;
use parley::derived::Derived;
use parley::ledger::{Ledger, Options};

fn commands(n: usize) -> Vec<Command> {
    let mut out = vec![
        Command::parse(r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}"#).unwrap(),
        Command::parse(r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":45}}"#).unwrap(),
    ];
    for i in 0..n {
        let sku = format!("S{}", i % 40);
        let line = if i % 3 == 0 {
            format!(
                r#"{{"producer":"merchandising","kind":"catalog","sku":"{sku}","category":"audio","cost_minor":1000,"price_minor":{},"stock":5,"lifecycle":"active"}}"#,
                2000 + i
            )
        } else {
            format!(
                r#"{{"producer":"pricing","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"{sku}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":-10,"margin_minor":-10}},"objective":"sales-growth"}}}}"#,
                1900 + i
            )
        };
        out.push(Command::parse(&line).unwrap());
    }
    out
}

fn opts(every: u64) -> Options {
    Options {
        snapshot_every: every,
        ..Options::default()
    }
}

fn run(dir: &Path, cmds: Vec<Command>, every: u64) {
    let (ledger, _) = Ledger::open(dir, opts(every)).unwrap();
    for c in cmds {
        // Some intentions are refused or rejected; that is part of the context too.
        common::append_or_refused(&ledger, c);
    }
    ledger.close().unwrap();
}

/// The fold of the whole log, and the head.
fn folded(dir: &Path) -> (String, u64) {
    let (view, _) = parley::reader::LogView::open(dir).unwrap();
    let head = parley::reader::LedgerRead::head_seq(&view);
    (view.context_at(head).unwrap().state_hash(), head)
}

#[test]
fn a_clean_close_leaves_a_snapshot_the_next_open_starts_from() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), commands(300), 1_000_000);
    let (want, head) = folded(dir.path());
    let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(
        report.context_from_snapshot,
        Some(head),
        "close wrote a snapshot at the head"
    );
    assert_eq!(ledger.derived_differences().unwrap(), None);
    // More records after the snapshot: the open folds only those (a writer
    // dropped without `close` still closes, and snapshots, on drop).
    for c in commands(50) {
        common::append_or_refused(&ledger, c);
    }
    drop(ledger);
    let (want2, head2) = folded(dir.path());
    assert!(head2 > head);
    let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
    let from = report.context_from_snapshot.unwrap();
    assert!(from >= head, "{from} {head}");
    assert_ne!(want, want2);
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
}

#[test]
fn snapshots_are_written_every_n_records_and_match_a_fold() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, report) = Ledger::open(dir.path(), opts(64)).unwrap();
    let start = report.context_from_snapshot.unwrap_or(0);
    let mut taken = std::collections::BTreeSet::new();
    // The writer's rule: a snapshot at the end of a batch (here, of one
    // command) once 64 records passed since the last one.
    let (mut due, mut last) = (0u64, start);
    for c in commands(400) {
        common::append_or_refused(&ledger, c);
        let head = parley::reader::LedgerRead::head_seq(&ledger);
        if head >= last + 64 {
            (due, last) = (due + 1, head);
        }
        taken.extend(ledger.snapshot_seq().unwrap());
    }
    // A thread stores each snapshot; the writer waits for one before it
    // takes the next. So the read after the command that follows a
    // snapshot's command sees that snapshot or the one before it: of any two
    // in a row, one is seen (the last one due may not be stored yet).
    let head = parley::reader::LedgerRead::head_seq(&ledger);
    assert!(due >= 8, "{due} due up to {head}");
    assert!(
        taken.len() as u64 >= (due - 1) / 2,
        "{taken:?} of {due} up to {head}"
    );
    assert!(taken.iter().all(|s| *s < head), "{taken:?}");
    assert_eq!(ledger.derived_differences().unwrap(), None);
    ledger.close().unwrap();
    let d = Derived::open(&dir.path().join("derived")).unwrap().0;
    let (seq, _, bytes) = d.snapshot().unwrap().expect("a snapshot");
    drop(d);
    let (view, _) = parley::reader::LogView::open(dir.path()).unwrap();
    let ctx = parley::context::Context::from_snapshot(&bytes).unwrap();
    let folded = view.context_at(seq).unwrap();
    assert_eq!(ctx.state_hash(), folded.state_hash());
    // The writer encodes in one pass into a buffer sized from its last
    // snapshot: the very bytes of the two-pass encoding, whatever the size.
    assert_eq!(
        bytes,
        folded.to_snapshot(),
        "the stored bytes are the fold's"
    );
    for capacity in [0, bytes.len() / 2, bytes.len() * 2] {
        assert_eq!(folded.to_snapshot_within(capacity), bytes, "{capacity}");
    }
}

/// Replaces the stored snapshot (the writer is closed).
fn put(dir: &Path, seq: u64, hash: [u8; 32], bytes: &[u8]) {
    let (d, _) = Derived::open(&dir.join("derived")).unwrap();
    d.put_snapshot(seq, hash, bytes).unwrap();
    d.flush().unwrap();
}

#[test]
fn a_snapshot_not_of_this_log_or_not_decoding_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), commands(120), 1_000_000);
    let (want, head) = folded(dir.path());
    let (view, _) = parley::reader::LogView::open(dir.path()).unwrap();
    let good = view.context_at(head).unwrap().to_snapshot();
    drop(view);
    for (hash, bytes) in [
        ([7u8; 32], good.clone()),
        ([0u8; 32], b"not a context".to_vec()),
    ] {
        let real = {
            let (v, _) = parley::reader::LogView::open(dir.path()).unwrap();
            parley::reader::LedgerRead::read(&v, &[head]).unwrap()[0].hash
        };
        let hash = if bytes == good { hash } else { real };
        put(dir.path(), head, hash, &bytes);
        let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
        assert_eq!(report.context_from_snapshot, None, "ignored");
        assert_eq!(folded(dir.path()).0, want);
        ledger.close().unwrap();
    }
}

/// The snapshot file is written without fsync: after a crash it may be cut
/// short, zeroed or missing. Each is ignored and the log folded instead.
#[test]
fn a_torn_zeroed_or_missing_snapshot_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), commands(120), 1_000_000);
    let (want, head) = folded(dir.path());
    let file = dir.path().join("derived").join("context.snapshot");
    let whole = std::fs::read(&file).expect("close wrote the snapshot file");
    let torn = whole[..whole.len() / 2].to_vec();
    let zeroed = vec![0u8; whole.len()];
    for damaged in [Some(torn), Some(zeroed), None] {
        match &damaged {
            Some(bytes) => std::fs::write(&file, bytes).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
        assert_eq!(report.context_from_snapshot, None, "ignored");
        assert_eq!(ledger.head().map(|h| h.seq), Some(head));
        // Close writes a good one again; damage it anew next round.
        ledger.close().unwrap();
        assert_eq!(folded(dir.path()).0, want);
        assert!(std::fs::read(&file).unwrap().len() > 100);
    }
    // And the next open starts from the snapshot close wrote.
    let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(report.context_from_snapshot, Some(head));
    ledger.close().unwrap();
}

#[test]
fn a_wrong_context_under_a_right_seal_is_what_verify_derived_reports() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), commands(120), 1_000_000);
    let (view, _) = parley::reader::LogView::open(dir.path()).unwrap();
    let head = parley::reader::LedgerRead::head_seq(&view);
    let hash = parley::reader::LedgerRead::read(&view, &[head]).unwrap()[0].hash;
    // The context one record earlier, sealed as if it were the head's.
    let mut wrong = view.context_at(head - 1).unwrap();
    wrong.seq = head;
    drop(view);
    put(dir.path(), head, hash, &wrong.to_snapshot());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "verify",
            "--data",
            dir.path().to_str().unwrap(),
            "--derived",
            "--json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("differs from a fold of the log"), "{text}");
    // `parley rebuild` drops it with the rest of the derived store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["rebuild", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(report.context_from_snapshot, None);
    ledger.close().unwrap();
    // And the next open starts from the snapshot its close wrote, equal to a fold.
    let (view, _) = parley::reader::LogView::open(dir.path()).unwrap();
    let head = parley::reader::LedgerRead::head_seq(&view);
    let want = fold_hash(&view, head);
    let (ledger, report) = Ledger::open(dir.path(), opts(1_000_000)).unwrap();
    assert_eq!(report.context_from_snapshot, Some(head));
    assert_eq!(ledger.context_at(head).unwrap().state_hash(), want);
    ledger.close().unwrap();
}

fn fold_hash(view: &parley::reader::LogView, head: u64) -> String {
    view.context_at(head).unwrap().state_hash()
}
