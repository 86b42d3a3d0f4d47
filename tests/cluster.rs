//! Several `parley serve` nodes on one ledger in a real PostgreSQL (started
//! here; `.ci/run` installs it): `cargo test --test cluster -- --ignored`.
//!
//! Clients write to every node while the writer is killed (SIGKILL) five
//! times and paused (SIGSTOP) past its lease once; killed nodes come back as
//! followers. Every acknowledged record must be in the final log, once, at
//! the seq and with the hash it was acknowledged with; every record any node
//! handed out must be the final log's record at that seq; all nodes end on
//! the same head and context; the chain verifies and replay is 0 divergent.
//!
//! The waits here are liveness bounds (a stuck cluster fails instead of
//! hanging), not performance targets: the time each failover took is
//! printed, and `tools/bench` holds the target (`pg_failover_s`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::load::{
    acked_count, check_log, client, tokens, wait_acks, wait_first_after, LIVENESS_S,
};
use common::pg::Cluster;
use common::server::Server;
use serde_json::Value;

const LEASE_MS: &str = "1000";
const LEDGER: &str = "shop";

struct Nodes {
    url: String,
    dir: std::path::PathBuf,
    servers: Vec<Option<Server>>,
    addrs: Arc<RwLock<Vec<String>>>,
    starts: usize,
}

impl Nodes {
    fn start(&mut self, i: usize) {
        self.starts += 1;
        let log = self.dir.join(format!("node{i}-{}.log", self.starts));
        let s = Server::start_node(&self.url, LEDGER, &["--lease-ms", LEASE_MS], &log);
        self.addrs.write().unwrap()[i] = s.addr.clone();
        self.servers[i] = Some(s);
    }

    fn view(&self, i: usize, token: &str) -> Option<Value> {
        let s = self.servers[i].as_ref()?;
        let (status, _, body) = s.request("GET", "/v1/cluster", Some(token), "");
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// The node that says it writes, waiting for one (liveness bound).
    fn writer(&self, token: &str, not: Option<usize>) -> usize {
        for _ in 0..LIVENESS_S * 20 {
            for i in 0..self.servers.len() {
                if Some(i) != not && self.view(i, token).is_some_and(|v| v["role"] == "writer") {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no node became the writer in {LIVENESS_S} s");
    }
}

/// A reader: pages through every node's records, keeping what each said.
fn reader(
    token: String,
    addrs: Arc<RwLock<Vec<String>>>,
    seen: Arc<Mutex<Vec<(u64, String, String)>>>,
    stop: Arc<AtomicBool>,
) {
    let mut from = [1u64; 3];
    while !stop.load(Ordering::SeqCst) {
        for (i, next) in from.iter_mut().enumerate() {
            let addr = addrs.read().unwrap()[i].clone();
            let path = format!("/v1/records?from={next}&limit=500");
            let (status, _, text) =
                common::server::request_at(&addr, "GET", &path, Some(&token), "");
            if status != 200 {
                continue;
            }
            let page: Value = serde_json::from_str(&text).unwrap();
            for r in page["records"].as_array().unwrap() {
                let seq = r["seq"].as_u64().unwrap();
                seen.lock().unwrap().push((
                    seq,
                    r["hash"].as_str().unwrap().to_owned(),
                    addr.clone(),
                ));
                *next = seq + 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An SSE client that moves to the next node every `SWITCH_EVENTS` events
/// (and whenever its node goes away), resuming with `Last-Event-ID`: it must
/// see every seq once, in order.
fn streamer(
    token: String,
    addrs: Arc<RwLock<Vec<String>>>,
    got: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
) {
    use std::io::{BufRead as _, Write as _};
    const SWITCH_EVENTS: usize = 150;
    let mut node = 0;
    while !stop.load(Ordering::SeqCst) {
        node += 1;
        let addr = addrs.read().unwrap()[node % 3].clone();
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let resume = got
            .lock()
            .unwrap()
            .last()
            .map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
        let sent = write!(
            s,
            "GET /v1/stream?from=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{resume}Connection: close\r\n\r\n"
        );
        if sent.is_err() {
            continue;
        }
        let mut lines = std::io::BufReader::new(s);
        let mut taken = 0;
        let mut line = String::new();
        while taken < SWITCH_EVENTS && !stop.load(Ordering::SeqCst) {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if let Some(id) = line.trim_end().strip_prefix("id: ") {
                        got.lock().unwrap().push(id.parse().unwrap());
                        taken += 1;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    }
}

fn signal(server: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn three_nodes_survive_their_writer_killed_five_times_and_paused_once() {
    let pg = Cluster::start_scratch();
    // The server trusts loopback: the password is there to be kept secret.
    let url = pg
        .url("postgres")
        .replace("postgres@", "postgres:s3cret-pw@");
    let dir = tempfile::tempdir().unwrap();
    // The nodes' logs stay for whoever reads a failure.
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let place = ["--store", url.as_str(), "--ledger", LEDGER];
    let (admin, agent) = tokens(&place);
    let mut nodes = Nodes {
        url: url.clone(),
        dir: logs.clone(),
        servers: vec![None, None, None],
        addrs: Arc::new(RwLock::new(vec![String::new(); 3])),
        starts: 0,
    };
    for i in 0..3 {
        nodes.start(i);
    }
    let acks = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for id in 0..3 {
        let (t, a, k, s) = (
            agent.clone(),
            nodes.addrs.clone(),
            acks.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || client(id, t, a, k, s)));
    }
    let (t, a, k, s) = (
        admin.clone(),
        nodes.addrs.clone(),
        seen.clone(),
        stop.clone(),
    );
    threads.push(std::thread::spawn(move || reader(t, a, k, s)));
    let streamed = Arc::new(Mutex::new(Vec::new()));
    let (t, a, k, s) = (
        admin.clone(),
        nodes.addrs.clone(),
        streamed.clone(),
        stop.clone(),
    );
    threads.push(std::thread::spawn(move || streamer(t, a, k, s)));
    let mut failovers = Vec::new();
    for round in 0..6 {
        wait_acks(&acks, acked_count(&acks), 30);
        let w = nodes.writer(&admin, None);
        if round == 3 {
            // Paused past its lease: another node takes over and writes.
            let paused = nodes.servers[w].as_ref().unwrap();
            signal(paused, "-STOP");
            let next = nodes.writer(&admin, Some(w));
            wait_acks(&acks, acked_count(&acks), 20);
            eprintln!("round {round}: node {w} paused; node {next} writes");
            signal(paused, "-CONT");
            // Woken, it finds its lease gone and stops; it never appends.
            let mut server = nodes.servers[w].take().unwrap();
            let mut exited = None;
            for _ in 0..LIVENESS_S * 10 {
                exited = server.child.try_wait().unwrap();
                if exited.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                exited.is_some(),
                "the paused writer did not stop after waking"
            );
        } else {
            let mut server = nodes.servers[w].take().unwrap();
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            #[allow(clippy::disallowed_methods)] // a measurement printed, never asserted
            let killed = std::time::Instant::now();
            let took = wait_first_after(&acks, killed);
            eprintln!("round {round}: writer node {w} killed; writes resumed after {took:?}");
            failovers.push(took);
        }
        nodes.start(w);
    }
    wait_acks(&acks, acked_count(&acks), 30);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    check_converged(&nodes, &admin);
    let finals: Vec<_> = nodes.servers.iter_mut().map(Option::take).collect();
    for s in finals.into_iter().flatten() {
        let (code, _) = s.stop();
        assert_eq!(code, Some(0), "a node did not stop cleanly");
    }
    check_log(
        &place,
        &acks.lock().unwrap(),
        &seen.lock().unwrap(),
        dir.path(),
    );
    let streamed = streamed.lock().unwrap();
    let expected: Vec<u64> = (1..=streamed.len() as u64).collect();
    assert!(
        *streamed == expected,
        "the stream, moving between nodes, skipped or repeated a seq"
    );
    assert!(
        streamed.len() > 300,
        "the stream saw only {} records",
        streamed.len()
    );
    for log in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(log.unwrap().path()).unwrap();
        assert!(
            !text.contains("s3cret-pw"),
            "a node logged the store's password"
        );
    }
    eprintln!("failovers: {failovers:?}");
}

/// Every node ends on the same head and the same context.
fn check_converged(nodes: &Nodes, token: &str) {
    for _ in 0..LIVENESS_S * 10 {
        let views: Vec<Value> = (0..3).filter_map(|i| nodes.view(i, token)).collect();
        let same = views.len() == 3
            && views.iter().all(|v| {
                v["head_hash"] == views[0]["head_hash"]
                    && v["context_hash"] == views[0]["context_hash"]
                    && v["context_seq"] == views[0]["head_seq"]
            });
        if same {
            assert_eq!(views.iter().filter(|v| v["role"] == "writer").count(), 1);
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let views: Vec<Option<Value>> = (0..3).map(|i| nodes.view(i, token)).collect();
    panic!("the nodes did not converge on one head and context: {views:#?}");
}
