//! The `parley` binary end to end: run → verify → export → tamper → import.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::parley_bin;

fn parley(args: &[&str], stdin: Option<&str>) -> Output {
    common::parley_output(args, stdin.unwrap_or(""))
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SCRIPT: &str = r#"{"producer":"admin","at_ms":1000,"kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":45}}
{"producer":"admin","at_ms":1000,"kind":"agent_registered","profile":{"agent":"inventory","domain":"inventory","priority":30}}
{"producer":"merchandising","at_ms":1000,"kind":"catalog","sku":"SKU-1","category":"headphones","cost_minor":6200,"price_minor":7999,"stock":10,"lifecycle":"active"}
{"producer":"inventory","at_ms":1001,"idempotency_key":"stock-1","kind":"stock_changed","sku":"SKU-1","stock":50}
{"producer":"inventory","at_ms":1002,"idempotency_key":"stock-1","kind":"stock_changed","sku":"SKU-1","stock":50}

{"producer":"competitor-tracking","at_ms":1003,"kind":"broadcast","topic":"competitor_price_drop","entity":"sku:SKU-1","detail":{"drop_bp":1000}}
"#;

#[test]
fn run_verify_export_tamper_import() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let data_s = data.to_str().unwrap();
    let out = parley(&["run", "--data", data_s, "-"], Some(SCRIPT));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = json_lines(&out);
    let seqs: Vec<_> = results.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        vec![5, 6, 7, 8, 8, 9],
        "the retried key returns the original seq"
    );
    assert_eq!(results[4]["duplicate"], true);
    assert_eq!(results[5]["line"], 7, "results name their input line");

    let out = parley(&["verify", "--data", data_s, "--json"], None);
    assert!(out.status.success());
    let v = &json_lines(&out)[0];
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["records"].as_u64(),
            v["head_seq"].as_u64()
        ),
        (Some(true), Some(9), Some(9))
    );
    let head_hash = v["head_hash"].as_str().unwrap().to_owned();

    let export = dir.path().join("export.jsonl");
    let out = parley(
        &[
            "export",
            "--data",
            data_s,
            "--out",
            export.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(text.lines().count(), 9);

    // One byte of one record's body changed: 50 → 51 in seq 8.
    let tampered = text.replacen("\"stock\":50", "\"stock\":51", 1);
    assert_ne!(tampered, text);
    let bad = dir.path().join("tampered.jsonl");
    std::fs::write(&bad, tampered).unwrap();
    let target = dir.path().join("from-tampered");
    let out = parley(
        &[
            "import",
            "--data",
            target.to_str().unwrap(),
            bad.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let r = &json_lines(&out)[0];
    assert_eq!(
        (r["ok"].as_bool(), r["first_bad_seq"].as_u64()),
        (Some(false), Some(8))
    );
    assert!(
        !target.join("log").exists(),
        "a refused import leaves no ledger"
    );

    let restored = dir.path().join("restored");
    let out = parley(
        &[
            "import",
            "--data",
            restored.to_str().unwrap(),
            export.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = parley(
        &[
            "verify",
            "--data",
            restored.to_str().unwrap(),
            "--json",
            "--derived",
        ],
        None,
    );
    let v = &json_lines(&out)[0];
    assert_eq!(v["ok"], true);
    assert_eq!(v["head_hash"].as_str(), Some(head_hash.as_str()));

    // Importing over an existing ledger is refused.
    let out = parley(
        &[
            "import",
            "--data",
            restored.to_str().unwrap(),
            export.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a ledger"));
}

#[test]
fn bad_lines_are_reported_by_line_and_good_ones_still_land() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let script = "{\"producer\":\"a\",\"at_ms\":5,\"kind\":\"fact\",\"entity\":\"shelf:A\",\"attribute\":\"stock\",\"value\":1}\n\
                  {not json\n\
                  {\"producer\":\"a\",\"at_ms\":6,\"kind\":\"fact\",\"entity\":\"shelf:A\",\"attribute\":\"stock\",\"valeu\":1}\n\
                  {\"producer\":\"a\",\"at_ms\":4,\"kind\":\"fact\",\"entity\":\"shelf:A\",\"attribute\":\"stock\",\"value\":1}\n\
                  {\"producer\":\"a\",\"at_ms\":7,\"kind\":\"fact\",\"entity\":\"shelf:A\",\"attribute\":\"stock\",\"value\":2}\n";
    let out = parley(
        &["run", "--data", data.to_str().unwrap(), "-"],
        Some(script),
    );
    assert_eq!(out.status.code(), Some(1));
    let r = json_lines(&out);
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["seq"], 5);
    assert!(r[1]["error"].as_str().unwrap().contains("not valid JSON"));
    assert!(r[2]["error"].as_str().unwrap().contains("valeu"));
    assert!(r[3]["error"]
        .as_str()
        .unwrap()
        .contains("time goes backwards"));
    assert_eq!(r[4]["seq"], 6);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 5 commands were not appended"));
}

#[test]
fn an_oversized_line_is_refused_without_reading_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let huge = format!("{{\"producer\":\"a\",\"kind\":\"fact\",\"entity\":\"e\",\"attribute\":\"x\",\"value\":\"{}\"}}\n", "x".repeat(3 << 20));
    let script = format!("{huge}{{\"producer\":\"a\",\"kind\":\"fact\",\"entity\":\"e\",\"attribute\":\"x\",\"value\":1}}\n");
    let out = parley(
        &["run", "--data", data.to_str().unwrap(), "-"],
        Some(&script),
    );
    let r = json_lines(&out);
    assert!(r[0]["error"].as_str().unwrap().contains("longer than"));
    assert_eq!(
        (r[1]["line"].as_u64(), r[1]["seq"].as_u64()),
        (Some(2), Some(5))
    );
}

#[test]
fn commands_on_something_that_is_not_a_ledger_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = parley(&["verify", "--data", d, "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds no ledger"));
    for args in [vec!["export", "--data", d], vec!["rebuild", "--data", d]] {
        let out = parley(&args, None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("holds no ledger"),
            "{args:?}"
        );
    }
    // A garbage segment file gets a clear error, not a panic.
    std::fs::create_dir_all(dir.path().join("log")).unwrap();
    std::fs::write(dir.path().join("log/00000000000000000001.seg"), b"garbage").unwrap();
    let out = parley(&["verify", "--data", d, "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["first_bad_seq"].as_u64()),
        (Some(false), Some(1))
    );
    let out = parley(&["export", "--data", d], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged at seq 1"));
}

#[test]
fn rebuild_restores_the_derived_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let d = data.to_str().unwrap();
    assert!(parley(&["run", "--data", d, "-"], Some(SCRIPT))
        .status
        .success());
    let out = parley(&["rebuild", "--data", d], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("from 9 records"));
    let out = parley(&["verify", "--data", d, "--derived", "--json"], None);
    assert!(out.status.success());
}

#[test]
fn run_prints_the_decision_for_each_intention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let store = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    let script = format!(
        "{store}{}\n{}\n",
        r#"{"producer":"orders","at_ms":1764151100000,"kind":"order_placed","order":"O-9","customer":"C-3","total_minor":15998}"#,
        r#"{"producer":"customer-service","at_ms":1764151200000,"kind":"intend","intention":{"action":{"type":"notify_customer","customer":"C-3","order":"O-9","topic":"delay"},"reasoning":"asked","impact":{"revenue_minor":0,"margin_minor":0},"objective":"customer-experience"}}"#
    );
    let out = parley(
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--admin",
            "ops",
            "-",
        ],
        Some(&script),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let last = json_lines(&out).pop().unwrap();
    let d = &last["decision"];
    assert_eq!(d["outcome"]["kind"], "approved");
    assert_eq!(d["rule"], "approve");
    assert_eq!(d["seq"].as_u64(), Some(last["seq"].as_u64().unwrap() + 1));
    assert!(
        d["trace"].as_array().unwrap().len() >= 3,
        "every rule evaluated is traced"
    );
    assert_eq!(d["rules_hash"].as_str().unwrap().len(), 64);
}

#[test]
fn a_closed_output_pipe_ends_quietly_not_in_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    assert!(parley(&["demo", "--data", data.to_str().unwrap()], None)
        .status
        .success());
    let mut child = Command::new(parley_bin())
        .args([
            "audit",
            "--data",
            data.to_str().unwrap(),
            "sku:S1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn clear_words_for_bad_lines_and_reproducible_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let mut script: Vec<u8> = Vec::new();
    script.extend_from_slice(
        br#"{"producer":"a","at_ms":5,"kind":"fact","entity":"shelf:A","attribute":"n","value":1}"#,
    );
    script.push(b'\n');
    script.extend_from_slice(br#"{"producer":"a","at_ms":6,"kind":"fact","entity":"shelf:A","attribute":"n","value":1.5}"#);
    script.push(b'\n');
    script.extend_from_slice(b"{\"producer\":\"a\xff\",\"at_ms\":7,\"kind\":\"clock\"}\n");
    script.extend_from_slice(br#"{"producer":"a","at_ms":8,"kind":"decision","decision":{}}"#);
    script.push(b'\n');
    script.extend_from_slice(br#"{"producer":"a","producer":"b","at_ms":9,"kind":"clock"}"#);
    script.push(b'\n');
    let mut child = Command::new(parley_bin())
        .args(["run", "--data", data.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&script).unwrap();
    let out = child.wait_with_output().unwrap();
    let r = json_lines(&out);
    assert_eq!(r.len(), 5);
    let err = |i: usize| r[i]["error"].as_str().unwrap().to_owned();
    assert_eq!(r[1]["line"], 2);
    assert!(
        err(1).contains("`value`") && !err(1).contains("line 1"),
        "{}",
        err(1)
    );
    assert!(err(2).contains("UTF-8"), "{}", err(2));
    assert!(err(3).contains("written by parley itself"), "{}", err(3));
    assert!(err(4).contains("appears twice"), "{}", err(4));
    assert_eq!(r[1]["code"], "invalid-command");

    // The same script and ledger id give the same head hash anywhere.
    let script = "{\"producer\":\"a\",\"at_ms\":5,\"kind\":\"fact\",\"entity\":\"shelf:A\",\"attribute\":\"n\",\"value\":1}\n";
    let heads: Vec<String> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("same-{i}"));
            let d = d.to_str().unwrap();
            assert!(parley(
                &["run", "--data", d, "--ledger-id", "ldg-same", "-"],
                Some(script)
            )
            .status
            .success());
            let v = &json_lines(&parley(&["verify", "--data", d, "--json"], None))[0];
            v["head_hash"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(heads[0], heads[1]);
}
