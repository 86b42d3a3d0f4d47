//! Signed checkpoints (`parley checkpoint`, `verify --key --checkpoint`):
//! the writer signs its head at open, every N records and at close; an
//! exported checkpoint kept elsewhere proves the log still extends it. An
//! insider who re-hashes the chain from seq 2 on passes plain `verify` but
//! not the checkpoint; a truncated chain fails too, each naming where the
//! log departs from what was signed.

mod common;

use std::path::Path;

use common::parley;
use parley::log::disk::OsDisk;
use parley::log::segment::SegmentLog;
use parley::log::{encode_record, LogEngine};
use parley::reader::LedgerRead;
use parley::record::{Body, ZERO_HASH};

fn store_commands(n: usize) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    text.lines().take(n).map(|l| format!("{l}\n")).collect()
}

/// A signed ledger in `dir` (keys in `dir/keys`): the store's setup with a
/// checkpoint every 5 records. Returns the key directory.
fn signed_ledger(dir: &Path) -> std::path::PathBuf {
    let keys = dir.join("keys");
    let r = parley(
        &["checkpoint", "keygen", "--out", keys.to_str().unwrap()],
        "",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let data = dir.join("L");
    let key = keys.join("signing.key");
    let r = parley(
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--admin",
            "ops",
            "--signing-key",
            key.to_str().unwrap(),
            "--checkpoint-every",
            "5",
            "-",
        ],
        &store_commands(12),
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    keys
}

/// `parley run --data DATA --signing-key KEY -` with `stdin`.
fn signed_run(data: &Path, key: &Path, stdin: &str) -> common::Ran {
    parley(
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--signing-key",
            key.to_str().unwrap(),
            "-",
        ],
        stdin,
    )
}

fn records(data: &Path) -> Vec<parley::record::StoredRecord> {
    let (view, _) = parley::reader::LogView::open(data).unwrap();
    let mut out = Vec::new();
    view.scan(1, u64::MAX, &mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

/// What an insider with file access can do: write a new, valid chain of
/// `records` (their hashes recomputed) into `to`.
fn rewrite(records: Vec<parley::record::Record>, to: &Path) {
    std::fs::create_dir_all(to.join("log")).unwrap();
    let (mut log, _) = SegmentLog::open(
        &to.join("log"),
        1 << 20,
        Default::default(),
        &to.join("index"),
        None,
        OsDisk::shared(),
    )
    .unwrap();
    let mut prev = ZERO_HASH;
    let mut batch = Vec::new();
    for record in records {
        let enc = encode_record(&record, &prev).unwrap();
        prev = enc.hash;
        batch.push(enc);
    }
    log.append(&batch, &mut Vec::new()).unwrap();
    log.record_evidence(true).unwrap();
}

/// `parley checkpoint export` of `data` into `file`.
fn export(data: &Path, file: &Path) -> std::path::PathBuf {
    let r = parley(
        &[
            "checkpoint",
            "export",
            "--data",
            data.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    file.to_path_buf()
}

/// `parley verify --key K --checkpoint F [extra]`: (exit code, stdout, stderr).
fn verify_with(
    data: &Path,
    keys: &Path,
    file: &Path,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let pubkey = keys.join("signing.pub");
    let mut args = vec![
        "verify",
        "--data",
        data.to_str().unwrap(),
        "--key",
        pubkey.to_str().unwrap(),
        "--checkpoint",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let r = parley(&args, "");
    (r.code, r.stdout, r.stderr)
}

fn verify_words(data: &Path, keys: &Path, file: &Path) -> (Option<i32>, String, String) {
    verify_with(data, keys, file, &[])
}

fn verify_json(data: &Path, keys: &Path, file: &Path) -> (Option<i32>, serde_json::Value) {
    let (code, out, err) = verify_with(data, keys, file, &["--json"]);
    let last = out.lines().last().unwrap_or_default().to_owned();
    (
        code,
        serde_json::from_str(&last).unwrap_or_else(|_| panic!("{out}{err}")),
    )
}

#[test]
fn the_writer_signs_at_open_every_n_records_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let keys = signed_ledger(dir.path());
    let data = dir.path().join("L");
    let all = records(&data);
    let checkpoints: Vec<_> = all
        .iter()
        .filter_map(|r| match &r.record.body {
            Body::Checkpoint { checkpoint } => Some((r.record.envelope.seq, checkpoint.seq)),
            _ => None,
        })
        .collect();
    // At open (the genesis batch), at the end of a batch 5 records or more
    // after the last one (`run` pipelines the 12 commands into one), and at
    // the close when anything followed.
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");
    assert_eq!(checkpoints[0].1, 4, "the genesis batch is signed at open");
    for (at, signs) in &checkpoints {
        assert_eq!(*signs + 1, *at, "a checkpoint signs the record before it");
    }
    assert_eq!(
        checkpoints.last().unwrap().0,
        all.len() as u64,
        "the close signs the head"
    );
    // Reopening a signed head and closing adds nothing.
    let key = keys.join("signing.key");
    let r = signed_run(&data, &key, "");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(records(&data).len(), all.len());
    // Replay accepts them: they change no decision.
    let r = parley(&["replay", "--data", data.to_str().unwrap(), "--json"], "");
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

#[test]
fn an_exported_checkpoint_proves_the_log_extends_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = signed_ledger(dir.path());
    let data = dir.path().join("L");
    let file = export(&data, &dir.path().join("cp.json"));
    let (code, v) = verify_json(&data, &keys, &file);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert!(v["checkpoints_held"].as_u64().unwrap() >= 2, "{v}");
    // More records after the export: still an extension.
    let key = keys.join("signing.key");
    let more =
        r#"{"producer":"ops","at_ms":1764147700000,"kind":"human_registered","human":"lee"}"#;
    let r = signed_run(&data, &key, &format!("{more}\n"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (code, v) = verify_json(&data, &keys, &file);
    assert_eq!(code, Some(0), "{v}");
}

#[test]
fn a_chain_rehashed_from_seq_2_passes_verify_but_not_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let keys = signed_ledger(dir.path());
    let data = dir.path().join("L");
    let file = export(&data, &dir.path().join("cp.json"));
    // The insider changes the rule set (seq 2) and re-hashes everything after.
    let mut all: Vec<_> = records(&data).into_iter().map(|r| r.record).collect();
    match &mut all[1].body {
        Body::RulesInstalled { text } => text.push_str("\n# one line more\n"),
        other => panic!("seq 2 is {}", other.kind()),
    }
    let forged = dir.path().join("forged");
    rewrite(all, &forged);
    let r = parley(&["verify", "--data", forged.to_str().unwrap()], "");
    assert_eq!(
        r.code,
        Some(0),
        "a re-hashed chain is a valid chain: {}",
        r.stdout
    );
    let (code, v) = verify_json(&forged, &keys, &file);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false);
    let (from, by) = (
        v["departs_from"].as_u64().unwrap(),
        v["departs_by"].as_u64().unwrap(),
    );
    assert!(from <= 2 && 2 <= by, "the departure range holds seq 2: {v}");
    assert!(v["reason"].as_str().unwrap().contains("rewritten"), "{v}");
    // In words, too.
    let (_, out, _) = verify_words(&forged, &keys, &file);
    assert!(out.contains("NOT SIGNED") && out.contains("seq"), "{out}");
}

#[test]
fn a_truncated_chain_fails_naming_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let keys = signed_ledger(dir.path());
    let data = dir.path().join("L");
    let file = export(&data, &dir.path().join("cp.json"));
    let all: Vec<_> = records(&data).into_iter().map(|r| r.record).collect();
    let keep = all.len() - 4;
    let cut = dir.path().join("cut");
    rewrite(all.into_iter().take(keep).collect(), &cut);
    let (code, v) = verify_json(&cut, &keys, &file);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["departs_from"].as_u64(), Some(keep as u64 + 1), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("cut short"), "{v}");
}

#[test]
fn a_wrong_key_a_forged_file_and_a_readable_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = signed_ledger(dir.path());
    let data = dir.path().join("L");
    let file = export(&data, &dir.path().join("cp.json"));
    // Another key.
    let other = dir.path().join("other");
    parley(
        &["checkpoint", "keygen", "--out", other.to_str().unwrap()],
        "",
    );
    let (code, v) = verify_json(&data, &other, &file);
    assert_ne!(code, Some(0), "{v}");
    // A checkpoint file whose head was edited: its signature fails.
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let head = cp["head_hash"].as_str().unwrap().to_owned();
    let flipped = if head.starts_with('0') { "1" } else { "0" };
    cp["head_hash"] = serde_json::json!(format!("{flipped}{}", &head[1..]));
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, cp.to_string()).unwrap();
    let (code, _, err) = verify_words(&data, &keys, &forged);
    assert_ne!(code, Some(0));
    assert!(err.contains("signature does not verify"), "{err}");
    // A key file others can read is refused before anything is written.
    let key = keys.join("signing.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = signed_run(&data, &key, "");
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    // Keygen never overwrites.
    let r = parley(
        &["checkpoint", "keygen", "--out", keys.to_str().unwrap()],
        "",
    );
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("never overwrites"), "{}", r.stderr);
}
