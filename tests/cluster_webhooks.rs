//! A store platform's webhook delivered to a node that does not write the
//! ledger (several `parley serve` nodes on one ledger in a real PostgreSQL):
//! the follower forwards it, signature and all, to the writer, and answers
//! once it holds the record. Needs PostgreSQL's server (`.ci/run` installs
//! it): `cargo test --test cluster_webhooks -- --ignored`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::load::{tokens, LIVENESS_S};
use common::pg::Cluster;
use common::server::Server;
use parley::integration::signature::Secret;
use serde_json::Value;

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_follower_forwards_a_signed_delivery_to_the_writer() {
    let pg = Cluster::start_scratch();
    let url = pg.url("postgres");
    let place = ["--store", url.as_str(), "--ledger", "shop"];
    let (admin, _) = tokens(&place);
    let register = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"store-sync","domain":"integration","priority":10}}"#;
    let ran = common::parley(&[&["run"][..], &place, &["-"]].concat(), register);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "cluster-secret").unwrap();
    let flags = [
        "--webhooks-as",
        "store-sync",
        "--shopify-secret-file",
        secret.to_str().unwrap(),
    ];
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let nodes: Vec<Server> = (0..2)
        .map(|i| {
            Server::start_node(
                &url,
                "shop",
                &flags,
                &logs.join(format!("webhook-node{i}.log")),
            )
        })
        .collect();
    let role = |s: &Server| {
        let (_, _, body) = s.request("GET", "/v1/cluster", Some(&admin), "");
        serde_json::from_str::<Value>(&body)
            .ok()
            .map(|v| v["role"].clone())
    };
    let mut follower = None;
    for _ in 0..LIVENESS_S * 20 {
        let roles: Vec<_> = nodes.iter().map(role).collect();
        if roles
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r == "writer"))
        {
            follower = roles
                .iter()
                .position(|r| r.as_ref().is_some_and(|r| r == "follower"));
            if follower.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let follower = &nodes[follower.expect("one node writes and one follows")];
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/store-webhooks/shopify/products-create.json"),
    )
    .unwrap();
    let sig = Secret::new("cluster-secret").unwrap().sign(body.as_bytes());
    let headers = format!(
        "Content-Type: application/json\r\nX-Shopify-Topic: products/create\r\nX-Shopify-Webhook-Id: c-1\r\nX-Shopify-Hmac-Sha256: {sig}\r\n"
    );
    // Until the follower has seen the writer's lease it answers 503
    // not-the-writer, as a platform's retry would see; the retry carries the
    // same delivery id, so it appends at most once.
    let mut sent = None;
    for _ in 0..LIVENESS_S * 20 {
        let (status, _, answer) = follower.raw("POST", "/v1/webhooks/shopify", &headers, &body);
        if status != 503 {
            sent = Some((status, answer));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, answer) = sent.expect("the follower learned the writer's address");
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"], "applied", "{answer}");
    // The follower answered once it held the record: it reads its own write.
    let (_, _, state) = follower.request("GET", "/v1/entities/sku:SKU-TR-42", Some(&admin), "");
    assert!(state.contains("footwear"), "{state}");
    // The same under the ledger's own prefix: its routes' path parameters
    // are their own (the prefix's `{ledger}` does not reach them).
    let (status, _, state) = follower.request(
        "GET",
        "/v1/ledgers/shop/entities/sku:SKU-TR-42",
        Some(&admin),
        "",
    );
    assert_eq!(status, 200, "{state}");
    let (status, _, intention) =
        follower.request("GET", "/v1/ledgers/shop/intentions/1", Some(&admin), "");
    assert_eq!(
        status, 404,
        "seq 1 is the genesis, not an intention: {intention}"
    );
    assert!(intention.contains("not an intention"), "{intention}");
    // A bad signature is refused by the writer too, and appends nothing.
    let (status, _, _) = follower.raw(
        "POST",
        "/v1/webhooks/shopify",
        &headers,
        &body.replace("89.99", "1.00"),
    );
    assert_eq!(status, 401);
}
