//! `parley serve`'s API against the library and the CLI: the same commands
//! decide the same over HTTP as in `parley run`; every route is in the
//! OpenAPI document and real answers match its schemas; `parley run` and
//! `parley resolve` work through a server; pages, batches and stream filters.

mod common;

use std::path::Path;

use common::server::{ledger, parley, records, token, Server};
use serde_json::{json, Value};

fn golden_lines() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/commands.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The golden commands' first 10 lines (rules, workflow, agents, a human, an
/// admin): the set-up both ledgers get from `parley run`.
const SETUP_LINES: usize = 10;
/// Golden lines 11 and 12 grant and revoke a credential by seq; left out.
const SKIPPED_LINES: usize = 2;

/// Who writes the golden commands, in the order their tokens are granted.
const WRITERS: [(&str, &str); 12] = [
    ("ops", "admin"),
    ("lee", "admin"),
    ("maya", "human"),
    ("pricing", "agent"),
    ("marketing", "agent"),
    ("inventory", "agent"),
    ("merchandising", "agent"),
    ("customer-service", "agent"),
    ("orders", "agent"),
    ("fraud", "agent"),
    ("supply", "agent"),
    ("competitor-tracking", "agent"),
];

/// A ledger holding the set-up lines and one token per writer.
fn prepared(dir: &Path) -> Vec<String> {
    let setup = golden_lines()[..SETUP_LINES].join("\n") + "\n";
    let d = dir.to_str().unwrap();
    let args = [
        "run",
        "--data",
        d,
        "--bare",
        "--admin",
        "ops",
        "--ledger-id",
        "ldg-match",
        "-",
    ];
    parley(&args, &setup);
    WRITERS
        .iter()
        .map(|(name, role)| token(dir, name, role))
        .collect()
}

/// The remaining golden lines with their seq references moved by `shift`
/// (the tokens' records and the two skipped lines change every later seq).
fn shifted_lines(shift: i64) -> Vec<String> {
    let first_moved = (SETUP_LINES + SKIPPED_LINES + 1) as u64;
    golden_lines()[SETUP_LINES + SKIPPED_LINES..]
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for key in ["intention", "grant", "causation"] {
                if let Some(seq) = v[key].as_u64().filter(|s| *s >= first_moved) {
                    v[key] = Value::from(seq.checked_add_signed(shift).unwrap());
                }
            }
            v.to_string()
        })
        .collect()
}

/// Every record's seq, time, producer and body (token hashes blanked: each
/// ledger's tokens are its own).
fn records_of(dir: &Path) -> Vec<Value> {
    parley(&["export", "--data", dir.to_str().unwrap()], "")
        .lines()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            if r["body"]["kind"] == "credential_granted" {
                r["body"]["token_hash"] = Value::Null;
            }
            serde_json::json!({"seq": r["seq"], "at": r["recorded_at_ms"], "producer": r["producer"], "body": r["body"]})
        })
        .collect()
}

#[test]
fn the_same_commands_decide_the_same_over_http_as_in_parley_run() {
    let base = tempfile::tempdir().unwrap();
    let (served, local) = (base.path().join("served"), base.path().join("local"));
    let tokens = prepared(&served);
    prepared(&local);
    let setup_head = records(&served);
    // Golden line 13 was seq 14 in the golden ledger; here it follows the tokens.
    let shift = setup_head as i64 + 1 - 14;
    let lines = shifted_lines(shift);

    let server = Server::start(&served);
    let mut http_answers = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let producer = v["producer"].as_str().unwrap();
        let n = WRITERS.iter().position(|(w, _)| *w == producer).unwrap();
        let (status, ctype, answer) = server.post(Some(&tokens[n]), line);
        assert!(
            status == 200 || ctype == "application/problem+json",
            "{status} {answer}"
        );
        http_answers.push((status, answer));
    }
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));

    let file = base.path().join("rest.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = std::process::Command::new(common::parley_bin())
        .args([
            "run",
            "--data",
            local.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let run_lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(run_lines.len(), http_answers.len());
    let mut decided = 0;
    for (n, ((status, http), run)) in http_answers.iter().zip(&run_lines).enumerate() {
        assert_eq!(
            *status == 200,
            run["ok"] == true,
            "line {n}: {http} vs {run}"
        );
        if *status == 200 {
            for key in ["seq", "decision", "caused", "recorded_at_ms"] {
                assert_eq!(http[key], run[key], "line {n}, {key}");
            }
            decided += usize::from(!http["decision"].is_null());
        }
    }
    assert!(decided >= 20, "only {decided} intentions were decided");
    // Not only the answers: both logs hold the same records.
    assert_eq!(records_of(&served), records_of(&local));
}

/// `.route("PATH", METHOD(` pairs in the router's source (and the A2A
/// routes it merges).
fn routes_in_source() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = ["src/server/mod.rs", "src/server/a2a/mod.rs"]
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .join("\n");
    let mut out = Vec::new();
    for part in src.split(".route(").skip(1) {
        let part = part.trim_start().strip_prefix('"').unwrap();
        let (path, rest) = part.split_once('"').unwrap();
        let method = rest
            .trim_start_matches(|c: char| c == ',' || c.is_whitespace())
            .split('(')
            .next()
            .unwrap()
            .to_owned();
        out.push((path.to_owned(), method));
    }
    assert!(out.len() >= 15, "found only {out:?}");
    out
}

fn document() -> Value {
    parley::server::openapi::document()
}

#[test]
fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    let routes = routes_in_source();
    for (path, method) in &routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is served but missing from the OpenAPI document"
        );
    }
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                routes.iter().any(|(p, m)| p == path && m == method),
                "{method} {path} is documented but not served"
            );
        }
    }
    assert_eq!(doc["openapi"], "3.1.0");
}

/// Validates `body` against the schema the document gives for `path`'s
/// `method` answer `status`.
fn check(doc: &Value, method: &str, path: &str, status: &str, body: &Value) {
    let escaped = path
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D");
    let media = if status == "default" {
        "application~1problem+json"
    } else {
        "application~1json"
    };
    let pointer = format!("#/paths/{escaped}/{method}/responses/{status}/content/{media}/schema");
    let mut root = doc.clone();
    root["$ref"] = Value::from(pointer.clone());
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

/// The schema the document gives at `pointer` (a JSON pointer into it).
fn validator_at(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = Value::from(format!("#{pointer}"));
    jsonschema::validator_for(&root).unwrap()
}

/// The schema of `name`, a query parameter of `path`'s GET.
fn query_param(doc: &Value, path: &str, name: &str) -> jsonschema::Validator {
    let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
    let i = params.iter().position(|p| p["name"] == name).unwrap();
    let escaped = path
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D");
    validator_at(doc, &format!("/paths/{escaped}/get/parameters/{i}/schema"))
}

#[test]
fn the_document_states_the_bounds_the_server_enforces() {
    // The testers' examples: each was allowed by the document and refused
    // by the server. Now the document refuses them too.
    let doc = document();
    assert!(!query_param(&doc, "/v1/state", "at_time").is_valid(&json!("")));
    assert!(query_param(&doc, "/v1/state", "at_time").is_valid(&json!("2025-11-26T09:00:00Z")));
    assert!(!query_param(&doc, "/v1/intentions/{seq}", "wait_ms").is_valid(&json!(1e34)));
    assert!(!query_param(&doc, "/v1/intentions/{seq}", "wait_ms").is_valid(&json!(30_001)));
    assert!(query_param(&doc, "/v1/intentions/{seq}", "wait_ms").is_valid(&json!(30_000)));
    assert!(!query_param(&doc, "/v1/records", "from").is_valid(&json!(0)));
    assert!(!query_param(&doc, "/v1/records", "entity").is_valid(&json!("sku:")));
    assert!(!query_param(&doc, "/v1/records", "kind").is_valid(&json!("no-such-kind")));
    let whatif = validator_at(
        &doc,
        "/paths/~1v1~1whatif/post/requestBody/content/application~1json/schema",
    );
    assert!(!whatif.is_valid(&json!({"resolver": 0})));
    assert!(
        !whatif.is_valid(&json!({"rules": null})),
        "nothing to replay"
    );
    assert!(whatif.is_valid(&json!({"resolver": 2})));
    let command = validator_at(
        &doc,
        "/paths/~1v1~1commands/post/requestBody/content/application~1json/schema",
    );
    let fact = |producer: &str| json!({"producer": producer, "kind": "fact", "entity": "shelf:1", "attribute": "n", "value": 1});
    assert!(command.is_valid(&fact("pricing")));
    for bad in ["", " pricing", "parley", "a\u{9b}b"] {
        assert!(!command.is_valid(&fact(bad)), "producer {bad:?}");
    }
    let mut extra = fact("pricing");
    extra["bogus"] = json!(1);
    assert!(
        !command.is_valid(&extra),
        "unknown fields are refused, so documented as such"
    );
    let decision = json!({"producer": "pricing", "kind": "decision", "decision": {}});
    assert!(
        !command.is_valid(&decision),
        "parley's own kinds are not commands"
    );
    // And the server refuses each with the code the document's schema implies.
    for (text, code) in [
        (
            r#"{"producer":"","kind":"fact","entity":"e","attribute":"n","value":1}"#,
            "invalid",
        ),
        (
            r#"{"producer":"p","kind":"fact","entity":"e","attribute":"n","value":1,"bogus":1}"#,
            "invalid",
        ),
        (
            r#"{"producer":"p","kind":"decision","decision":{}}"#,
            "parley",
        ),
    ] {
        let err = parley::Command::parse(text).unwrap_err().to_string();
        assert!(
            err.contains(code) || err.contains("unknown") || err.contains("must not"),
            "{text}: {err}"
        );
    }
}

const INTEND_BIG: &str = r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":1200},"reasoning":"clear the stock","impact":{"revenue_minor":-900000,"margin_minor":-800},"objective":"sales-growth"}}"#;

#[test]
fn real_answers_match_the_openapi_document() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let maya = token(&dir, "maya", "human");
    let admin = token(&dir, "admin", "admin");
    // The whole session's log at debug level: no token may appear in it.
    let log = base.path().join("serve.log");
    let server = Server::start_logged(&dir, &[], &log);
    let doc = document();
    let get = |path: &str, token: &str| {
        let (status, _, body) = server.request("GET", path, Some(token), "");
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };

    let (status, _, answer) = server.post(Some(&pricing), INTEND_BIG);
    assert_eq!(status, 200, "{answer}");
    check(&doc, "post", "/v1/commands", "200", &answer);
    assert_eq!(
        answer["decision"]["outcome"]["kind"], "escalated",
        "{answer}"
    );
    let id = answer["seq"].as_u64().unwrap();
    let resolve = format!(
        r#"{{"producer":"maya","kind":"human_resolution","intention":{id},"option":0,"rationale":"approved after review"}}"#
    );
    let (status, _, answer) = server.post(Some(&maya), &resolve);
    assert_eq!(status, 200, "{answer}");
    check(&doc, "post", "/v1/commands", "200", &answer);

    for (path, doc_path) in [
        ("/v1/state".to_owned(), "/v1/state"),
        ("/v1/state?at=3".to_owned(), "/v1/state"),
        ("/v1/entities/sku:S1".to_owned(), "/v1/entities/{entity}"),
        (
            "/v1/entities/sku:S1/audit?field=price".to_owned(),
            "/v1/entities/{entity}/audit",
        ),
        ("/v1/records?limit=3&from=2".to_owned(), "/v1/records"),
        ("/v1/records?kind=decision".to_owned(), "/v1/records"),
        ("/v1/escalations".to_owned(), "/v1/escalations"),
        (format!("/v1/escalations/{id}"), "/v1/escalations/{id}"),
        (format!("/v1/intentions/{id}"), "/v1/intentions/{seq}"),
        ("/v1/workflows".to_owned(), "/v1/workflows"),
        ("/v1/rules".to_owned(), "/v1/rules"),
    ] {
        let (status, body) = get(&path, &pricing);
        assert_eq!(status, 200, "{path}: {body}");
        check(&doc, "get", doc_path, "200", &body);
    }
    // Both escalation reads name the agent that announced the intention.
    for path in [
        "/v1/escalations".to_owned(),
        format!("/v1/escalations/{id}"),
    ] {
        let (_, body) = get(&path, &pricing);
        assert_eq!(body[0]["agent"], "pricing", "{path}: {body}");
    }
    let (status, body) = get("/v1/escalations/1", &pricing);
    assert_eq!(status, 404);
    check(&doc, "get", "/v1/escalations/{id}", "default", &body);

    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default.toml"))
            .unwrap()
            .replace(
                "escalate_above_minor = 500000",
                "escalate_above_minor = 5000000",
            );
    let body = serde_json::json!({"rules": rules}).to_string();
    let (status, _, text) = server.request("POST", "/v1/whatif", Some(&pricing), &body);
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    check(&doc, "post", "/v1/whatif", "200", &report);
    assert_eq!(report["changed"][0]["seq"], id, "{report}");

    let (status, _, text) = server.request(
        "POST",
        "/v1/tokens",
        Some(&admin),
        r#"{"name":"marketing","role":"agent"}"#,
    );
    assert_eq!(status, 201, "{text}");
    let created = text.clone();
    check(
        &doc,
        "post",
        "/v1/tokens",
        "201",
        &serde_json::from_str(&text).unwrap(),
    );
    let (status, _, text) = server.request(
        "POST",
        "/v1/tokens",
        Some(&pricing),
        r#"{"name":"pricing2","role":"agent"}"#,
    );
    assert_eq!(status, 403, "{text}");
    check(
        &doc,
        "post",
        "/v1/tokens",
        "default",
        &serde_json::from_str(&text).unwrap(),
    );
    let wrong = format!("{pricing}x");
    let (status, _, _) = server.request("GET", "/v1/state", Some(&wrong), "");
    assert_eq!(status, 401);
    let (status, _, _) = server.request("GET", "/metrics", Some(&admin), "");
    assert_eq!(status, 200);
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    // The log is really the session's: each request left a line.
    for path in ["/v1/commands", "/v1/whatif", "/v1/tokens", "/metrics"] {
        assert!(
            text.contains(path),
            "no line for {path} in the log:\n{text}"
        );
    }
    let created: Value = serde_json::from_str(&created).unwrap();
    let created = created["token"].as_str().expect("the new token").to_owned();
    for (name, secret) in [
        ("pricing", &pricing),
        ("maya", &maya),
        ("admin", &admin),
        ("created", &created),
        ("wrong", &wrong),
    ] {
        assert!(secret.len() >= 16, "{name}: {secret}");
        // The secret part of a token (what follows its id) never appears.
        let tail = &secret[secret.len() - 16..];
        assert!(
            !text.contains(tail),
            "the {name} token is in the server's log"
        );
    }
}

#[test]
fn run_and_resolve_go_through_a_server() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let maya = token(&dir, "maya", "human");
    let server = Server::start(&dir);
    let url = format!("http://{}", server.addr);
    let file = base.path().join("cmds.jsonl");
    let fact = r#"{"producer":"pricing","kind":"fact","entity":"sku:S1","attribute":"colour","value":"red"}"#;
    let other = r#"{"producer":"marketing","kind":"fact","entity":"sku:S1","attribute":"colour","value":"blue"}"#;
    std::fs::write(
        &file,
        format!("{fact}\n\nnot json\n{INTEND_BIG}\n{other}\n"),
    )
    .unwrap();
    let before = server_records(&server, &pricing);
    let out = std::process::Command::new(common::parley_bin())
        .args(["run", "--server", &url, file.to_str().unwrap()])
        .env("PARLEY_TOKEN", &pricing)
        .output()
        .unwrap();
    assert!(!out.status.success(), "two lines fail, so run exits 1");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(u64, bool)> = lines
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["ok"] == true))
        .collect();
    assert_eq!(
        summary,
        [(1, true), (3, false), (4, true), (5, false)],
        "{lines:?}"
    );
    assert_eq!(lines[3]["code"], "not-your-identity", "{lines:?}");
    assert_eq!(lines[2]["decision"]["outcome"]["kind"], "escalated");
    let id = lines[2]["seq"].as_u64().unwrap();
    // fact + intention + its escalating decision
    assert_eq!(server_records(&server, &pricing), before + 3);

    // Without --server the served directory is refused, saying how.
    let out = std::process::Command::new(common::parley_bin())
        .args([
            "resolve",
            "--data",
            dir.to_str().unwrap(),
            &id.to_string(),
            "--option",
            "0",
            "--as",
            "maya",
            "--why",
            "ok",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
    // A wrong token, then the human's.
    for (token, ok) in [(&pricing, false), (&maya, true)] {
        let out = std::process::Command::new(common::parley_bin())
            .args([
                "resolve",
                "--server",
                &url,
                &id.to_string(),
                "--option",
                "0",
                "--as",
                "maya",
                "--why",
                "fine by me",
                "--json",
            ])
            .env("PARLEY_TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, _, text) = server.request("GET", &format!("/v1/intentions/{id}"), Some(&pricing), "");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["settled"], true, "{got}");
    server.stop();
}

fn server_records(server: &Server, token: &str) -> u64 {
    let (_, _, text) = server.request("GET", "/v1/state", Some(token), "");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["seq"].as_u64().unwrap()
}

#[test]
fn pages_batches_and_stream_filters() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let marketing = token(&dir, "marketing", "agent");
    let server = Server::start(&dir);
    let fact = |p: &str, v: u32| {
        format!(
            r#"{{"producer":"{p}","kind":"fact","entity":"sku:S1","attribute":"n","value":{v}}}"#
        )
    };

    // A batch with one malformed command appends nothing.
    let head = server_records(&server, &pricing);
    let bad = format!(
        "[{},{{\"producer\":\"pricing\",\"kind\":\"fact\"}}]",
        fact("pricing", 1)
    );
    let (status, ctype, text) = server.request("POST", "/v1/commands/batch", Some(&pricing), &bad);
    assert_eq!(
        (status, ctype.as_str()),
        (400, "application/problem+json"),
        "{text}"
    );
    assert!(text.contains("command 1 of the batch"), "{text}");
    assert_eq!(server_records(&server, &pricing), head);
    // A repeated key is refused in a batch as on the single route.
    let twice = r#"{"producer":"pricing","kind":"fact","entity":"sku:S1","attribute":"n","value":1,"value":2}"#;
    let (status, _, single) = server.request("POST", "/v1/commands", Some(&pricing), twice);
    assert_eq!(status, 400, "{single}");
    assert!(single.contains("`value`"), "{single}");
    let (status, _, text) = server.request(
        "POST",
        "/v1/commands/batch",
        Some(&pricing),
        &format!("[{twice}]"),
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("command 0 of the batch") && text.contains("`value`"),
        "{text}"
    );
    assert_eq!(server_records(&server, &pricing), head);
    // A good one is answered in order.
    let good = format!(
        "[{}]",
        (0..20)
            .map(|n| fact("pricing", n))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, _, text) = server.request("POST", "/v1/commands/batch", Some(&pricing), &good);
    assert_eq!(status, 200, "{text}");
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    let seqs: Vec<u64> = items
        .iter()
        .map(|i| i["answer"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (head + 1..=head + 20).collect::<Vec<_>>());

    // Pages: every fact exactly once, in order, 7 at a time.
    let mut from = 1;
    let mut seen = Vec::new();
    loop {
        let path = format!("/v1/records?kind=fact&producer=pricing&limit=7&from={from}");
        let (status, _, text) = server.request("GET", &path, Some(&pricing), "");
        assert_eq!(status, 200, "{text}");
        let page: Value = serde_json::from_str(&text).unwrap();
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_u64().unwrap()),
        );
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(seen, seqs);
    for bad in [
        "/v1/records?kind=nope",
        "/v1/records?limit=0",
        "/v1/records?frm=1",
        "/v1/state?at=abc",
    ] {
        let (status, ctype, text) = server.request("GET", bad, Some(&pricing), "");
        assert_eq!(
            (status, ctype.as_str()),
            (400, "application/problem+json"),
            "{bad}: {text}"
        );
    }

    // `mine`: marketing's stream carries decisions on its own intentions only.
    let start = server_records(&server, &pricing) + 1;
    let intend = |p: &str, price: u32| {
        format!(
            r#"{{"producer":"{p}","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S1","price_minor":{price}}},"reasoning":"r","impact":{{"revenue_minor":-10,"margin_minor":-10}},"objective":"sales-growth"}}}}"#
        )
    };
    let (s1, _, a1) = server.post(Some(&pricing), &intend("pricing", 1950));
    let (s2, _, a2) = server.post(Some(&marketing), &intend("marketing", 1990));
    assert_eq!((s1, s2), (200, 200), "{a1} {a2}");
    let events = server.events(
        &marketing,
        &format!("?from={start}&kind=decision&mine=true"),
        None,
        1,
    );
    assert_eq!(
        events,
        [(
            a2["decision"]["seq"].as_u64().unwrap(),
            "decision".to_owned()
        )]
    );
    // `topic`: broadcasts on other topics are skipped, in the catch-up and
    // live alike (two wanted ones, each after one that is not).
    let broadcast = |topic: &str| {
        let body = format!(r#"{{"producer":"pricing","kind":"broadcast","topic":"{topic}"}}"#);
        let (status, _, answer) = server.post(Some(&pricing), &body);
        assert_eq!(status, 200, "{answer}");
        answer["seq"].as_u64().unwrap()
    };
    let from = broadcast("other");
    let first = broadcast("wanted");
    broadcast("other");
    let second = broadcast("wanted");
    let events = server.events(&pricing, &format!("?from={from}&topic=wanted"), None, 2);
    assert_eq!(
        events,
        [
            (first, "broadcast".to_owned()),
            (second, "broadcast".to_owned())
        ]
    );
    server.stop();
}

#[test]
fn a_deferred_intentions_later_approval_reaches_the_agent() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let inventory = token(&dir, "inventory", "agent");
    let admin = token(&dir, "admin", "admin");
    let server = Server::start(&dir);
    let register = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"inventory","domain":"inventory","priority":45}}"#;
    assert_eq!(server.post(Some(&admin), register).0, 200);
    let start = r#"{"producer":"pricing","kind":"workflow_started","run":"sale-1","workflow":"flash-sale-preparation","version":1,"params":{"skus":"S1"}}"#;
    let (status, _, answer) = server.post(Some(&pricing), start);
    assert_eq!(status, 200, "{answer}");
    let intend = r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":1800},"reasoning":"sale price","impact":{"revenue_minor":100,"margin_minor":100},"objective":"sales-growth","workflow_step":{"run":"sale-1","step":"update-prices"}}}"#;
    let (status, _, answer) = server.post(Some(&pricing), intend);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["decision"]["outcome"]["kind"], "deferred",
        "{answer}"
    );
    assert!(
        answer["decision"]["next"]
            .as_str()
            .unwrap()
            .contains("verify-inventory"),
        "{answer}"
    );
    let seq = answer["seq"].as_u64().unwrap();

    // The agent long-polls its intention; inventory finishes the step it waits for.
    std::thread::scope(|s| {
        let poll = s.spawn(|| {
            let path = format!("/v1/intentions/{seq}?wait_ms=20000");
            let (status, _, text) = server.request("GET", &path, Some(&pricing), "");
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let done = r#"{"producer":"inventory","kind":"step_completed","run":"sale-1","step":"verify-inventory"}"#;
        let (status, _, answer) = server.post(Some(&inventory), done);
        assert_eq!(status, 200, "{answer}");
        let got = poll.join().unwrap();
        assert_eq!(got["settled"], true, "{got}");
        let kinds: Vec<&str> = got["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["body"]["decision"]["outcome"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["deferred", "approved"], "{got}");
    });
    // The stream of the agent's own decisions carries both, in order.
    let decided: Vec<u64> = {
        let path = format!("/v1/intentions/{seq}");
        let (_, _, text) = server.request("GET", &path, Some(&pricing), "");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["seq"].as_u64().unwrap())
            .collect()
    };
    let events = server.events(&pricing, "?from=1&kind=decision&mine=true", None, 2);
    let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(seqs, decided);
    server.stop();
}

/// `POST /v1/scorecard` with a rule set and `GET /v1/suggestions` answer
/// what `parley scorecard --rules` and `parley suggest` print for the same
/// ledger (a demo's, with outcome records), next to the serving writer.
#[test]
fn the_scorecard_and_suggestions_over_http_match_the_command_line() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("demo");
    let d = dir.to_str().unwrap();
    parley(&["demo", "--data", d, "--json"], "");
    let admin = token(&dir, "ops", "admin");
    let server = Server::start(&dir);
    let rules_file = dir.join("whatif-rules.toml");
    let text = std::fs::read_to_string(&rules_file).unwrap();
    let body = json!({"rules": [text]}).to_string();
    let (status, _, answer) = server.request("POST", "/v1/scorecard", Some(&admin), &body);
    assert_eq!(status, 200, "{answer}");
    let http: Value = serde_json::from_str(&answer).unwrap();
    let cli: Value = serde_json::from_str(&parley(
        &[
            "scorecard",
            "--data",
            d,
            "--rules",
            rules_file.to_str().unwrap(),
            "--json",
        ],
        "",
    ))
    .unwrap();
    let (mut a, mut b) = (
        http["alternatives"][0].clone(),
        cli["alternatives"][0].clone(),
    );
    assert_eq!(a["rules"], "rules[0]");
    a["rules"] = Value::Null;
    b["rules"] = Value::Null;
    assert_eq!(a, b, "the same what-if and estimates");
    assert_eq!(a["is_estimate"], true);
    assert_eq!(http["realized"], cli["realized"]);
    assert_eq!(http["ledger_seq"], cli["ledger_seq"]);
    let (status, _, answer) = server.request("GET", "/v1/suggestions", Some(&admin), "");
    assert_eq!(status, 200, "{answer}");
    let http: Value = serde_json::from_str(&answer).unwrap();
    let cli: Value =
        serde_json::from_str(&parley(&["suggest", "--data", d, "--json"], "")).unwrap();
    assert_eq!(http, cli);
    assert!(!http["suggestions"].as_array().unwrap().is_empty());
    server.stop();
}
