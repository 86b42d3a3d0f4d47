//! Load for the cluster tests: clients that write through whichever node
//! answers and keep every acknowledgement, and the checks that the final
//! log holds each of them once, at its seq.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;

/// Tokens for `admin` and the agent `pricing` of the ledger at `place`
/// (`--store URL --ledger NAME`), the agent registered: what the clients
/// write as.
pub fn tokens(place: &[&str]) -> (String, String) {
    let token_of = |name: &str, role: &str| {
        let args = [
            &["token", "create"][..],
            place,
            &["--name", name, "--role", role],
        ]
        .concat();
        let ran = super::parley(&args, "");
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.stdout.trim().to_owned()
    };
    let admin = token_of("admin", "admin");
    let agent = token_of("pricing", "agent");
    let register = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}"#;
    let ran = super::parley(&[&["run"][..], place, &["-"]].concat(), register);
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    (admin, agent)
}

/// Bound on every wait for a cluster to make progress.
pub const LIVENESS_S: u64 = 60;

#[derive(Clone, Debug)]
pub struct Ack {
    pub seq: u64,
    pub hash: String,
    pub key: String,
    /// When the client first sent the write.
    pub sent: std::time::Instant,
}

/// A client: writes facts with unique idempotency keys, to the nodes in turn,
/// retrying a write (same key) on the next node until one acknowledges it.
pub fn client(
    id: usize,
    token: String,
    addrs: Arc<RwLock<Vec<String>>>,
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    let mut target = id;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("c{id}-{n}");
        let body = format!(
            r#"{{"producer":"pricing","idempotency_key":"{key}","kind":"fact","entity":"sku:SKU-{id}","attribute":"n","value":{n}}}"#
        );
        let mut tries = 0;
        #[allow(clippy::disallowed_methods)] // a measurement printed, never asserted
        let sent = std::time::Instant::now();
        loop {
            let addr = {
                let addrs = addrs.read().unwrap();
                addrs[target % addrs.len()].clone()
            };
            let (status, _, text) =
                super::server::request_at(&addr, "POST", "/v1/commands", Some(&token), &body);
            if status == 200 || status == 201 {
                let v: Value = serde_json::from_str(&text).unwrap();
                acks.lock().unwrap().push(Ack {
                    seq: v["seq"].as_u64().unwrap(),
                    hash: v["hash"].as_str().unwrap().to_owned(),
                    key: key.clone(),
                    sent,
                });
                break;
            }
            assert!(
                status == 0 || status == 503,
                "node {addr} answered {status}: {text}"
            );
            tries += 1;
            assert!(
                tries < LIVENESS_S * 20,
                "no node took write {key} in {LIVENESS_S} s"
            );
            target += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn acked_count(acks: &Mutex<Vec<Ack>>) -> usize {
    acks.lock().unwrap().len()
}

/// Waits for the first acknowledgement of a write first sent after `t0`
/// (no writer that was killed at `t0` can have made it); the time since `t0`.
pub fn wait_first_after(acks: &Mutex<Vec<Ack>>, t0: std::time::Instant) -> Duration {
    for _ in 0..LIVENESS_S * 200 {
        if acks.lock().unwrap().iter().any(|a| a.sent > t0) {
            #[allow(clippy::disallowed_methods)] // a measurement printed, never asserted
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no write sent after the kill was acknowledged in {LIVENESS_S} s");
}

/// Waits until `more` acknowledgements past `after` arrived; the time taken.
pub fn wait_acks(acks: &Mutex<Vec<Ack>>, after: usize, more: usize) -> Duration {
    #[allow(clippy::disallowed_methods)] // a measurement printed, never asserted
    let t0 = std::time::Instant::now();
    for _ in 0..LIVENESS_S * 100 {
        if acked_count(acks) >= after + more {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the cluster acknowledged nothing for {LIVENESS_S} s");
}

/// The final log holds every acknowledged record once, at its seq, and
/// every record a node handed out.
pub fn check_log(place: &[&str], acks: &[Ack], seen: &[(u64, String, String)], dir: &Path) {
    let verify = super::parley(&[&["verify", "--json"][..], place].concat(), "");
    assert_eq!(verify.json()["ok"], true, "{}", verify.stdout);
    let replay = super::parley(&[&["replay", "--json"][..], place].concat(), "");
    assert_eq!(replay.json()["divergent"], 0, "{}", replay.stdout);
    let out = dir.join("final.jsonl");
    let args = [&["export", "--out", out.to_str().unwrap()][..], place].concat();
    assert_eq!(super::parley(&args, "").code, Some(0));
    let log: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hash_at = |seq: u64| {
        log[usize::try_from(seq - 1).unwrap()]["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut keys: BTreeMap<String, u64> = BTreeMap::new();
    for r in &log {
        if let Some(k) = r["idempotency_key"].as_str() {
            let seq = r["seq"].as_u64().unwrap();
            assert!(
                keys.insert(k.to_owned(), seq).is_none(),
                "key {k} appended twice"
            );
        }
    }
    for a in acks {
        assert_eq!(
            hash_at(a.seq),
            a.hash,
            "acknowledged seq {} differs in the log",
            a.seq
        );
        assert_eq!(
            keys.get(&a.key),
            Some(&a.seq),
            "acknowledged key {} is not at its seq",
            a.key
        );
    }
    for (seq, hash, node) in seen {
        assert_eq!(
            &hash_at(*seq),
            hash,
            "node {node} handed out another record at seq {seq}"
        );
    }
    eprintln!(
        "{} records, {} acknowledged writes, {} reads of records agree",
        log.len(),
        acks.len(),
        seen.len()
    );
}
