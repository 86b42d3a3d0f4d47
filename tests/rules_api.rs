//! The rules routes of `parley serve`: a draft is checked (text or JSON)
//! with the error where it is; only an admin installs, with the rationale
//! recorded; a human's or reader's attempt leaves the log unchanged; the
//! history lists who, when and why; what-if takes a window in days.

mod common;

use common::server::{ledger, records, token, token_via, Server};
use serde_json::{json, Value};

const FLOOR: &str = include_str!("../rules/examples/map-price-floor.toml");

fn body(v: &Value) -> String {
    v.to_string()
}

#[test]
fn drafts_are_checked_and_only_an_admin_installs_them() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let admin = token(&dir, "admin", "admin");
    let maya = token(&dir, "maya", "human");
    let reader = token(&dir, "audit", "reader");
    let server = Server::start(&dir);
    let with_floor = format!("{}\n{FLOOR}", parley::rules::DEFAULT_RULES);

    // Text: ok, with what it changes from the rules in force.
    let (status, _, text) = server.request(
        "POST",
        "/v1/rules/check",
        Some(&reader),
        &body(&json!({"text": with_floor})),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["custom"], json!(["map-price-floor"]));
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == json!(["custom", "map-price-floor"])),
        "{v}"
    );

    // JSON, as GET /v1/rules gives it, edited: a threshold and a broken guard.
    let (status, _, text) = server.request("GET", "/v1/rules", Some(&reader), "");
    assert_eq!(status, 200, "{text}");
    let mut rules: Value = serde_json::from_str::<Value>(&text).unwrap()["rules"].clone();
    rules["threshold"]["escalate_above_minor"] = json!(800_000);
    rules["custom"] = json!([{"id": "g", "applies_to": ["set_price"], "when": "sku.price_minr < 1", "then": "refuse", "message": "m"}]);
    let (_, _, text) = server.request(
        "POST",
        "/v1/rules/check",
        Some(&admin),
        &body(&json!({"rules": rules})),
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["field"], "custom.g", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("price_minr"),
        "{v}"
    );
    rules["custom"][0]["when"] = json!("action.price_minor < sku.cost_minor");
    rules["custom"][0]["message"] = json!("never below cost");
    let (_, _, text) = server.request(
        "POST",
        "/v1/rules/check",
        Some(&admin),
        &body(&json!({"rules": rules})),
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("escalate_above_minor = 800000"),
        "{v}"
    );

    // Malformed drafts are 400 with what is wrong: not an object, a null,
    // both or neither of text and rules, a JSON form of the wrong shape.
    for bad in [
        json!([null, null]),
        json!({"text": null}),
        json!({}),
        json!({"text": "x", "rules": {}}),
        json!({"rules": {"priority": 1}}),
    ] {
        let (status, _, text) =
            server.request("POST", "/v1/rules/check", Some(&admin), &body(&bad));
        assert_eq!(status, 400, "{bad}: {text}");
    }

    // A human and a reader cannot install: refused, the log unchanged.
    let before = records_via(&server, &admin);
    for t in [&maya, &reader] {
        let (status, _, text) = server.request(
            "POST",
            "/v1/rules",
            Some(t),
            &body(&json!({"rules": rules, "why": "try"})),
        );
        assert!(status == 403, "{status} {text}");
    }
    assert_eq!(records_via(&server, &admin), before, "nothing appended");
    // No rationale, or a bad draft: refused before anything is appended.
    let (status, _, text) = server.request(
        "POST",
        "/v1/rules",
        Some(&admin),
        &body(&json!({"rules": rules, "why": " "})),
    );
    assert_eq!(status, 422, "{text}");
    assert_eq!(records_via(&server, &admin), before, "nothing appended");

    // The admin installs; the history says who and why, and what changed.
    let why = "a higher threshold for the sale week, and a test guard";
    let (status, _, text) = server.request(
        "POST",
        "/v1/rules",
        Some(&admin),
        &body(&json!({"rules": rules, "why": why})),
    );
    assert_eq!(status, 200, "{text}");
    let seq = serde_json::from_str::<Value>(&text).unwrap()["seq"].clone();
    let (status, _, text) = server.request("GET", "/v1/rules/history", Some(&reader), "");
    assert_eq!(status, 200, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let last = list.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["seq"], &last["by"], &last["why"]),
        (&seq, &json!("admin"), &json!(why)),
        "{last}"
    );
    let paths: Vec<&Value> = last["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["path"])
        .collect();
    assert!(
        paths.contains(&&json!(["threshold", "escalate_above_minor"])),
        "{paths:?}"
    );
    assert!(paths.contains(&&json!(["custom", "g"])), "{paths:?}");

    // The guard decides, and its explanation carries the guard's message.
    let pricing = token_via(&server, &admin, "pricing", "agent");
    let below = json!({"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":900},"reasoning":"r","impact":{"revenue_minor":-1000,"margin_minor":-1000},"objective":"sales-growth"}});
    let (status, _, answer) = server.post(Some(&pricing), &below.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"]["rule"], "custom", "{answer}");
    let dseq = answer["decision"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"));
    let (status, _, text) =
        server.request("GET", &format!("/v1/decisions/{dseq}"), Some(&reader), "");
    assert_eq!(status, 200, "{text}");
    let x: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(x["guard_messages"]["g"], "never below cost", "{x}");
    assert!(
        x["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["rule"] == "custom"),
        "{x}"
    );

    // `parley rules install --server`: the same route from the command line.
    let file = base.path().join("floor.toml");
    std::fs::write(&file, &with_floor).unwrap();
    let out = std::process::Command::new(common::parley_bin())
        .args([
            "rules",
            "install",
            "--server",
            &format!("http://{}", server.addr),
        ])
        .arg(&file)
        .args([
            "--as",
            "admin",
            "--why",
            "the brand's MAP agreement",
            "--json",
        ])
        .env("PARLEY_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, text) = server.request("GET", "/v1/rules/history", Some(&reader), "");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        list.as_array().unwrap().last().unwrap()["why"],
        "the brand's MAP agreement"
    );
    let out = std::process::Command::new(common::parley_bin())
        .args([
            "rules",
            "install",
            "--server",
            &format!("http://{}", server.addr),
        ])
        .arg(&file)
        .args(["--as", "maya", "--why", "x"])
        .env("PARLEY_TOKEN", &maya)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not installed"), "{err}");

    // What-if over the last day with the old rules: a window in days.
    let (status, _, text) = server.request(
        "POST",
        "/v1/whatif",
        Some(&reader),
        &body(&json!({"rules": parley::rules::DEFAULT_RULES, "days": 1})),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["from"], 1, "{v}");
    assert!(
        v["summary"]["whatif"]["escalations_by_day"].is_object(),
        "{v}"
    );
    let (status, _, _) = server.request(
        "POST",
        "/v1/whatif",
        Some(&reader),
        &body(&json!({"rules": parley::rules::DEFAULT_RULES, "days": 0})),
    );
    assert_eq!(status, 400);
    let (status, _, _) = server.request(
        "POST",
        "/v1/whatif",
        Some(&reader),
        &body(&json!({"rules": parley::rules::DEFAULT_RULES, "days": 1, "from": 1})),
    );
    assert_eq!(status, 400);
    drop(server);
    assert!(records(&dir) >= 1);
}

/// The head seq, as the server reports it.
fn records_via(server: &Server, token: &str) -> u64 {
    let (_, _, text) = server.request("GET", "/v1/cluster", Some(token), "");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["head_seq"].as_u64().unwrap_or_else(|| panic!("{text}"))
}
