//! Store platforms' webhooks against a real `parley serve`: every example
//! delivery signed and mapped as the README documents; bad, missing and
//! stale-body signatures refused with nothing appended; retries appending
//! nothing; an older update after a newer one leaving the newer; a body over
//! the limit; another currency; and a pricing decision that cites the
//! catalog value a product webhook wrote.

mod common;

use std::path::Path;

use common::server::{parley, token, Server};
use parley::integration::signature::Secret;
use serde_json::{json, Value};

const SECRET: &str = "shpss_example_secret";
const SETUP: &str = r#"{"producer":"ops","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}
{"producer":"ops","kind":"agent_registered","profile":{"agent":"store-sync","domain":"integration","priority":10}}
"#;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/store-webhooks")
}

/// (platform, topic, delivery id, payload) of every example delivery.
fn deliveries() -> Vec<(String, String, String, String)> {
    let manifest = std::fs::read_to_string(fixtures().join("deliveries.jsonl")).unwrap();
    manifest
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            let body = std::fs::read_to_string(fixtures().join(s("file"))).unwrap();
            (s("platform"), s("topic"), s("delivery"), body)
        })
        .collect()
}

struct Store {
    server: Server,
    reader: String,
    pricing: String,
    _dir: tempfile::TempDir,
}

/// A ledger with pricing and the integration identity, served with both
/// platforms' secrets.
fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let d = data.to_str().unwrap();
    parley(&["run", "--data", d, "--admin", "ops", "-"], SETUP);
    let reader = token(&data, "auditor", "reader");
    let pricing = token(&data, "pricing", "agent");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let s = secret.to_str().unwrap();
    let server = Server::start_with(
        &data,
        &[
            "--webhooks-as",
            "store-sync",
            "--shopify-secret-file",
            s,
            "--woocommerce-secret-file",
            s,
        ],
    );
    Store {
        server,
        reader,
        pricing,
        _dir: dir,
    }
}

fn signature_header(platform: &str) -> &'static str {
    if platform == "shopify" {
        "X-Shopify-Hmac-Sha256"
    } else {
        "X-WC-Webhook-Signature"
    }
}

/// Posts one delivery with `signature` (None: no signature header).
fn post_signed(
    server: &Server,
    (platform, topic, delivery): (&str, &str, &str),
    body: &str,
    signature: Option<&str>,
) -> (u16, Value) {
    let (t, d) = if platform == "shopify" {
        ("X-Shopify-Topic", "X-Shopify-Webhook-Id")
    } else {
        ("X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID")
    };
    let mut headers =
        format!("Content-Type: application/json\r\n{t}: {topic}\r\n{d}: {delivery}\r\n");
    if let Some(sig) = signature {
        headers.push_str(&format!("{}: {sig}\r\n", signature_header(platform)));
    }
    let (status, _, text) = server.raw("POST", &format!("/v1/webhooks/{platform}"), &headers, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn post(server: &Server, who: (&str, &str, &str), body: &str) -> (u16, Value) {
    let sig = Secret::new(SECRET).unwrap().sign(body.as_bytes());
    post_signed(server, who, body, Some(&sig))
}

fn head(store: &Store) -> u64 {
    let (status, _, text) = store
        .server
        .request("GET", "/v1/state", Some(&store.reader), "");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn state(store: &Store) -> Value {
    let (status, _, text) = store
        .server
        .request("GET", "/v1/state", Some(&store.reader), "");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn sku<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["skus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sku"] == id)
        .unwrap_or_else(|| panic!("no sku {id} in {state}"))
}

fn fact<'a>(state: &'a Value, entity: &str, attribute: &str) -> &'a Value {
    &state["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["entity"] == entity && f["attribute"] == attribute)
        .unwrap_or_else(|| panic!("no fact {entity}.{attribute}"))["value"]["value"]
}

#[test]
fn every_example_delivery_is_recorded_as_documented() {
    let store = store();
    let before = head(&store);
    let mut recorded = 0;
    for (platform, topic, delivery, body) in deliveries() {
        let (status, answer) = post(&store.server, (&platform, &topic, &delivery), &body);
        if topic == "shop/update" {
            assert_eq!(status, 202, "{answer}");
            assert_eq!(answer["result"], "not_mapped");
            continue;
        }
        assert_eq!(status, 200, "{platform} {topic}: {answer}");
        assert_eq!(answer["result"], "applied", "{topic}: {answer}");
        recorded += 1;
    }
    assert_eq!(
        head(&store),
        before + recorded,
        "one record per mapped delivery"
    );
    let s = state(&store);
    let tr42 = sku(&s, "SKU-TR-42");
    assert_eq!(tr42["category"]["value"], "footwear");
    assert_eq!(tr42["price_minor"]["value"], 8499, "products/update: 84.99");
    assert_eq!(
        tr42["cost_minor"]["value"], 4120,
        "inventory_items/update: 41.20"
    );
    assert_eq!(tr42["stock"]["value"], 38, "inventory_levels/update");
    assert_eq!(
        sku(&s, "SKU-TR-43")["stock"]["value"],
        35,
        "the variant's count"
    );
    let mug = sku(&s, "WC-MUG");
    assert_eq!(mug["price_minor"]["value"], 1100);
    assert_eq!(mug["stock"]["value"], 90);
    assert_eq!(mug["category"]["value"], "mugs");
    let order = |id: &str| {
        s["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(order("4001")["customer"]["value"], "3001");
    assert_eq!(order("4001")["total_minor"]["value"], 16998);
    assert_eq!(order("4002")["customer"]["value"], "guest");
    assert_eq!(fact(&s, "order:4001", "status"), "fulfilled");
    assert_eq!(fact(&s, "order:4002", "status"), "cancelled");
    assert_eq!(fact(&s, "order:701", "status"), "fulfilled");
    assert_eq!(fact(&s, "customer:3001", "orders"), 1);
    assert_eq!(fact(&s, "customer:3001", "spent_minor"), 16998);
    // The refund is an outcome: the scorecard counts it.
    let (status, _, text) = store
        .server
        .request("GET", "/v1/scorecard", Some(&store.reader), "");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("8499"),
        "the refund of 84.99 is counted: {text}"
    );
}

#[test]
fn bad_missing_and_stale_body_signatures_append_nothing() {
    let store = store();
    let before = head(&store);
    let (_, topic, delivery, body) = deliveries().remove(0);
    let who = ("shopify", topic.as_str(), delivery.as_str());
    let wrong = Secret::new("another-secret").unwrap().sign(body.as_bytes());
    let stale = Secret::new(SECRET)
        .unwrap()
        .sign(body.replace("89.99", "1.00").as_bytes());
    for (name, sig) in [
        ("wrong secret", Some(wrong.as_str())),
        ("missing", None),
        ("signed a different body", Some(stale.as_str())),
        ("not base64", Some("%%%")),
    ] {
        let (status, answer) = post_signed(&store.server, who, &body, sig);
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(
            answer["type"], "urn:parley:problem:bad-signature",
            "{name}: {answer}"
        );
    }
    // WooCommerce's own header, checked the same way.
    let (status, _) = post_signed(
        &store.server,
        ("woocommerce", "product.created", "1"),
        &body,
        Some(&wrong),
    );
    assert_eq!(status, 401);
    assert_eq!(head(&store), before, "nothing appended");
    // The secret is in no answer and no record.
    let (_, _, records) = store
        .server
        .request("GET", "/v1/records", Some(&store.reader), "");
    assert!(!records.contains(SECRET));
}

#[test]
fn a_retried_delivery_appends_nothing_and_answers_as_the_first() {
    let store = store();
    let (_, topic, delivery, body) = deliveries().remove(0);
    let who = ("shopify", topic.as_str(), delivery.as_str());
    let (s1, first) = post(&store.server, who, &body);
    let after_first = head(&store);
    let (s2, again) = post(&store.server, who, &body);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first["seq"], again["seq"], "{first} {again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(head(&store), after_first, "one record");
}

#[test]
fn an_older_update_after_a_newer_one_is_superseded() {
    let store = store();
    let all = deliveries();
    let newer = &all[1];
    assert_eq!(newer.1, "products/update");
    let stale =
        std::fs::read_to_string(fixtures().join("shopify/products-update-stale.json")).unwrap();
    let (_, a) = post(
        &store.server,
        ("shopify", "products/update", &newer.2),
        &newer.3,
    );
    assert_eq!(a["result"], "applied");
    let (status, b) = post(
        &store.server,
        ("shopify", "products/update", "late-1"),
        &stale,
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["result"], "superseded", "{b}");
    assert_eq!(b["held_seq"], a["seq"]);
    let s = state(&store);
    assert_eq!(
        sku(&s, "SKU-TR-42")["price_minor"]["value"],
        8499,
        "the newer price stays"
    );
    assert_eq!(sku(&s, "SKU-TR-42")["price_minor"]["seq"], a["seq"]);
}

#[test]
fn oversized_bodies_other_currencies_and_unknown_platforms_are_refused() {
    let store = store();
    let before = head(&store);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 << 20));
    let (status, _) = post(&store.server, ("shopify", "products/update", "big"), &big);
    assert_eq!(status, 413);
    let order = std::fs::read_to_string(fixtures().join("shopify/orders-create.json")).unwrap();
    let usd = order.replace("\"GBP\"", "\"USD\"");
    let (status, answer) = post(&store.server, ("shopify", "orders/create", "usd-1"), &usd);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["type"], "urn:parley:problem:wrong-currency");
    assert!(
        answer["detail"].as_str().unwrap().contains("USD"),
        "{answer}"
    );
    let (status, answer) = post(
        &store.server,
        ("shopify", "orders/create", "bad-1"),
        "{\"id\":\"x\"}",
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["type"], "urn:parley:problem:bad-payload");
    let (status, _) = post(&store.server, ("bigcartel", "orders/create", "x"), &order);
    assert_eq!(status, 404);
    // WooCommerce's ping when a webhook is saved: answered, nothing recorded.
    let (status, _, text) = store.server.raw(
        "POST",
        "/v1/webhooks/woocommerce",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "webhook_id=12",
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(head(&store), before, "nothing appended");
}

#[test]
fn pricing_decides_on_the_catalog_a_product_webhook_wrote() {
    let store = store();
    let all = deliveries();
    let (_, created) = post(
        &store.server,
        ("shopify", "products/create", &all[0].2),
        &all[0].3,
    );
    let (_, item) = post(
        &store.server,
        ("shopify", "inventory_items/update", &all[3].2),
        &all[3].3,
    );
    assert_eq!(item["result"], "applied", "{item}");
    let intend = json!({"producer":"pricing","kind":"intend","intention":{
        "action":{"type":"set_price","sku":"SKU-TR-42","price_minor":8799},
        "reasoning":"match the competitor","objective":"sales-growth",
        "impact":{"revenue_minor":5000,"margin_minor":-1000}}});
    let (status, _, answer) = store.server.post(Some(&store.pricing), &intend.to_string());
    assert_eq!(status, 200, "{answer}");
    let reads = answer["decision"]["trace"]
        .as_array()
        .unwrap_or_else(|| panic!("a trace: {answer}"))
        .iter()
        .flat_map(|step| step["reads"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<Value>>();
    let cites = |seq: &Value, field: &str| {
        reads
            .iter()
            .any(|r| &r["seq"] == seq && r["field"].as_str().is_some_and(|f| f.contains(field)))
    };
    assert!(
        cites(&created["seq"], "category"),
        "the sku's category read cites the product webhook's record {}: {reads:?}",
        created["seq"]
    );
    assert!(
        cites(&item["seq"], "cost"),
        "the cost read cites the inventory item's record {}: {reads:?}",
        item["seq"]
    );
}

#[test]
fn the_integration_role_writes_facts_but_never_intentions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let d = data.to_str().unwrap();
    parley(&["run", "--data", d, "--admin", "ops", "-"], SETUP);
    // Only a registered agent of domain integration holds the role.
    let args = [
        "token",
        "create",
        "--data",
        d,
        "--name",
        "pricing",
        "--role",
        "integration",
    ];
    let ran = common::parley(&args, "");
    assert_ne!(ran.code, Some(0));
    assert!(
        ran.stderr
            .contains("registered agents of domain integration"),
        "{}",
        ran.stderr
    );
    let sync = token(&data, "store-sync", "integration");
    let reader = token(&data, "auditor", "reader");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    // Deliveries written as an identity that is not an integration agent
    // are refused by admission, and nothing is appended.
    let server = Server::start_with(
        &data,
        &[
            "--webhooks-as",
            "pricing",
            "--shopify-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    let all = deliveries();
    let (status, answer) = post(
        &server,
        ("shopify", "products/create", &all[0].2),
        &all[0].3,
    );
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("synced"),
        "{answer}"
    );
    let catalog = json!({"producer":"store-sync","kind":"catalog","sku":"S9","category":"mugs",
        "cost_minor":100,"price_minor":300,"stock":4,"lifecycle":"active"});
    let (status, _, answer) = server.post(Some(&sync), &catalog.to_string());
    assert_eq!(status, 200, "{answer}");
    let intend = json!({"producer":"store-sync","kind":"intend","intention":{
        "action":{"type":"set_price","sku":"S9","price_minor":250},
        "reasoning":"r","objective":"sales-growth","impact":{"revenue_minor":1,"margin_minor":1}}});
    let (status, _, answer) = server.post(Some(&sync), &intend.to_string());
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["type"], "urn:parley:problem:role-forbids",
        "{answer}"
    );
    let (_, _, text) = server.request("GET", "/v1/state", Some(&reader), "");
    assert!(
        !text.contains("SKU-TR-42"),
        "the refused delivery left no sku"
    );
    drop(server);
    // Without --webhooks-as the routes answer that webhooks are off.
    let server = Server::start(&data);
    let (status, answer) = post(
        &server,
        ("shopify", "products/create", &all[0].2),
        &all[0].3,
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["type"], "urn:parley:problem:webhooks-off");
}

#[test]
fn catalog_exports_import_once_locally_and_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let d = data.to_str().unwrap();
    parley(&["run", "--data", d, "--admin", "ops", "-"], SETUP);
    let shopify = fixtures().join("shopify-products.csv");
    let import = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "import-catalog",
            "--data",
            d,
            "--as",
            "store-sync",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        common::parley(&args, "")
    };
    let first = import(&shopify, &["--format", "shopify-csv"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(
        first.json()["appended"],
        4,
        "an image row is no sku: {}",
        first.stdout
    );
    let again = import(&shopify, &["--format", "shopify-csv"]);
    assert_eq!(again.json()["appended"], 0);
    assert_eq!(again.json()["already_imported"], 4);
    // One bad row refuses the file, naming its line; --skip-bad imports the rest.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "Handle,Variant SKU,Variant Price\na,A1,1.999\nb,B1,2.00\nc,,3.00\n",
    )
    .unwrap();
    let refused = import(&bad, &["--format", "shopify-csv"]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("bad.csv:2: `Variant Price` is `1.999`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("bad.csv:4: no SKU"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was imported"),
        "{}",
        refused.stderr
    );
    let skipped = import(&bad, &["--format", "shopify-csv", "--skip-bad"]);
    assert_eq!(skipped.code, Some(0), "{}", skipped.stderr);
    assert_eq!(skipped.json()["appended"], 1);
    assert_eq!(skipped.json()["bad_rows"], 2);
    // Through a server, as the integration's token.
    let sync = token(&data, "store-sync", "integration");
    let reader = token(&data, "auditor", "reader");
    let server = Server::start(&data);
    let woo = fixtures().join("woocommerce-products.csv");
    let url = format!("http://{}", server.addr);
    let out = std::process::Command::new(common::parley_bin())
        .env("PARLEY_TOKEN", &sync)
        .args([
            "import-catalog",
            "--server",
            &url,
            "--format",
            "woocommerce-csv",
            "--as",
            "store-sync",
            "--json",
        ])
        .arg(&woo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["appended"], 4, "{summary}");
    let (_, _, text) = server.request("GET", "/v1/entities/sku:WC-TEE-S", Some(&reader), "");
    assert!(
        text.contains("T-shirts"),
        "the variation took its parent's category: {text}"
    );
}
