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

/// What became of one write sent while the server was stopping.
#[derive(Debug)]
enum Sent {
    /// Answered 200 with this seq.
    Acked(u64),
    /// Answered with another status (503 while stopping).
    Refused(u16),
    /// Sent, but the connection closed without an answer (a connection the
    /// kernel queued that the stopping server never accepted).
    Unanswered,
}

/// Posts `body`; `None` when no connection could be made (the server is gone).
fn send(server: &Server, token: &str, body: &str) -> Option<Sent> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&server.addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut text = String::new();
    if s.write_all(head.as_bytes()).is_err() || s.read_to_string(&mut text).is_err() {
        return Some(Sent::Unanswered);
    }
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Some(Sent::Unanswered);
    };
    let status: u16 = head[9..12].parse().unwrap();
    if status != 200 {
        return Some(Sent::Refused(status));
    }
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    Some(Sent::Acked(v["seq"].as_u64().unwrap()))
}

#[test]
fn sigterm_during_a_burst_loses_no_acknowledged_record() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let d = dir.to_str().unwrap();
    let pricing = token(&dir, "pricing", "agent");
    let server = Server::start(&dir);
    let acks = AtomicUsize::new(0);
    // (colour, what became of it) of every write sent.
    let sent: Vec<(String, Sent)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (server, pricing, acks) = (&server, &pricing, &acks);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    // Until the server is gone (no connection): bounded.
                    for i in 0..100_000 {
                        let colour = format!("w{w}-{i}");
                        let Some(r) = send(server, pricing, &fact("pricing", &colour)) else {
                            break;
                        };
                        if matches!(r, Sent::Acked(_)) {
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        mine.push((colour, r));
                    }
                    mine
                })
            })
            .collect();
        // SIGTERM once the burst is under way (an event, not a duration).
        while acks.load(Ordering::Relaxed) < 20 {
            std::thread::yield_now();
        }
        let pid = server.child.id().to_string();
        Process::new("kill").args(["-TERM", &pid]).status().unwrap();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let (code, out) = server.stop();
    assert_eq!(code, Some(0), "{out}");
    let export = parley(&["export", "--data", d], "");
    let in_log: std::collections::BTreeMap<String, u64> = export
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let colour = v["body"]["value"].as_str()?.to_owned();
            Some((colour, v["seq"].as_u64().unwrap()))
        })
        .collect();
    let mut counts = [0usize; 3];
    for (colour, r) in &sent {
        match r {
            Sent::Acked(seq) => {
                counts[0] += 1;
                assert_eq!(
                    in_log.get(colour),
                    Some(seq),
                    "acknowledged {colour} at seq {seq}"
                );
            }
            // A write refused or never answered was never appended: nothing
            // reaches the log without its answer being sent.
            Sent::Refused(status) => {
                counts[1] += 1;
                assert_eq!(*status, 503, "{colour}");
                assert!(
                    !in_log.contains_key(colour),
                    "refused {colour} is in the log"
                );
            }
            Sent::Unanswered => {
                counts[2] += 1;
                assert!(
                    !in_log.contains_key(colour),
                    "unanswered {colour} is in the log"
                );
            }
        }
    }
    assert!(counts[0] >= 20);
    println!(
        "SIGTERM during a burst: {} acknowledged (all in the log at their seq), {} refused with 503, {} never answered (none in the log)",
        counts[0], counts[1], counts[2]
    );
}

#[test]
fn a_caller_over_its_quota_gets_429_and_the_log_is_unchanged() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let before = records(&dir);
    let server = Server::start_with(&dir, &["--writes-per-s", "1"]);
    assert_eq!(server.post(Some(&pricing), &fact("pricing", "red")).0, 200);
    // Two writes at once are more than a quota of one per second ever
    // allows, whatever the time: refused whole, without a clock in the test.
    let batch = format!("[{},{}]", fact("pricing", "blue"), fact("pricing", "green"));
    let (status, ctype, problem) =
        server.request("POST", "/v1/commands/batch", Some(&pricing), &batch);
    assert_eq!(
        (status, ctype.as_str()),
        (429, "application/problem+json"),
        "{problem}"
    );
    assert!(
        problem.contains("urn:parley:problem:rate-limited"),
        "{problem}"
    );
    assert_eq!(server.stop().0, Some(0));
    assert_eq!(
        records(&dir),
        before + 1,
        "only the first write is in the log"
    );
}

/// A client that goes away must not end the server: `serve` keeps SIGPIPE
/// ignored (its sockets are written with writev, which raises it), while
/// the printing commands restore the default. Read from the kernel's view of
/// the process, no timing involved.
#[test]
fn the_server_ignores_sigpipe() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let server = Server::start(&dir);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_ne!(ignored & sigpipe, 0, "SigIgn {ignored:#x} lacks SIGPIPE");
}

/// An address that keeps failing authentication gets 429 for every request
/// (a valid token too) for the rest of its minute; both are counted in
/// /metrics. (Its window is a minute: the loop sends failures until the
/// limit is passed, so a window ending in between changes nothing.)
#[test]
fn repeated_bad_tokens_are_throttled_and_counted() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let server = Server::start_with(&dir, &["--bad-tokens-per-min", "3"]);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let (status, _, _) = server.request("GET", "/v1/whoami", Some("pk_wrong"), "");
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.len() >= 4 && statuses[..3].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    let (status, ctype, body) = server.request("GET", "/v1/whoami", Some(&pricing), "");
    assert_eq!(
        (status, ctype.as_str()),
        (429, "application/problem+json"),
        "{body}"
    );
    assert!(body.contains("failed authentication"), "{body}");
    // /metrics (with a token) still answers an address that is held.
    let (_, _, metrics) = server.request("GET", "/metrics", Some(&pricing), "");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("parley_auth_failures_total") >= 3, "{metrics}");
    assert!(value("parley_auth_throttled_total") >= 2, "{metrics}");
    assert_eq!(server.stop().0, Some(0));
}

/// A token made with `--expires` works until then; an admin's
/// `credential_expires` with a time already past ends it at once (401,
/// saying so); no one but an admin sets an expiry, and only on a
/// credential in force.
#[test]
fn tokens_expire() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let admin = token(&dir, "admin", "admin");
    let d = dir.to_str().unwrap();
    let r = common::parley(
        &[
            "token",
            "create",
            "--data",
            d,
            "--name",
            "pricing",
            "--role",
            "agent",
            "--expires",
            "90d",
        ],
        "",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("it expires at"), "{}", r.stderr);
    let pricing = r.stdout.trim().to_owned();
    let bad = common::parley(
        &[
            "token",
            "create",
            "--data",
            d,
            "--name",
            "x",
            "--role",
            "agent",
            "--expires",
            "3651d",
        ],
        "",
    );
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("3650d"), "{}", bad.stderr);
    let server = Server::start(&dir);
    let (status, _, body) = server.request("GET", "/v1/whoami", Some(&pricing), "");
    assert_eq!(status, 200, "{body}");
    let grant = serde_json::from_str::<serde_json::Value>(&body).unwrap()["grant"]
        .as_u64()
        .unwrap();
    let expire = |producer: &str, grant: u64| {
        format!(
            r#"{{"producer":"{producer}","kind":"credential_expires","grant":{grant},"expires_at_ms":1000}}"#
        )
    };
    // Not by the agent itself, nor on a grant that does not exist.
    assert_eq!(
        server.post(Some(&pricing), &expire("pricing", grant)).0,
        403
    );
    let (status, _, answer) = server.post(Some(&admin), &expire("admin", 999_999));
    assert_eq!(status, 422, "{answer}");
    let (status, _, answer) = server.post(Some(&admin), &expire("admin", grant));
    assert_eq!(status, 200, "{answer}");
    // A read that waits for the applied head (read-your-writes): from then
    // on every request sees the expiry.
    assert_eq!(server.request("GET", "/v1/state", Some(&admin), "").0, 200);
    let (status, _, body) = server.request("GET", "/v1/whoami", Some(&pricing), "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired at 1970-01-01T00:00:01"), "{body}");
    assert_eq!(server.request("GET", "/v1/whoami", Some(&admin), "").0, 200);
    assert_eq!(server.stop().0, Some(0));
}
