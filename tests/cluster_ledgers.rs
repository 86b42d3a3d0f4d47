//! Many stores on one database: 50 ledgers served by 3 `parley serve` nodes
//! (`--ledger` repeated) on a real PostgreSQL (started here; `.ci/run`
//! installs it): `cargo test --test cluster_ledgers -- --ignored`.
//!
//! Each ledger must have exactly one writer, every node must agree on it,
//! no node may write more than `--write-at-most`,
//! writes to every ledger through any node must succeed, killing the node
//! that writes the most ledgers must move each of them to a live node, and
//! a token of one ledger must be unknown to the others.
//!
//! The waits are liveness bounds, not performance targets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::pg::Cluster;
use common::server::{request_at, Server};
use serde_json::Value;

const LEDGERS: usize = 50;
const LIVENESS_S: u64 = 60;
const LEASE_MS: &str = "1000";
/// Each node writes at most half the ledgers: two nodes write them all, and
/// the third has room for a lost node's share.
const WRITE_AT_MOST: &str = "25";

fn names() -> Vec<String> {
    (0..LEDGERS).map(|i| format!("store-{i:02}")).collect()
}

fn start_node(url: &str, n: usize, log: &Path) -> Server {
    let names = names();
    let mut extra = vec!["--lease-ms", LEASE_MS, "--write-at-most", WRITE_AT_MOST];
    for name in &names[1..] {
        extra.extend(["--ledger", name.as_str()]);
    }
    Server::start_node(url, &names[0], &extra, &log.join(format!("node{n}.log")))
}

/// For every ledger, the index (into `nodes`) of its one writer, once every
/// live node agrees that exactly that node writes it.
fn writers(nodes: &[Option<Server>], tokens: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut last = String::new();
    for _ in 0..LIVENESS_S * 5 {
        let mut found = BTreeMap::new();
        'ledger: for (name, token) in tokens {
            let mut writer = None;
            let mut named = None;
            for (i, node) in nodes.iter().enumerate() {
                let Some(node) = node else { continue };
                let path = format!("/v1/ledgers/{name}/cluster");
                let (status, _, body) = request_at(&node.addr, "GET", &path, Some(token), "");
                if status != 200 {
                    last = format!("{name} on node {i}: {status} {body}");
                    continue 'ledger;
                }
                let v: Value = serde_json::from_str(&body).unwrap();
                if v["role"] == "writer" {
                    if writer.is_some() {
                        last = format!("{name}: two nodes say they write it");
                        continue 'ledger;
                    }
                    writer = Some((i, v["node"].clone()));
                }
                let says = v["writer"]["node"].clone();
                if named.get_or_insert_with(|| says.clone()) != &says {
                    last = format!("{name}: the nodes name different writers");
                    continue 'ledger;
                }
            }
            match writer {
                Some((i, node)) if Some(&node) == named.as_ref() => {
                    found.insert(name.clone(), i);
                }
                _ => last = format!("{name}: no node writes it yet"),
            }
        }
        if found.len() == tokens.len() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the ledgers did not each get one writer in {LIVENESS_S} s; last: {last}");
}

/// Writes one record to every ledger, each through a different live node
/// (forwarded to its writer where that is another); the seqs acknowledged.
fn write_all(
    nodes: &[Option<Server>],
    tokens: &BTreeMap<String, String>,
    round: u32,
) -> BTreeMap<String, u64> {
    let live: Vec<&Server> = nodes.iter().flatten().collect();
    let mut acked = BTreeMap::new();
    for (i, (name, token)) in tokens.iter().enumerate() {
        let body = format!(
            r#"{{"producer":"admin","idempotency_key":"r{round}","kind":"agent_registered","profile":{{"agent":"agent-{round}","domain":"pricing","priority":50}}}}"#
        );
        let path = format!("/v1/ledgers/{name}/commands");
        let mut tries = 0;
        loop {
            let node = live[(i + tries) % live.len()];
            let (status, _, text) = request_at(&node.addr, "POST", &path, Some(token), &body);
            if status == 200 || status == 201 {
                let v: Value = serde_json::from_str(&text).unwrap();
                acked.insert(name.clone(), v["seq"].as_u64().unwrap());
                break;
            }
            assert!(
                status == 0 || status == 503,
                "{name} via {}: {status} {text}",
                node.addr
            );
            tries += 1;
            assert!(
                tries < 20 * LIVENESS_S as usize,
                "no node took a write to {name} in {LIVENESS_S} s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    acked
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn fifty_ledgers_on_three_nodes_have_one_writer_each_and_move_off_a_killed_node() {
    let pg = Cluster::start_scratch();
    let url = pg.url("postgres");
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-ledgers-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let mut tokens = BTreeMap::new();
    for name in names() {
        let args = [
            "token", "create", "--store", &url, "--ledger", &name, "--name", "admin", "--role",
            "admin",
        ];
        let ran = common::parley(&args, "");
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        tokens.insert(name, ran.stdout.trim().to_owned());
    }
    let mut nodes: Vec<Option<Server>> = (0..3).map(|n| Some(start_node(&url, n, &logs))).collect();

    let before = writers(&nodes, &tokens);
    let mut load = [0usize; 3];
    for i in before.values() {
        load[*i] += 1;
    }
    eprintln!("ledgers written per node: {load:?}");
    assert!(
        load.iter().all(|n| *n <= 25),
        "a node writes more than --write-at-most: {load:?}"
    );
    let first = write_all(&nodes, &tokens, 1);
    assert_eq!(first.len(), LEDGERS);

    // While nodes run, tokens are granted through the API (forwarded to the
    // ledger's writer from any node); the CLI says so.
    let ran = common::parley(
        &[
            "token",
            "create",
            "--store",
            &url,
            "--ledger",
            &names()[0],
            "--name",
            "late",
            "--role",
            "agent",
        ],
        "",
    );
    assert_ne!(ran.code, Some(0));
    assert!(
        ran.stderr.contains("POST /v1/ledgers/store-00/tokens"),
        "{}",
        ran.stderr
    );
    let granted = (0..3).find_map(|i| {
        let path = format!("/v1/ledgers/{}/tokens", names()[0]);
        let node = nodes[i].as_ref().unwrap();
        let (status, _, body) = request_at(
            &node.addr,
            "POST",
            &path,
            Some(&tokens[&names()[0]]),
            r#"{"name":"late","role":"agent"}"#,
        );
        (status == 201 || status == 200).then(|| {
            serde_json::from_str::<Value>(&body).unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    });
    let late = granted.expect("a node granted a token for store-00");
    // Another node knows the grant once it has read it (a commit wakes it;
    // the bound is liveness, not a target).
    let works = (0..LIVENESS_S * 20).any(|_| {
        let (status, _, _) = request_at(
            &nodes[2].as_ref().unwrap().addr,
            "GET",
            "/v1/ledgers/store-00/whoami",
            Some(&late),
            "",
        );
        std::thread::sleep(Duration::from_millis(50));
        status == 200
    });
    assert!(
        works,
        "the granted token never worked on its ledger at another node"
    );
    let (status, _, _) = request_at(
        &nodes[2].as_ref().unwrap().addr,
        "GET",
        "/v1/ledgers/store-01/whoami",
        Some(&late),
        "",
    );
    assert_eq!(status, 401, "and on no other ledger");

    // A token belongs to its ledger only.
    let (a, b) = (&names()[0], &names()[1]);
    let path = format!("/v1/ledgers/{b}/state");
    let (status, _, _) = request_at(
        &nodes[0].as_ref().unwrap().addr,
        "GET",
        &path,
        Some(&tokens[a]),
        "",
    );
    assert_eq!(status, 401, "a token of {a} was accepted by {b}");
    // A node serving several ledgers says how to address one.
    let (status, _, body) = request_at(
        &nodes[0].as_ref().unwrap().addr,
        "GET",
        "/v1/state",
        Some(&tokens[a]),
        "",
    );
    assert_eq!(status, 404);
    assert!(body.contains("/v1/ledgers/"), "{body}");

    let busiest = (0..3).max_by_key(|i| load[*i]).unwrap();
    assert!(load[busiest] > 0);
    let mut killed = nodes[busiest].take().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let after = writers(&nodes, &tokens);
    for (name, was) in &before {
        if *was == busiest {
            assert_ne!(
                after[name], busiest,
                "{name} still has the killed node as writer"
            );
        }
    }
    let mut load_after = [0usize; 3];
    for i in after.values() {
        load_after[*i] += 1;
    }
    assert!(
        load_after.iter().all(|n| *n <= 25),
        "a node writes more than --write-at-most: {load_after:?}"
    );
    eprintln!(
        "node {busiest} killed: {} ledgers moved to live nodes; now {load_after:?}",
        load[busiest]
    );
    let second = write_all(&nodes, &tokens, 2);
    for (name, seq) in &second {
        assert!(
            *seq > first[name],
            "{name}: the second write did not follow the first"
        );
    }
    for s in nodes.into_iter().flatten() {
        let (code, _) = s.stop();
        assert_eq!(code, Some(0), "a node did not stop cleanly");
    }
    for name in names() {
        let ran = common::parley(
            &["verify", "--json", "--store", &url, "--ledger", &name],
            "",
        );
        assert_eq!(ran.json()["ok"], true, "{name}: {}", ran.stdout);
        assert_eq!(
            ran.json()["head_seq"].as_u64(),
            Some(second[&name]),
            "{name}: {}",
            ran.stdout
        );
    }
}
