//! parley's MCP server with the official Python MCP SDK (`mcp` from PyPI) as
//! the client, over both transports: Streamable HTTP at `/mcp` on `parley
//! serve`, and stdio from `parley mcp --server URL`. The client acts for the
//! marketing agent (`tests/mcp/client.py`); the log must hold exactly the
//! records its calls made. Needs a Python with `mcp` installed
//! (`PARLEY_TEST_PYTHON`, default `target/mcp-venv/bin/python`), so `cargo
//! test` lists these ignored and `.ci/run` installs it and runs them.

mod common;

use std::path::{Path, PathBuf};

use common::server::{parley, records, token, Server};
use serde_json::Value;

const SETUP: &str = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":40}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":45}}
{"producer":"merchandising","kind":"catalog","sku":"E1","category":"earbuds","cost_minor":7199,"price_minor":8999,"stock":120,"lifecycle":"active"}
{"producer":"merchandising","kind":"catalog","sku":"E2","category":"earbuds","cost_minor":4799,"price_minor":5999,"stock":120,"lifecycle":"active"}
{"producer":"merchandising","kind":"catalog","sku":"E3","category":"earbuds","cost_minor":10399,"price_minor":12999,"stock":120,"lifecycle":"active"}
{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"E2","price_minor":5399},"reasoning":"rival cut E2 by 10 %; match it","impact":{"revenue_minor":-48000,"margin_minor":-48000},"objective":"sales-growth"}}
"#;

fn python() -> PathBuf {
    std::env::var_os("PARLEY_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python"),
        PathBuf::from,
    )
}

fn client(args: &[&str], token: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .args(args)
        .env("PARLEY_TOKEN", token)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (a Python with `mcp`; .ci/run makes one): {e}",
                python().display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn check(seen: &Value, dir: &Path, before: u64) {
    assert_eq!(seen["server"], "parley", "{seen}");
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "announce_intention",
        "publish_fact",
        "broadcast",
        "get_context",
        "get_entity",
        "recent_events",
        "explain_decision",
        "audit_field",
        "whatif",
        "list_escalations",
        "resolve_escalation",
        "workflow_status",
        "report_step",
        "scorecard",
    ] {
        assert!(tools.contains(&t), "{t} missing from {tools:?}");
    }
    assert_eq!(seen["announce_has_output_schema"], true);
    assert!(seen["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "parley://rules"));
    assert!(seen["templates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "parley://sku/{id}"));
    assert_eq!(seen["rules_in_force"], true);
    assert_eq!(seen["e2_price"], 5399, "pricing's match is in the context");
    assert_eq!(seen["outcome"], "rejected", "{seen}");
    assert_eq!(seen["rule"], "guard.margin", "{seen}");
    assert_eq!(seen["explained_rule"], "guard.margin");
    assert!(
        seen["explanation"].as_str().unwrap().contains("E2"),
        "{seen}"
    );
    assert_eq!(seen["entity_kind"], "sku");
    assert!(seen["scorecard_seq"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["other_identity_refused"], true);
    assert!(
        seen["other_identity_message"]
            .as_str()
            .unwrap()
            .contains("acts as `marketing`"),
        "{seen}"
    );
    assert_eq!(seen["human_only_refused"], true);
    assert!(
        seen["human_only_message"]
            .as_str()
            .unwrap()
            .contains("for people"),
        "{seen}"
    );

    // Over Streamable HTTP a subscription to E2 hears about the fact.
    if seen["subscribed"] == true {
        assert_eq!(
            seen["updated"],
            serde_json::json!(["parley://sku/E2"]),
            "{seen}"
        );
    } else {
        assert!(
            seen["subscribe_refusal"]
                .as_str()
                .unwrap()
                .contains("Streamable HTTP"),
            "{seen}"
        );
    }
    // Exactly the records the calls made: the intention, its decision, the fact.
    let after = records(dir);
    assert_eq!(after, before + 3, "{seen}");
    let log = parley(
        &[
            "log",
            "--data",
            dir.to_str().unwrap(),
            "--from",
            &(before + 1).to_string(),
            "--json",
        ],
        "",
    );
    let got: Vec<(u64, String, String)> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["producer"].as_str().unwrap().to_owned(),
                r["body"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let intention = seen["intention_seq"].as_u64().unwrap();
    assert_eq!(
        got,
        [
            (intention, "marketing".to_owned(), "intend".to_owned()),
            (
                seen["decision_seq"].as_u64().unwrap(),
                "parley".to_owned(),
                "decision".to_owned()
            ),
            (
                seen["fact_seq"].as_u64().unwrap(),
                "marketing".to_owned(),
                "fact".to_owned()
            ),
        ]
    );
}

fn ledger(base: &Path) -> PathBuf {
    let dir = base.join("ledger");
    parley(&["run", "--data", dir.to_str().unwrap(), "-"], SETUP);
    dir
}

#[test]
#[ignore = "needs Python with the official `mcp` SDK; .ci/run installs it and runs this"]
fn the_python_sdk_uses_parley_over_streamable_http() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let marketing = token(&dir, "marketing", "agent");
    let server = Server::start(&dir);
    let before = records(&dir);
    let url = format!("http://{}/mcp", server.addr);
    let seen = client(&["http", &url, &marketing], &marketing);
    assert_eq!(seen["subscribed"], true, "{seen}");
    check(&seen, &dir, before);
    // Without a token, /mcp refuses before MCP starts.
    let (status, ctype, _) = server.request(
        "POST",
        "/mcp",
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_eq!((status, ctype.as_str()), (401, "application/problem+json"));
    // A session left open (never deleted), with its event stream, must not
    // hold up shutdown.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let auth = format!("Authorization: Bearer {marketing}\r\n");
    let headers = format!(
        "{auth}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
    );
    let (status, head, body) = server.raw("POST", "/mcp", &headers, init);
    assert_eq!(status, 200, "{head}\n{body}");
    let session = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no session id in {head}"));
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let headers =
        format!("{headers}Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n");
    let (status, head, _) = server.raw("POST", "/mcp", &headers, note);
    assert_eq!(status, 202, "{head}");
    let (status, _, _) = server.raw("POST", "/mcp", "", init);
    assert_eq!(status, 401, "no token, no session");
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "an open MCP session held up shutdown: {out}");
    assert_eq!(
        code,
        Some(0),
        "an open MCP session does not hold up shutdown"
    );
}

#[test]
#[ignore = "needs Python with the official `mcp` SDK; .ci/run installs it and runs this"]
fn the_python_sdk_uses_parley_over_stdio() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let marketing = token(&dir, "marketing", "agent");
    let server = Server::start(&dir);
    let before = records(&dir);
    let bin = common::parley_bin();
    let seen = client(
        &[
            "stdio",
            bin.to_str().unwrap(),
            &format!("http://{}", server.addr),
        ],
        &marketing,
    );
    check(&seen, &dir, before);
    server.stop();
}
