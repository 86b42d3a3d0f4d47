//! `parley demo`: every scenario provokes its failures without parley, none
//! with it, and the ledger it writes replays with 0 divergent.

use std::path::Path;

use parley::demo::world::Figures;
use parley::demo::NAMES;

mod common;

/// The failure kinds each scenario provokes (without parley they must be > 0).
fn provoked(name: &str) -> Vec<&'static str> {
    match name {
        "conflict" => vec!["negative_margin_sales"],
        "redundancy" => vec!["duplicate_messages"],
        "sequencing" => vec!["out_of_order_steps"],
        "price-war" => vec!["negative_margin_sales"],
        "viral" => vec!["discontinued_reorders", "perks_on_flagged_orders"],
        "supply-delay" => vec!["duplicate_messages", "out_of_order_steps"],
        "flash-sale" => vec!["out_of_order_steps"],
        other => panic!("no expectations for scenario {other}"),
    }
}

fn get(f: &Figures, name: &str) -> u64 {
    match name {
        "negative_margin_sales" => f.negative_margin_sales,
        "duplicate_messages" => f.duplicate_messages,
        "out_of_order_steps" => f.out_of_order_steps,
        "discontinued_reorders" => f.discontinued_reorders,
        "perks_on_flagged_orders" => f.perks_on_flagged_orders,
        other => panic!("{other}"),
    }
}

fn failures_are_zero(f: &Figures) -> bool {
    f.negative_margin_sales == 0
        && f.margin_lost_minor == 0
        && f.duplicate_messages == 0
        && f.out_of_order_steps == 0
        && f.discontinued_reorders == 0
        && f.perks_on_flagged_orders == 0
}

#[test]
fn each_scenario_provokes_its_failures_without_parley_and_none_with_it() {
    for name in NAMES {
        for seed in [7, 8] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join(name);
            let (report, _, _) = parley::demo::run(&data, name, seed).unwrap();
            let s = &report.scenarios[0];
            assert_eq!(s.name, name);
            for kind in provoked(name) {
                assert!(
                    get(&s.without_orchestration, kind) > 0,
                    "{name} seed {seed}: without parley {kind} is 0: {:?}",
                    s.without_orchestration
                );
            }
            assert!(
                failures_are_zero(&s.with_orchestration),
                "{name} seed {seed}: with parley {:?}",
                s.with_orchestration
            );
            assert_eq!(
                s.without_orchestration.escalations, 0,
                "nobody escalates alone"
            );
            if name == "conflict" || name == "price-war" {
                assert!(s.without_orchestration.margin_lost_minor > 0);
            }
            assert_eq!(report.replay_divergent, 0, "{name}");
        }
    }
}

#[test]
fn the_full_demo_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let d = data.to_str().unwrap();
    let out = std::process::Command::new(common::parley_bin())
        .args(["demo", "--data", d, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (with, without) = (&v["with_orchestration"], &v["without_orchestration"]);
    for kind in [
        "negative_margin_sales",
        "margin_lost_minor",
        "duplicate_messages",
        "out_of_order_steps",
        "discontinued_reorders",
        "perks_on_flagged_orders",
    ] {
        assert!(without[kind].as_i64().unwrap() > 0, "without: {kind}");
        assert_eq!(with[kind].as_i64(), Some(0), "with: {kind}");
    }
    assert!(with["escalations"].as_u64().unwrap() >= 4);
    assert_eq!(v["verify_ok"], true);
    assert!(Path::new(d).join("whatif-rules.toml").exists());

    // The ledger it wrote replays with 0 divergent, from the command line too.
    let out = std::process::Command::new(common::parley_bin())
        .args(["replay", "--data", d, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["divergent"], 0);
    assert_eq!(r["records"].as_u64(), v["records"].as_u64());

    // Every escalation was settled by the scripted human, with a rationale.
    let out = std::process::Command::new(common::parley_bin())
        .args(["escalations", "--data", d, "--json"])
        .output()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = e["escalations"].as_array().unwrap();
    assert_eq!(list.len() as u64, with["escalations"].as_u64().unwrap());
    for x in list {
        assert_eq!(x["status"], "resolved", "{x}");
        // The agent is its intention's producer (read by seq after the scan).
        assert!(
            [
                "pricing",
                "marketing",
                "inventory",
                "customer-service",
                "fraud",
                "merchandising",
                "orders"
            ]
            .contains(&x["agent"].as_str().unwrap_or_default()),
            "{x}"
        );
        assert!(!x["closed_by"]["resolution"]["rationale"]
            .as_str()
            .unwrap()
            .is_empty());
    }

    // Text output: the table, and no colour when piped.
    let out = std::process::Command::new(common::parley_bin())
        .args(["demo", "--data", dir.path().join("t").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("without parley"), "{text}");
    assert!(text.contains("parley whatif --data"));
    // The store's own guard at work in the timeline, with its message.
    let guard = text
        .lines()
        .find(|l| l.contains("by custom"))
        .unwrap_or_else(|| panic!("no custom guard decided in the timeline:\n{text}"));
    assert!(
        guard.contains("map-price-floor") && guard.contains("minimum advertised price"),
        "{guard}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour codes when stdout is not a terminal"
    );
    let err = std::process::Command::new(common::parley_bin())
        .args(["demo", "--scenario", "nope"])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("no scenario `nope`"));
}

/// `GET /v1/escalations` a page at a time (one escalation per page,
/// following each answer's `Link: <…>; rel="next"`) lists exactly what
/// `parley escalations` lists, each with what closed it (the closing
/// decision lies outside the page that found the escalation).
#[test]
fn the_escalation_pages_over_http_add_up_to_the_whole_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let d = data.to_str().unwrap();
    let out = std::process::Command::new(common::parley_bin())
        .args(["demo", "--data", d])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(common::parley_bin())
        .args(["escalations", "--data", d, "--json"])
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let whole = cli["escalations"].as_array().unwrap().clone();
    assert!(whole.len() >= 4, "{cli}");
    let token = common::server::token(&data, "auditor", "reader");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let server = common::server::Server::start(&data);
    let (mut paged, mut pages) = (Vec::new(), 0);
    let mut path = Some("/v1/escalations?limit=1".to_owned());
    while let Some(p) = path.take() {
        let (status, head, body) = server.raw("GET", &p, &auth, "");
        assert_eq!(status, 200, "{p}: {body}");
        let page: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert!(page.len() <= 1, "{p}: {body}");
        paged.extend(page);
        path = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            if !name.eq_ignore_ascii_case("link") {
                return None;
            }
            let target = value.trim().strip_prefix('<')?.split_once('>')?;
            assert!(target.1.contains("rel=\"next\""), "{l}");
            Some(target.0.to_owned())
        });
        pages += 1;
        assert!(pages <= whole.len() + 1, "the pages never end: {p}");
    }
    assert_eq!(paged, whole);
    assert!(paged.iter().all(|e| e["status"] == "resolved"));
    // Bounds are named, never clamped.
    for bad in [
        "/v1/escalations?limit=0",
        "/v1/escalations?limit=1001",
        "/v1/escalations?from=0",
    ] {
        let (status, _, body) = server.raw("GET", bad, &auth, "");
        assert_eq!(status, 400, "{bad}: {body}");
    }
    server.stop();
}
