//! Workflows and escalations from the command line: `parley audit` shows the
//! workflow step behind a price; `parley escalations` lists an escalation with
//! its options; `parley resolve` refuses a non-human and records a human's choice.

mod common;

use serde_json::Value as Json;

fn parley(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let r = common::parley(args, stdin.unwrap_or(""));
    (r.code, r.stdout, r.stderr)
}

fn script() -> String {
    let store = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    let more = [
        r#"{"producer":"marketing","at_ms":1764151000000,"kind":"workflow_started","run":"flash-1","workflow":"flash-sale-preparation","version":1,"params":{"skus":"SKU-1"}}"#,
        r#"{"producer":"pricing","at_ms":1764151010000,"kind":"intend","intention":{"action":{"type":"set_price","sku":"SKU-1","price_minor":7499},"reasoning":"flash-sale price","impact":{"revenue_minor":150000,"margin_minor":-40000},"objective":"sales-growth","workflow_step":{"run":"flash-1","step":"update-prices"}}}"#,
        r#"{"producer":"inventory","at_ms":1764151020000,"kind":"step_completed","run":"flash-1","step":"verify-inventory"}"#,
        r#"{"producer":"pricing","at_ms":1764151030000,"kind":"intend","intention":{"action":{"type":"set_price","sku":"SKU-2","price_minor":5999},"reasoning":"demand is up","impact":{"revenue_minor":800000,"margin_minor":300000},"objective":"sales-growth"}}"#,
    ];
    let mut s = store;
    for l in more {
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[test]
fn audit_shows_the_step_and_a_human_resolves_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let (code, _, err) = parley(
        &["run", "--data", d, "--admin", "ops", "-"],
        Some(&script()),
    );
    assert_eq!(code, Some(0), "{err}");

    // The price set during the flash sale names its step and workflow.
    let (code, out, err) = parley(
        &["audit", "--data", d, "sku:SKU-1", "price", "--json"],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    let step = &v["changes"][0]["intention"]["workflow_step"];
    assert_eq!(step["run"], "flash-1", "{v}");
    assert_eq!(step["step"], "update-prices");
    assert_eq!(step["workflow"], "flash-sale-preparation v1");
    let (_, text, _) = parley(&["audit", "--data", d, "sku:SKU-1", "price"], None);
    assert!(
        text.contains("workflow step `update-prices` of run `flash-1`"),
        "{text}"
    );

    // The run's state.
    let (code, out, _) = parley(&["state", "--data", d, "run:flash-1", "--json"], None);
    assert_eq!(code, Some(0));
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entity"]["run"]["steps"][1]["status"], "ready", "{v}");

    // One open escalation, with approve / reject / modified options.
    let (code, out, err) = parley(&["escalations", "--data", d, "--open", "--json"], None);
    assert_eq!(code, Some(0), "{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    let list = v["escalations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    let id = list[0]["id"].as_u64().unwrap();
    assert_eq!(
        list[0]["escalation"]["options"].as_array().unwrap().len(),
        3
    );
    assert!(list[0]["expires_at"].is_string());
    let id_s = id.to_string();

    let at = ["--at", "2025-11-26T10:30:00Z"];
    let mut args = vec![
        "resolve", "--data", d, &id_s, "--option", "0", "--as", "pricing", "--why", "mine",
    ];
    args.extend(at);
    let (code, _, err) = parley(&args, None);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a registered human"), "{err}");

    let mut args = vec![
        "resolve",
        "--data",
        d,
        &id_s,
        "--option",
        "1",
        "--as",
        "maya",
        "--why",
        "too steep",
        "--json",
    ];
    args.extend(at);
    let (code, out, err) = parley(&args, None);
    assert_eq!(code, Some(0), "{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    let c = &v["caused"][0];
    assert_eq!(c["decision"]["intention"].as_u64(), Some(id), "{v}");
    assert_eq!(c["decision"]["outcome"]["kind"], "rejected");
    assert_eq!(c["decision"]["rule"], "human_resolution");

    let (_, out, _) = parley(&["escalations", "--data", d, "--json"], None);
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["escalations"][0]["status"], "resolved", "{v}");
    assert_eq!(
        v["escalations"][0]["closed_by"]["resolution"]["human"],
        "maya"
    );
    let (_, out, _) = parley(&["escalations", "--data", d, "--open"], None);
    assert!(out.contains("no open escalations"), "{out}");

    let (code, out, _) = parley(&["replay", "--data", d, "--json"], None);
    assert_eq!(code, Some(0));
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["divergent"], 0);
}
