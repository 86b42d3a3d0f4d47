//! A node that takes over a ledger in PostgreSQL continues its time-driven
//! work as a restarted writer would: a deferral made under the old writer is
//! re-decided by the new one's clock record when its time has come, replay
//! reaches the same decisions from the log alone, and the node's entity
//! index agrees with a scan of the log for every entity.
//! `cargo test --test pg_takeover -- --ignored` (needs PostgreSQL's server).

// The wait for the new writer is a liveness bound on the wall clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::Cluster;
use common::TestClock;
use parley::entity::EntityRef;
use parley::ledger::cluster::Joining;
use parley::ledger::{Ledger, Options};
use parley::log::postgres::{PgOptions, PgStore};
use parley::reader::LedgerRead;
use parley::record::Body;
use parley::replay::Replayer;

const T0: u64 = 1_764_147_600_000;

/// A node of ledger `shop` on `store` whose clock reads `at_ms`.
fn node(store: &PgStore, at_ms: u64) -> Ledger {
    let opts = Options {
        first_admin: "ops".into(),
        clock: Arc::new(TestClock(AtomicU64::new(at_ms))),
        genesis_at_ms: Some(T0),
        serve: true,
        ..Options::default()
    };
    let pg = PgOptions {
        lease_ms: 1000,
        ..PgOptions::new("shop")
    };
    Ledger::cluster(store, pg, &Joining::default(), opts).unwrap()
}

fn wait_writing(ledger: &Ledger) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ledger.membership().unwrap().writing() {
        assert!(Instant::now() < deadline, "the node never took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_deferral_made_under_one_writer_is_re_decided_by_the_next_when_due() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    let first = node(&store, T0);
    wait_writing(&first);
    let ack = common::defer_a_price(&first, T0);
    let head = first.head().unwrap().seq;
    first.close().unwrap();

    // The next writer's clock is past the promotion's end: it re-decides.
    let next = node(&store, T0 + 60_001);
    wait_writing(&next);
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.head().unwrap().seq < head + 2 {
        assert!(
            Instant::now() < deadline,
            "the new writer appended no clock record"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut tail = Vec::new();
    next.scan(head + 1, head + 2, &mut |r| {
        tail.push(r);
        Ok(())
    })
    .unwrap();
    assert!(
        matches!(tail[0].record.body, Body::Clock),
        "{:?}",
        tail[0].record.body
    );
    let Body::Decision { decision } = &tail[1].record.body else {
        panic!("{:?}", tail[1].record.body)
    };
    assert_eq!(
        (decision.intention, decision.outcome.name()),
        (ack.seq, "approved")
    );
    let mut replay = Replayer::default();
    // Every entity the log names, with the seqs naming it, from a scan.
    let mut named: BTreeMap<String, (EntityRef, Vec<u64>)> = BTreeMap::new();
    next.scan(1, u64::MAX, &mut |r| {
        for e in r.record.index_entities() {
            let entry = named.entry(e.to_string()).or_insert((e, Vec::new()));
            entry.1.push(r.record.envelope.seq);
        }
        replay.feed(&r).unwrap();
        Ok(())
    })
    .unwrap();
    replay.finish().unwrap();
    // The node's entity index (PostgreSQL has no index files) says the same.
    assert!(named.len() > 5, "{named:?}");
    for (text, (entity, seqs)) in &named {
        let mut scanned = seqs.clone();
        scanned.dedup();
        assert_eq!(&next.entity_seqs(entity).unwrap(), &scanned, "{text}");
    }
    next.close().unwrap();
}
