//! `parley rules check | diff | install | history` from the command line: a
//! file is checked without a ledger, errors name the line, the guard and the
//! column; an install records the rationale and never installs half a rule
//! set; a ledger on an older resolver refuses custom guards.

mod common;

use common::parley;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn with_guard(extra: &str) -> String {
    format!("{}\n{extra}", parley::rules::DEFAULT_RULES)
}

const FLOOR: &str = include_str!("../rules/examples/map-price-floor.toml");

#[test]
fn check_and_diff_need_no_ledger_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", &with_guard(FLOOR));
    let ran = parley(&["rules", "check", &good, "--json"], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.json()["custom"], serde_json::json!(["map-price-floor"]));

    let bad = with_guard(&FLOOR.replace("action.price_minor <", "action.price_minr <"));
    let line = bad.lines().position(|l| l.contains("price_minr")).unwrap() + 1;
    let bad = write(dir.path(), "bad.toml", &bad);
    let ran = parley(&["rules", "check", &bad, "--json"], "");
    assert_eq!(ran.code, Some(1));
    let e = &ran.json()["error"];
    assert_eq!(e["line"], line, "{e}");
    assert_eq!(e["field"], "custom.map-price-floor");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("column ") && message.contains("price_minr"),
        "{message}"
    );
    let ran = parley(&["rules", "check", &bad], "");
    assert!(
        ran.stderr.contains(&format!("rules line {line}")),
        "{}",
        ran.stderr
    );

    let before = write(dir.path(), "a.toml", parley::rules::DEFAULT_RULES);
    let after = with_guard(FLOOR).replace(
        "escalate_above_minor = 500000",
        "escalate_above_minor = 800000",
    );
    let after = write(dir.path(), "b.toml", &after);
    let ran = parley(&["rules", "diff", &before, &after], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(
        ran.stdout.lines().collect::<Vec<_>>(),
        [
            "threshold.escalate_above_minor: 500000 → 800000",
            "custom.map-price-floor: added"
        ]
    );
    let ran = parley(&["rules", "diff", &after, &after, "--json"], "");
    assert_eq!(ran.json(), serde_json::json!([]));
}

#[test]
fn install_records_the_rationale_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let d = data.to_str().unwrap();
    let ran = parley(&["run", "--data", d, "--admin", "ops", "-"], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let head = |d: &str| parley(&["verify", "--data", d, "--json"], "").json()["head_seq"].clone();
    let good = write(dir.path(), "good.toml", &with_guard(FLOOR));
    let ran = parley(
        &[
            "rules",
            "install",
            "--data",
            d,
            &good,
            "--as",
            "ops",
            "--why",
            "MAP agreement with the brand",
            "--json",
        ],
        "",
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let seq = ran.json()["seq"].clone();
    let ran = parley(&["rules", "history", "--data", d, "--json"], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let list = ran.json();
    let last = list.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["seq"], seq);
    assert_eq!(last["by"], "ops");
    assert_eq!(last["why"], "MAP agreement with the brand");
    assert_eq!(last["custom"], serde_json::json!(["map-price-floor"]));
    assert!(
        last["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == serde_json::json!(["custom", "map-price-floor"])),
        "{last}"
    );

    // A file with a broken guard after a sound one: nothing is installed.
    let broken = with_guard(&format!(
        "{FLOOR}\n{}",
        FLOOR
            .replace("map-price-floor", "second")
            .replace("sku.facts.map_price_minor)", "sku.nope)")
    ));
    let broken = write(dir.path(), "broken.toml", &broken);
    let before = head(d);
    let ran = parley(
        &[
            "rules", "install", "--data", d, &broken, "--as", "ops", "--why", "x",
        ],
        "",
    );
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("custom.second"), "{}", ran.stderr);
    assert_eq!(head(d), before, "the log is unchanged");

    // Not an admin: refused by the ledger, nothing appended.
    let ran = parley(
        &[
            "rules", "install", "--data", d, &good, "--as", "pricing", "--why", "x",
        ],
        "",
    );
    assert_eq!(ran.code, Some(1), "{}", ran.stdout);
    assert_eq!(head(d), before, "the log is unchanged");

    // A [change] table and --why both: refused before anything is sent.
    let twice = write(
        dir.path(),
        "twice.toml",
        &with_guard("[change]\nwhy = \"in the file\"\n"),
    );
    let ran = parley(
        &[
            "rules", "install", "--data", d, &twice, "--as", "ops", "--why", "x",
        ],
        "",
    );
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("change.why"), "{}", ran.stderr);
}

#[test]
fn a_version_2_ledger_refuses_custom_guards_until_it_adopts_version_3_and_replays() {
    use parley::ledger::{Ledger, Options};
    use parley::reader::LedgerRead as _;
    let ledger = Ledger::in_memory(Options {
        resolver_version: 2,
        first_admin: "ops".into(),
        ..Options::default()
    })
    .unwrap();
    let install = serde_json::json!({"producer": "ops", "kind": "rules_installed", "text": with_guard(FLOOR)});
    let err = ledger
        .append(common::cmd(install.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[[custom]]") && err.contains("version 3"),
        "{err}"
    );
    // A version-2 decision before the adoption, version-3 ones after it.
    let setup = [
        serde_json::json!({"producer": "ops", "kind": "agent_registered", "profile": {"agent": "pricing", "domain": "pricing", "priority": 50}}),
        serde_json::json!({"producer": "ops", "kind": "agent_registered", "profile": {"agent": "m", "domain": "merchandising", "priority": 40}}),
        serde_json::json!({"producer": "m", "kind": "catalog", "sku": "S1", "category": "c", "cost_minor": 500, "price_minor": 1000, "stock": 5, "lifecycle": "active"}),
        serde_json::json!({"producer": "m", "kind": "fact", "entity": "sku:S1", "attribute": "map_price_minor", "value": 900}),
    ];
    for c in setup {
        ledger.append(common::cmd(c)).unwrap();
    }
    let price = |p: i64| serde_json::json!({"producer": "pricing", "kind": "intend", "intention": {"action": {"type": "set_price", "sku": "S1", "price_minor": p}, "reasoning": "r", "impact": {"revenue_minor": -10, "margin_minor": -10}, "objective": "sales-growth"}});
    let before = ledger.append(common::cmd(price(850))).unwrap();
    assert_eq!(before.decision().unwrap().1.resolver, 2);
    let adopt = serde_json::json!({"producer": "ops", "kind": "resolver_adopted", "version": 3});
    ledger.append(common::cmd(adopt)).unwrap();
    ledger.append(common::cmd(install)).unwrap();
    let after = ledger.append(common::cmd(price(800))).unwrap();
    let (_, d) = after.decision().unwrap();
    assert_eq!((d.resolver, d.rule.name()), (3, "custom"), "{d:?}");
    // Replay re-derives both parts, each with its version: 0 divergent.
    let mut replay = parley::replay::Replayer::default();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            replay
                .feed(&r)
                .unwrap_or_else(|d| panic!("replay diverges: {d:#?}"));
            Ok(())
        })
        .unwrap();
    replay.finish().unwrap();
}
