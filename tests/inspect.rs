//! Replay, state, audit and what-if on real ledgers.

mod common;

use std::process::Command as Process;

use common::parley_bin;
use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::log::segment::SegmentLog;
use parley::log::{encode_record, LogEngine};
use parley::reader::LedgerRead;
use parley::reader::LogView;
use parley::record::{Body, ZERO_HASH};
use parley::vocab::{Outcome, RuleId};
use serde_json::Value as Json;

fn parley(args: &[&str]) -> (Option<i32>, Json, String) {
    let r = common::parley(args, "");
    (r.code, r.json(), r.stderr)
}

fn demo(dir: &std::path::Path) -> String {
    demo_json(dir).0
}

/// The demo's ledger and its JSON report.
fn demo_json(dir: &std::path::Path) -> (String, Json) {
    let data = dir.join("demo");
    let (code, v, err) = parley(&["demo", "--data", data.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{err}");
    (data.to_str().unwrap().to_owned(), v)
}

/// The store preamble plus price changes on SKU-2: approved, rejected by
/// priority, deferred by a promotion then approved by a clock, approved.
fn price_history() -> Vec<String> {
    let store = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    let intend = |agent: &str, at: u64, price: i64, objective: &str| {
        format!(
            r#"{{"producer":"{agent}","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-2","price_minor":{price}}},"reasoning":"{agent} wants {price}","impact":{{"revenue_minor":100,"margin_minor":100}},"objective":"{objective}"}}}}"#
        )
    };
    let mut lines: Vec<String> = store.lines().map(str::to_owned).collect();
    lines.push(intend(
        "pricing",
        1_764_151_000_000,
        5199,
        "margin-protection",
    ));
    lines.push(intend(
        "merchandising",
        1_764_151_100_000,
        4799,
        "sales-growth",
    ));
    lines.push(r#"{"producer":"marketing","at_ms":1764300000000,"kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"skus":["SKU-2"]},"discount_bp":500,"starts_at_ms":1764300000000,"ends_at_ms":1764400000000},"reasoning":"promo","impact":{"revenue_minor":10,"margin_minor":1},"objective":"sales-growth"}}"#.into());
    lines.push(intend(
        "pricing",
        1_764_300_100_000,
        5399,
        "margin-protection",
    ));
    lines.push(r#"{"producer":"scheduler","at_ms":1764400000000,"kind":"clock"}"#.into());
    lines.push(intend(
        "pricing",
        1_764_500_000_000,
        5499,
        "margin-protection",
    ));
    lines
}

#[test]
fn replay_of_a_ledger_finds_no_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let (data, demo) = demo_json(dir.path());
    let (code, v, err) = parley(&["replay", "--data", &data, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (v["ok"].as_bool(), v["divergent"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(v["decisions"], demo["replay_decisions"]);
    assert!(v["decisions"].as_u64().unwrap() > 50);
    assert_eq!(v["state_hash"].as_str().unwrap().len(), 64);
}

#[test]
fn an_altered_decision_in_a_valid_chain_is_caught_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    let (view, _) = LogView::open(std::path::Path::new(&data)).unwrap();
    let mut records = Vec::new();
    view.scan(1, u64::MAX, &mut |r| {
        records.push(r.record);
        Ok(())
    })
    .unwrap();
    // Turn the margin guard's rejection into an approval, then re-hash the chain
    // so it is valid: only replay can tell the decision is wrong.
    let pos = records
        .iter()
        .position(
            |r| matches!(&r.body, Body::Decision { decision } if decision.rule == RuleId::GuardMargin),
        )
        .unwrap();
    if let Body::Decision { decision } = &mut records[pos].body {
        decision.outcome = Outcome::Approved;
        decision.rule = RuleId::Approve;
    }
    let forged = dir.path().join("forged");
    std::fs::create_dir_all(forged.join("log")).unwrap();
    let (mut log, _) = SegmentLog::open(
        &forged.join("log"),
        1 << 20,
        Default::default(),
        &forged.join("index"),
        None,
        parley::log::disk::OsDisk::shared(),
    )
    .unwrap();
    let mut prev = ZERO_HASH;
    let batch: Vec<_> = records
        .iter()
        .map(|r| {
            let e = encode_record(r, &prev).unwrap();
            prev = e.hash;
            e
        })
        .collect();
    log.append(&batch, &mut Vec::new()).unwrap();
    log.record_evidence(true).unwrap();
    drop(log);
    let f = forged.to_str().unwrap();
    let (code, v, _) = parley(&["verify", "--data", f, "--json"]);
    assert_eq!(
        (code, v["ok"].as_bool()),
        (Some(0), Some(true)),
        "the forged chain itself is valid"
    );
    let (code, v, _) = parley(&["replay", "--data", f, "--json"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        v["first_divergent_seq"].as_u64(),
        Some(records[pos].envelope.seq)
    );
    assert_eq!(v["replayed"]["decision"]["rule"], "guard.margin");
    assert_eq!(v["recorded"]["decision"]["rule"], "approve");
    assert!(
        (records[pos].envelope.seq as usize) < records.len(),
        "the forged decision is not the last record"
    );
    assert_eq!(
        v["records"].as_u64(),
        Some(records[pos].envelope.seq),
        "replay reads no further than the first divergence"
    );
}

#[test]
fn state_at_a_seq_equals_a_fresh_ledger_cut_there() {
    let lines = price_history();
    let opts = || Options {
        first_admin: "ops".into(),
        ledger_id: Some("ldg-cut".into()),
        genesis_at_ms: Some(1_764_147_000_000),
        auto_clock: false,
        ..Options::default()
    };
    let full = Ledger::in_memory(opts()).unwrap();
    let mut heads = Vec::new();
    for l in &lines {
        full.append(Command::parse(l).unwrap()).unwrap();
        heads.push(full.head().unwrap().seq);
    }
    for cut in [3usize, 12, lines.len() - 3, lines.len() - 1] {
        let partial = Ledger::in_memory(opts()).unwrap();
        for l in &lines[..cut] {
            partial.append(Command::parse(l).unwrap()).unwrap();
        }
        let at = heads[cut - 1];
        assert_eq!(partial.head().unwrap().seq, at);
        let a = full.context_at(at).unwrap();
        let b = partial.context_at(u64::MAX).unwrap();
        assert_eq!(
            a.state_hash(),
            b.state_hash(),
            "cut after command {cut} (seq {at})"
        );
        assert_eq!(a, b);
    }
}

#[test]
fn audit_of_a_price_lists_exactly_the_approved_changes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prices");
    let script = dir.path().join("prices.jsonl");
    std::fs::write(&script, price_history().join("\n") + "\n").unwrap();
    let d = data.to_str().unwrap();
    let out = Process::new(parley_bin())
        .args([
            "run",
            "--data",
            d,
            "--admin",
            "ops",
            script.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the log says: the catalog entry of SKU-2.
    let (view, _) = LogView::open(&data).unwrap();
    let mut catalog = 0;
    view.scan(1, u64::MAX, &mut |r| {
        if matches!(&r.record.body, Body::Catalog { sku, .. } if sku == "SKU-2") {
            catalog = r.record.envelope.seq;
        }
        Ok(())
    })
    .unwrap();
    // Promotions are approved on sku:SKU-2 too but change no price.
    let (code, v, err) = parley(&["audit", "--data", d, "sku:SKU-2", "price", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let changes = v["changes"].as_array().unwrap();
    let got: Vec<(u64, i64)> = changes
        .iter()
        .map(|c| (c["seq"].as_u64().unwrap(), c["value"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![5499, 5399, 5199, 4999],
        "newest first: approved prices, then the catalog"
    );
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(seqs[3], catalog);
    let rules: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["decision"]["rule"].as_str())
        .collect();
    assert_eq!(rules, vec!["approve", "approve", "approve"]);
    // The deferred-then-approved change carries both: the re-decision follows the deferral.
    assert!(changes[1]["decision"]["follows"].as_u64().is_some());
    // The first approved price beat merchandising's rival, which lost by priority.
    let lost = changes[2]["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0]["agent"].as_str(), lost[0]["rule"].as_str()),
        (Some("merchandising"), Some("priority"))
    );
    assert_eq!(changes[2]["intention"]["agent"], "pricing");
    assert!(changes[2]["decision"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["reads"].is_array()));
    // dot draws the same graph.
    let out = Process::new(parley_bin())
        .args([
            "audit",
            "--data",
            d,
            "sku:SKU-2",
            "price",
            "--format",
            "dot",
        ])
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        dot.starts_with("digraph audit") && dot.contains("lost: priority"),
        "{dot}"
    );
}

#[test]
fn whatif_with_the_same_rules_changes_nothing_and_a_higher_threshold_approves_escalations() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    // The demo writes the rules in force (the default and its custom guard).
    let same = std::path::Path::new(&data).join("rules.toml");
    let same = same.to_str().unwrap();
    let (code, v, err) = parley(&["whatif", "--data", &data, "--rules", same, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["changed"].as_array().unwrap().len(), 0);
    assert_eq!(v["summary"]["recorded"], v["summary"]["whatif"]);

    // The demo writes a what-if rule set with the threshold at 2,000,000: the
    // threshold escalations (S1, S5, H4), which the human settled with the
    // threshold's modified values, become plain approvals; the autonomy one stays.
    let alt = std::path::Path::new(&data).join("whatif-rules.toml");
    let (code, v, _) = parley(&[
        "whatif",
        "--data",
        &data,
        "--rules",
        alt.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0));
    let changed = v["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 3, "{changed:?}");
    for c in changed {
        assert_eq!(c["recorded"]["rule"], "human_resolution");
        assert_eq!(c["recorded"]["outcome"], "modified");
        assert_eq!(c["whatif"]["outcome"], "approved");
        assert_eq!(c["whatif"]["rule"], "approve");
    }
    // Approved both ways (modified, then as intended): nothing "would have" happened only under ALT.
    assert_eq!(v["would_have"], serde_json::json!([]));
    assert_eq!(
        v["summary"]["whatif"]["escalations"].as_u64().unwrap() + 3,
        v["summary"]["recorded"]["escalations"].as_u64().unwrap()
    );
    // The ledger itself is untouched.
    let records = v["to"].as_u64();
    let (_, r, _) = parley(&["replay", "--data", &data, "--json"]);
    assert_eq!(r["records"].as_u64(), records);
}

#[test]
fn a_whatif_that_ends_at_an_intention_compares_it_with_its_recorded_decision() {
    use parley::reader::{LedgerRead, LogView};
    use parley::record::Body;
    use parley::whatif::{Alternative, WhatIf};
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    let text = std::fs::read_to_string(std::path::Path::new(&data).join("rules.toml")).unwrap();
    let (view, _) = LogView::open(std::path::Path::new(&data)).unwrap();
    let mut intentions = Vec::new();
    view.scan(1, view.head_seq(), &mut |r| {
        if matches!(r.record.body, Body::Intend { .. }) {
            intentions.push(r.record.envelope.seq);
        }
        Ok(())
    })
    .unwrap();
    assert!(intentions.len() > 10, "{intentions:?}");
    for to in intentions {
        let rules = parley::rules::RuleSet::parse(&text).unwrap();
        let alt = Alternative {
            rules: Some((text.clone(), rules)),
            resolver: None,
        };
        let mut run = WhatIf::new(alt, 1, to, parley::resolver::Resolvers::released());
        view.scan(1, to, &mut |r| {
            run.feed(&r);
            Ok(())
        })
        .unwrap();
        parley::reader::feed_follow_ups(&view, &mut run).unwrap();
        let report = run.finish();
        assert!(report.changed.is_empty(), "to {to}: {:?}", report.changed);
        // The CLI reads the same follow-ups.
        let (code, v, err) = parley(&[
            "whatif",
            "--data",
            &data,
            "--rules",
            &std::path::Path::new(&data)
                .join("rules.toml")
                .to_string_lossy(),
            "--to",
            &to.to_string(),
            "--json",
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(v["changed"], serde_json::json!([]), "--to {to}");
    }
}

#[test]
fn inspection_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[priority]\nobjectives = [\"risk\"]\nlive_window_h = 24\n",
    )
    .unwrap();
    for (args, needle) in [
        (
            vec!["audit", "--data", &data, "sku:NOPE"],
            "no record names entity `sku:NOPE`",
        ),
        (
            vec!["audit", "--data", &data, "sku:S1", "colour"],
            "has no field `colour`",
        ),
        (
            vec!["state", "--data", &data, "--at", "999999"],
            "beyond the log",
        ),
        (
            vec!["state", "--data", &data, "--at-time", "yesterday"],
            "RFC 3339",
        ),
        (
            vec!["replay", "--data", &data, "--until", "999999"],
            "beyond the log",
        ),
        (
            vec!["whatif", "--data", &data, "--rules", bad.to_str().unwrap()],
            "rules line",
        ),
        (
            vec!["log", "--data", &data, "--kind", "decisoin"],
            "not a record kind",
        ),
    ] {
        let (code, _, err) = parley(&args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, v, _) = parley(&[
        "state",
        "--data",
        &data,
        "--at-time",
        "2025-11-26T11:30:00Z",
        "sku:S1",
        "--json",
    ]);
    assert_eq!(code, Some(0));
    let cut = 1_764_156_600_000; // 2025-11-26T11:30:00Z
    let (view, _) = LogView::open(std::path::Path::new(&data)).unwrap();
    let mut last = 0;
    view.scan(1, u64::MAX, &mut |r| {
        if r.record.envelope.recorded_at_ms <= cut {
            last = r.record.envelope.seq;
        }
        Ok(())
    })
    .unwrap();
    assert!(last > 40, "the demo's first scenario is under way by then");
    assert_eq!(
        v["seq"].as_u64(),
        Some(last),
        "the last record at or before 11:30"
    );
}

#[test]
fn the_audit_graph_has_a_node_for_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo(dir.path());
    let (_, v, _) = parley(&["audit", "--data", &data, "sku:W1", "--json"]);
    let changes = v["changes"].as_array().unwrap().len();
    assert!(
        changes >= 6,
        "a catalog record changes five fields, the discontinuation and a price one more each"
    );
    let out = Process::new(parley_bin())
        .args(["audit", "--data", &data, "sku:W1", "--format", "dot"])
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&out.stdout);
    let nodes: std::collections::BTreeSet<&str> = dot
        .lines()
        .filter(|l| l.contains("fillcolor=lightyellow"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        nodes.len(),
        changes,
        "every change has a node of its own: {dot}"
    );
}

#[test]
fn state_of_an_entity_prints_words_and_json_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path());
    let words = common::parley(&["state", "--data", &d, "sku:E2"], "");
    assert_eq!(words.code, Some(0), "{}", words.stderr);
    assert!(
        words.stdout.starts_with("sku:E2 as of seq "),
        "{}",
        words.stdout
    );
    assert!(words.stdout.contains("  price £"), "{}", words.stdout);
    assert!(
        !words.stdout.contains('{'),
        "no JSON without --json: {}",
        words.stdout
    );
    let json = common::parley(&["state", "--data", &d, "sku:E2", "--json"], "").json();
    assert_eq!(json["entity"]["sku"]["sku"], "E2", "{json}");
    // PARLEY_DATA stands in for --data.
    let out = std::process::Command::new(common::parley_bin())
        .args(["state", "sku:E2"])
        .env("PARLEY_DATA", &d)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), words.stdout);
}
