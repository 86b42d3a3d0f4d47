//! PostgreSQL's own failover under parley: Patroni with etcd, a primary and
//! a synchronous standby, two `parley serve` nodes on one ledger reaching
//! them through a multi-host connection string (`target_session_attrs=
//! read-write`). Clients write through both nodes while the database's
//! primary dies (Patroni and PostgreSQL killed with SIGKILL) three times;
//! Patroni promotes the standby, parley reconnects, and the killed member
//! comes back as the new standby before the next round. Every acknowledged
//! record must be in the final log once, at its seq, with its hash.
//!
//! Run by `tools/pg-failover-test` (which installs patroni, etcd-server and
//! postgresql), as `.ci/run` does. The time until writes resumed after each
//! kill is printed; the waits are liveness bounds, not targets.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use common::load::{acked_count, check_log, client, tokens, wait_acks, wait_first_after};
use common::patroni::{HaCluster, PASSWORD};
use common::server::Server;

const LEDGER: &str = "shop";
/// Longer than the database's failover (Patroni's ttl is 10 s here), so the
/// writer rides through it on a new connection instead of being replaced.
const LEASE_MS: &str = "30000";

#[test]
#[ignore = "needs patroni, etcd-server and postgresql (tools/pg-failover-test installs them)"]
fn no_acknowledged_record_is_lost_when_the_database_primary_dies_three_times() {
    let mut ha = HaCluster::start();
    let url = ha.url();
    let place = ["--store", url.as_str(), "--ledger", LEDGER];
    let (_admin, agent) = tokens(&place);

    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-failover-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let nodes: Vec<Server> = (0..2)
        .map(|i| {
            let log = logs.join(format!("node{i}.log"));
            Server::start_node(&url, LEDGER, &["--lease-ms", LEASE_MS], &log)
        })
        .collect();
    let addrs = Arc::new(RwLock::new(nodes.iter().map(|n| n.addr.clone()).collect()));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|id| {
            let (t, a, k, s) = (agent.clone(), addrs.clone(), acks.clone(), stop.clone());
            std::thread::spawn(move || client(id, t, a, k, s))
        })
        .collect();
    let mut resumed = Vec::new();
    for round in 0..3 {
        wait_acks(&acks, acked_count(&acks), 30);
        let leader = ha.leader().expect("a member leads");
        ha.members[leader].kill();
        #[allow(clippy::disallowed_methods)] // a measurement printed, never asserted
        let killed = std::time::Instant::now();
        // The lost machine comes back only after the standby took over.
        ha.wait_promoted(leader);
        let took = wait_first_after(&acks, killed);
        eprintln!(
            "round {round}: primary {} killed; writes resumed after {took:?}",
            ha.members[leader].name
        );
        resumed.push(took);
        ha.members[leader].start(round + 1);
        ha.wait_in_sync();
    }
    wait_acks(&acks, acked_count(&acks), 30);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    for (i, n) in nodes.into_iter().enumerate() {
        let (code, _) = n.stop();
        assert_eq!(code, Some(0), "parley node {i} did not stop cleanly");
    }
    let dir = tempfile::tempdir().unwrap();
    check_log(&place, &acks.lock().unwrap(), &[], dir.path());
    for log in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(log.unwrap().path()).unwrap();
        assert!(
            !text.contains(PASSWORD),
            "a node logged the store's password"
        );
    }
    eprintln!("writes resumed after: {resumed:?}");
}
