//! Figure 8: PostgreSQL as a user would use it for an event store (an
//! append-only events table with a per-stream version constraint, the same
//! 256-byte records, `synchronous_commit = on`), on a local cluster started
//! here from the distribution's packages and driven by `pgbench`, against
//! parley doing the same, rounds interleaved.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley::ledger::{Ledger, Options};

use crate::stats::Rounds;

/// The shared test cluster (`tests/common/pg.rs`): a local PostgreSQL from
/// the distribution's packages in a directory of its own, stopped on drop.
#[path = "../../tests/common/pg.rs"]
mod pg;

pub use pg::Cluster;

/// The cluster figures 8 and 9 run on, with the `events` table of figure 8.
fn cluster(dir: &Path) -> Cluster {
    let c = Cluster::start(dir, &["shared_buffers=256MB"]);
    c.psql(
        "CREATE TABLE events (global_position bigserial PRIMARY KEY, stream_id text NOT NULL, \
         version bigint NOT NULL, kind text NOT NULL, producer text NOT NULL, \
         recorded_at timestamptz NOT NULL DEFAULT now(), payload bytea NOT NULL, \
         UNIQUE (stream_id, version))",
    );
    c
}

/// Runs `script` with `clients` for `secs`; transactions per second.
fn pgbench(c: &Cluster, script: &Path, clients: u32, secs: u32, round: u32) -> f64 {
    let mut args: Vec<String> = ["-n", "-c", &clients.to_string(), "-j", "2"]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    args.extend(["-T".into(), secs.to_string(), "-D".into(), "n=0".into()]);
    args.extend(["-D".into(), format!("round={round}")]);
    args.extend(["-f".into(), script.display().to_string(), "postgres".into()]);
    let out = c.tool("pgbench", &args);
    let tps = out
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    tps.unwrap_or_else(|| panic!("no tps in pgbench's output:\n{out}"))
}

/// The two pgbench scripts: one record per transaction, and 256 in one.
fn scripts(dir: &Path, payload_hex: &str) -> (PathBuf, PathBuf) {
    let one = dir.join("one.sql");
    let batch = dir.join("batch.sql");
    let insert = "INSERT INTO events (stream_id, version, kind, producer, payload)";
    std::fs::write(
        &one,
        format!(
            "\\set n :n + 1\n{insert} VALUES ('r' || :round || '-p' || :client_id, :n, 'fact', 'pricing', '\\x{payload_hex}'::bytea);\n"
        ),
    )
    .expect("script");
    std::fs::write(
        &batch,
        format!(
            "\\set n :n + 1\n{insert} SELECT 'b' || :round || '-p' || :client_id, (:n - 1) * 256 + g, 'fact', 'pricing', '\\x{payload_hex}'::bytea FROM generate_series(1, 256) g;\n"
        ),
    )
    .expect("script");
    (one, batch)
}

/// parley with `producers` threads, each appending one record and waiting
/// for it to be durable; records per second over `secs`.
fn parley_concurrent(dir: &Path, producers: usize, secs: f64, text: &str) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let (ledger, _) = Ledger::open(dir, Options::default()).expect("open");
    let ledger = Arc::new(ledger);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let (ledger, stop, count, text) =
                (ledger.clone(), stop.clone(), count.clone(), text.to_owned());
            std::thread::spawn(move || {
                let mut i = p as u64;
                while !stop.load(Ordering::Relaxed) {
                    ledger
                        .append(crate::append::command("pricing", i, &text))
                        .expect("append");
                    count.fetch_add(1, Ordering::Relaxed);
                    i += producers as u64;
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("producer");
    }
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    Arc::try_unwrap(ledger)
        .ok()
        .expect("producers done")
        .close()
        .expect("close");
    rate
}

pub struct Postgres {
    /// Figure 9, on the same cluster.
    pub engine: crate::pg_engine::PgEngine,
    /// (parley rec/s, PostgreSQL rows/s) at 256 per batch / transaction.
    pub batched: (Rounds, Rounds),
    /// (producers, parley rec/s, PostgreSQL rows/s).
    pub concurrent: Vec<(u32, Rounds, Rounds)>,
}

pub fn figure(dir: &Path, rounds: u32, secs: u32) -> Postgres {
    let cluster = cluster(&dir.join("pg"));
    let (record, text) = crate::append::sample();
    let hex: String = record
        .canonical_bytes()
        .expect("encode")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // pgbench runs as the cluster's owner: the scripts are readable by all.
    let (one, batch) = scripts(dir, &hex);
    let _ = Process::new("chmod")
        .args(["a+r"])
        .arg(&one)
        .arg(&batch)
        .status();
    let (mut p, mut g) = (Vec::new(), Vec::new());
    let batches = 1000;
    for r in 0..rounds {
        g.push(pgbench(&cluster, &batch, 1, secs, r) * 256.0);
        let d = crate::append::ledger_round(dir, &text, 256, batches);
        p.push((256 * batches) as f64 / d.as_secs_f64());
    }
    let batched = (Rounds::new(p), Rounds::new(g));
    let mut concurrent = Vec::new();
    for clients in [16u32, 64] {
        let (mut p, mut g) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            g.push(pgbench(&cluster, &one, clients, secs, 100 * clients + r));
            p.push(parley_concurrent(
                &dir.join("concurrent"),
                clients as usize,
                secs as f64,
                &text,
            ));
        }
        concurrent.push((clients, Rounds::new(p), Rounds::new(g)));
    }
    let rows = cluster.psql("SELECT count(*) FROM events");
    assert!(
        rows.trim().parse::<u64>().map(|n| n > 0).unwrap_or(false),
        "PostgreSQL stored the rows: {rows}"
    );
    let engine = crate::pg_engine::figure(dir, &cluster.socket_url("postgres"), rounds, secs);
    Postgres {
        engine,
        batched,
        concurrent,
    }
}
