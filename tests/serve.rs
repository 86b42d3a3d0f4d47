//! `parley serve`, driven over HTTP on a loopback port by a plain HTTP/1.1
//! client: writes answered once durable with the decision, the credential
//! rules (401 and 403 apart, the log unchanged after each refusal),
//! problem+json errors, the SSE stream across a reconnect with
//! Last-Event-ID, and a clean stop on SIGTERM.

mod common;

use std::process::{Command as Process, Stdio};
use std::time::Duration;

use common::parley_bin;
use common::server::{ledger, parley, records, token, Server};

const INTEND: &str = r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":1900},"reasoning":"match the rival","impact":{"revenue_minor":-100,"margin_minor":-100},"objective":"sales-growth"}}"#;

fn fact(producer: &str, colour: &str) -> String {
    format!(
        r#"{{"producer":"{producer}","kind":"fact","entity":"sku:S1","attribute":"colour","value":"{colour}"}}"#
    )
}

#[test]
fn agents_write_read_and_follow_over_http() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let reader = token(&dir, "dashboard", "reader");
    let maya = token(&dir, "maya", "human");
    let marketing = token(&dir, "marketing", "agent");
    let admin = token(&dir, "admin", "admin");
    let export = parley(&["export", "--data", dir.to_str().unwrap()], "");
    let marketing_grant = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["body"]["kind"] == "credential_granted" && r["body"]["identity"] == "marketing")
        .map(|r| r["seq"].as_u64().unwrap())
        .unwrap();
    let server = Server::start(&dir);

    // An intention is answered once durable, with its decision.
    let (status, _, answer) = server.post(Some(&pricing), INTEND);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["decision"]["outcome"]["kind"], "approved",
        "{answer}"
    );
    let intention = answer["seq"].as_u64().unwrap();
    let (status, _, body) = server.request(
        "GET",
        &format!("/v1/intentions/{intention}"),
        Some(&reader),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["decisions"][0]["body"]["decision"]["rule"], "approve");

    // An escalated intention's settlement reaches the agent that waits on it.
    let big = INTEND.replace(
        "-100,\"margin_minor\":-100",
        "-900000,\"margin_minor\":-100",
    );
    let (status, _, answer) = server.post(Some(&pricing), &big);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["decision"]["outcome"]["kind"], "escalated",
        "{answer}"
    );
    let escalated = answer["seq"].as_u64().unwrap();
    let waiting = std::thread::scope(|scope| {
        let poll = scope.spawn(|| {
            let path = format!("/v1/intentions/{escalated}?wait_ms=20000");
            server.request("GET", &path, Some(&pricing), "")
        });
        std::thread::sleep(Duration::from_millis(300));
        let resolve = format!(
            r#"{{"producer":"maya","kind":"human_resolution","intention":{escalated},"option":0,"rationale":"worth it"}}"#
        );
        let (status, _, answer) = server.post(Some(&maya), &resolve);
        assert_eq!(status, 200, "{answer}");
        poll.join().unwrap()
    });
    assert_eq!(waiting.0, 200, "{}", waiting.2);
    let got: serde_json::Value = serde_json::from_str(&waiting.2).unwrap();
    assert_eq!(got["settled"], true, "{got}");
    let last = &got["decisions"][got["decisions"].as_array().unwrap().len() - 1];
    assert_eq!(
        last["body"]["decision"]["outcome"]["kind"], "approved",
        "{got}"
    );

    // An admin revokes a credential over HTTP; from then on it is refused.
    assert_eq!(
        server.post(Some(&marketing), &fact("marketing", "teal")).0,
        200
    );
    let revoke =
        format!(r#"{{"producer":"admin","kind":"credential_revoked","grant":{marketing_grant}}}"#);
    let (status, _, answer) = server.post(Some(&pricing), &revoke.replace("admin", "pricing"));
    assert_eq!(status, 403, "an agent cannot revoke: {answer}");
    assert_eq!(
        answer["type"], "urn:parley:problem:role-forbids",
        "{answer}"
    );
    let (status, _, answer) = server.post(Some(&admin), &revoke);
    assert_eq!(status, 200, "{answer}");
    let (status, _, problem) = server.post(Some(&marketing), &fact("marketing", "teal"));
    assert_eq!(status, 401, "{problem}");

    // Current reads come from the published context.
    let (status, _, body) = server.request("GET", "/v1/state", Some(&reader), "");
    assert_eq!(status, 200, "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["skus"][0]["sku"], "S1", "{st}");
    let (status, _, body) = server.request("GET", "/v1/entities/sku:S1", Some(&reader), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"kind\":\"sku\""), "{body}");
    let (status, ctype, _) = server.request("GET", "/v1/entities/sku:NOPE", Some(&reader), "");
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));

    let (status, _, text) = server.request("GET", "/metrics", Some(&reader), "");
    assert_eq!(status, 200, "{text}");
    for want in [
        "parley_commands_total{result=\"ok\"}",
        "parley_decisions_total{rule=\"approve\",outcome=\"approved\"} 1",
        "parley_command_latency_us_count",
        "parley_open_escalations 0",
    ] {
        assert!(text.contains(want), "/metrics lacks {want}: {text}");
    }
    assert_eq!(server.request("GET", "/metrics", None, "").0, 401);

    // Refusals: 401 without or with a wrong token, 403 for another identity
    // or a reader writing; problem+json; 400 for malformed JSON.
    let agent_resolves = format!(
        r#"{{"producer":"pricing","kind":"human_resolution","intention":{escalated},"option":1,"rationale":"mine"}}"#
    );
    let agent_installs_rules =
        r#"{"producer":"pricing","kind":"rules_installed","text":"[guard]\nmin_margin_bp = 0\n"}"#;
    let cases: [(Option<&str>, String, u16, &str); 7] = [
        (Some(&pricing), agent_resolves, 403, "role-forbids"),
        (
            Some(&pricing),
            agent_installs_rules.into(),
            403,
            "role-forbids",
        ),
        (None, fact("pricing", "red"), 401, "unauthorized"),
        (
            Some("pk_wrong"),
            fact("pricing", "red"),
            401,
            "unauthorized",
        ),
        (
            Some(&pricing),
            fact("marketing", "red"),
            403,
            "not-your-identity",
        ),
        (Some(&reader), fact("dashboard", "red"), 403, "role-forbids"),
        (
            Some(&pricing),
            "{\"producer\":".into(),
            400,
            "invalid-command",
        ),
    ];
    for (tok, body, want, kind) in &cases {
        let (status, ctype, problem) = server.post(*tok, body);
        assert_eq!(status, *want, "{body}: {problem}");
        assert_eq!(ctype, "application/problem+json", "{body}");
        assert_eq!(
            problem["type"],
            format!("urn:parley:problem:{kind}"),
            "{problem}"
        );
        assert_eq!(problem["status"], *want);
    }
    let (status, _, _) = server.post(Some(&"x".repeat(300)), &fact("pricing", "red"));
    assert_eq!(status, 401);
    let huge = format!(
        "{{\"producer\":\"pricing\",\"pad\":\"{}\"}}",
        "x".repeat(3 << 20)
    );
    let (status, ctype, problem) = server.post(Some(&pricing), &huge);
    assert_eq!(
        (status, ctype.as_str()),
        (413, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(problem["type"], "urn:parley:problem:body-too-large");

    // The stream: catch up, disconnect, miss records, resume exactly.
    let first = server.events(&pricing, "?from=1", None, 8);
    let ids: Vec<u64> = first.iter().map(|e| e.0).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    assert_eq!(first[0].1, "genesis");
    for colour in ["red", "green", "blue"] {
        assert_eq!(server.post(Some(&pricing), &fact("pricing", colour)).0, 200);
    }
    let head = records(&dir);
    let rest = server.events(&pricing, "", Some(8), (head - 8) as usize);
    let ids: Vec<u64> = rest.iter().map(|e| e.0).collect();
    assert_eq!(ids, (9..=head).collect::<Vec<_>>(), "{rest:?}");
    assert_eq!(rest.last().unwrap().1, "fact");
    let decisions = server.events(&pricing, "?from=1&kind=decision", None, 1);
    assert_eq!(decisions[0].1, "decision");

    // Nothing a refusal touched reached the log.
    let before = records(&dir);
    for (tok, body, _, _) in &cases {
        server.post(*tok, body);
    }
    assert_eq!(records(&dir), before, "a refused request changed the log");

    // The CLI's writers refuse a served directory and say how to write.
    let out = Process::new(parley_bin())
        .args(["run", "--data", dir.to_str().unwrap(), "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("POST /v1/commands"), "{err}");

    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("stopped cleanly"), "{out}");
}

#[test]
fn sigterm_during_a_burst_loses_no_acknowledged_record() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let d = dir.to_str().unwrap();
    let pricing = token(&dir, "pricing", "agent");
    let server = Server::start(&dir);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // (seq, colour) of every acknowledged write.
    let acked: Vec<(u64, String)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (server, pricing, stop) = (&server, &pricing, &stop);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..5_000 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let colour = format!("w{w}-{i}");
                        let (status, _, answer) =
                            server.post(Some(pricing), &fact("pricing", &colour));
                        if status == 200 {
                            mine.push((answer["seq"].as_u64().unwrap(), colour));
                        } else if status == 0 {
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        let pid = server.child.id().to_string();
        Process::new("kill").args(["-TERM", &pid]).status().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        acked.len() > 10,
        "the burst acknowledged only {} writes",
        acked.len()
    );
    let export = parley(&["export", "--data", d], "");
    let by_seq: std::collections::BTreeMap<u64, serde_json::Value> = export
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["seq"].as_u64().unwrap(), v)
        })
        .collect();
    for (seq, colour) in &acked {
        let r = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} is missing"));
        assert_eq!(r["body"]["value"], colour.as_str(), "seq {seq}");
    }
    println!(
        "{} acknowledged writes during SIGTERM, all present after the stop",
        acked.len()
    );
}

#[test]
fn a_caller_over_its_quota_gets_429_and_the_log_is_unchanged() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let server = Server::start_with(&dir, &["--writes-per-s", "1"]);
    assert_eq!(server.post(Some(&pricing), &fact("pricing", "red")).0, 200);
    let before = records(&dir);
    let (status, ctype, problem) = server.post(Some(&pricing), &fact("pricing", "blue"));
    assert_eq!(
        (status, ctype.as_str()),
        (429, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(problem["type"], "urn:parley:problem:rate-limited");
    assert_eq!(records(&dir), before);
    assert_eq!(server.stop().0, Some(0));
}
