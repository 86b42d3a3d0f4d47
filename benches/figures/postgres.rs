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

/// A PostgreSQL cluster in a directory of its own, stopped on drop.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install -y postgresql) or PG_BIN")
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> String {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Process::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Process::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    pub fn start(dir: &Path) -> Cluster {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("cluster dir");
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to `postgres`.
            let ok = Process::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status();
            assert!(
                ok.map(|s| s.success()).unwrap_or(false),
                "chown the cluster dir to postgres"
            );
        }
        let c = Cluster {
            bin: pg_bin(),
            dir: dir.to_path_buf(),
            port: 25_000 + (std::process::id() % 20_000) as u16,
            as_postgres,
        };
        let data = c.dir.join("data");
        let data = data.to_str().expect("utf-8 path");
        c.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c synchronous_commit=on -c fsync=on -c shared_buffers=256MB -c max_connections=200",
            c.port,
            c.dir.display()
        );
        let log = c.dir.join("server.log");
        c.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        c.psql(
            "CREATE TABLE events (global_position bigserial PRIMARY KEY, stream_id text NOT NULL, \
             version bigint NOT NULL, kind text NOT NULL, producer text NOT NULL, \
             recorded_at timestamptz NOT NULL DEFAULT now(), payload bytea NOT NULL, \
             UNIQUE (stream_id, version))",
        );
        c
    }

    /// A libpq connection string for parley (the socket in the cluster's dir).
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        )
    }

    fn conn_args(&self) -> Vec<String> {
        let dir = self.dir.display().to_string();
        vec![
            "-h".into(),
            dir,
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    pub fn psql(&self, sql: &str) -> String {
        let mut args = self.conn_args();
        args.extend([
            "-X".into(),
            "-q".into(),
            "-t".into(),
            "-c".into(),
            sql.into(),
            "postgres".into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("psql", &refs)
    }

    /// Runs `script` with `clients` for `secs`; transactions per second.
    pub fn pgbench(&self, script: &Path, clients: u32, secs: u32, round: u32) -> f64 {
        let mut args = self.conn_args();
        for a in [
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-D",
            "n=0",
            "-D",
        ] {
            args.push(a.to_owned());
        }
        args.push(format!("round={round}"));
        args.extend(["-f".into(), script.display().to_string(), "postgres".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("pgbench", &refs);
        let tps = out
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        tps.unwrap_or_else(|| panic!("no tps in pgbench's output:\n{out}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or("."),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
            );
        });
    }
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
    let cluster = Cluster::start(&dir.join("pg"));
    let (record, text) = crate::append::sample();
    let hex: String = record
        .canonical_bytes()
        .expect("encode")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (one, batch) = scripts(&cluster.dir, &hex);
    if cluster.as_postgres {
        let _ = Process::new("chmod")
            .args(["a+r"])
            .arg(&one)
            .arg(&batch)
            .status();
    }
    let (mut p, mut g) = (Vec::new(), Vec::new());
    let batches = 1000;
    for r in 0..rounds {
        g.push(cluster.pgbench(&batch, 1, secs, r) * 256.0);
        let d = crate::append::ledger_round(dir, &text, 256, batches);
        p.push((256 * batches) as f64 / d.as_secs_f64());
    }
    let batched = (Rounds::new(p), Rounds::new(g));
    let mut concurrent = Vec::new();
    for clients in [16u32, 64] {
        let (mut p, mut g) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            g.push(cluster.pgbench(&one, clients, secs, 100 * clients + r));
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
    let engine = crate::pg_engine::figure(dir, &cluster.url(), rounds, secs);
    Postgres {
        engine,
        batched,
        concurrent,
    }
}
