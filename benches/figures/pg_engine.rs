//! Figure 9: the PostgreSQL log engine, on the same scratch cluster as
//! figure 8. Durable appends through the ledger on PostgreSQL at batches of
//! 1, 16 and 256, each beside the segment engine at the same batch size in
//! the same round; decision latency on PostgreSQL beside the segment
//! engine's; and failover: two `parley serve` nodes on one ledger, the
//! writer killed, the time until a write sent to the other node after the
//! kill is acknowledged.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use parley::ledger::{Ledger, Options};
use parley::log::postgres::{PgLog, PgOptions, PgStore, LEASE_MS_DEFAULT};

use crate::stats::Rounds;
use crate::store::Pipeline;

pub struct PgEngine {
    /// (batch, segment engine rec/s, PostgreSQL engine rec/s).
    pub append: Vec<(usize, Rounds, Rounds)>,
    /// The same rows as the ledger's at batch 256 (its own frames and
    /// hashes, read back), sent by a client in one `INSERT … unnest`
    /// statement per 256 rows: rows/s, rounds interleaved with batch 256.
    pub client_rows_per_s: Rounds,
    /// CPU cores this process used during the batch-256 rounds (CPU seconds
    /// over wall seconds): the share of the machine parley took from the
    /// PostgreSQL server it shares the machine with.
    pub cpu_cores_batch256: Rounds,
    /// Decision p99 in µs: (segment engine, PostgreSQL engine), same load.
    pub decision_p99_us: (u64, u64),
    /// The load of the decision figure, intentions per second.
    pub decision_per_s: u64,
    /// Seconds from SIGKILL of the writer to the first acknowledged write on
    /// the new one, one per round.
    pub failover_s: Rounds,
    pub lease_ms: u64,
}

fn open_pg(store: &PgStore, ledger: &str, opts: Options) -> Ledger {
    let engine = PgLog::open(store, PgOptions::new(ledger)).expect("open the ledger on PostgreSQL");
    Ledger::with_engine(Box::new(engine), opts).expect("start the ledger")
}

/// CPU seconds this process has used (user + system).
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct it is handed.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The baseline "the same rows, written yourself": the first 256 rows of
/// `ledger` (frames and hashes as parley stored them) inserted `batches`
/// times into a table of the same shape, one `INSERT … unnest` per 256 rows
/// with distinct seqs, from one connection, `synchronous_commit = on`;
/// rows per second.
fn client_rows_round(url: &str, ledger: &str, batches: usize) -> f64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    c.batch_execute(
        "SET synchronous_commit = on;
         CREATE TABLE IF NOT EXISTS bench_rows (ledger text NOT NULL, seq bigint NOT NULL,
             hash bytea NOT NULL, frame bytea NOT NULL, PRIMARY KEY (ledger, seq))",
    )
    .expect("the baseline's table");
    let rows = c
        .query(
            "SELECT hash, frame FROM parley_record WHERE ledger = $1 ORDER BY seq LIMIT 256",
            &[&ledger],
        )
        .expect("the ledger's rows");
    assert_eq!(rows.len(), 256, "{ledger} holds 256 rows");
    let hashes: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    let frames: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
    let insert = c
        .prepare(
            "INSERT INTO bench_rows (ledger, seq, hash, frame) SELECT $1, t.seq, t.hash, t.frame \
             FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS t(seq, hash, frame)",
        )
        .expect("prepare");
    let start = Instant::now();
    for b in 0..batches as i64 {
        let seqs: Vec<i64> = (1..=256).map(|i| b * 256 + i).collect();
        let n = c
            .execute(&insert, &[&ledger, &seqs, &hashes, &frames])
            .expect("insert");
        assert_eq!(n, 256, "every row inserted");
    }
    (256 * batches) as f64 / start.elapsed().as_secs_f64()
}

/// One producer keeps the queue full; (records per second until the last
/// acknowledgement, CPU cores this process used meanwhile).
fn pg_round(store: &PgStore, ledger: &str, text: &str, batch: usize, batches: usize) -> (f64, f64) {
    let opts = Options {
        max_batch: batch,
        queue_capacity: batch * 8,
        ..Options::default()
    };
    let led = open_pg(store, ledger, opts);
    let base = led.head().map_or(0, |h| h.seq);
    let n = (batch * batches) as u64;
    let (start, cpu) = (Instant::now(), cpu_s());
    let mut pipe = Pipeline::new(&led, batch * 8);
    for i in 0..n {
        pipe.submit(crate::append::command("pricing", i, text));
    }
    pipe.drain();
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), cpu_s() - cpu);
    assert_eq!(
        led.head().map(|h| h.seq),
        Some(base + n),
        "every command appended once"
    );
    led.close().expect("close");
    (n as f64 / elapsed, cpu / elapsed)
}

/// Batches per round for `batch`: about the same time per round.
fn batches_for(batch: usize) -> usize {
    match batch {
        1 => 2000,
        16 => 400,
        _ => 100,
    }
}

pub fn figure(dir: &Path, url: &str, rounds: u32, secs: u32) -> PgEngine {
    let store = PgStore::parse(url).expect("the bench cluster's address");
    let (_, text) = crate::append::sample();
    let (mut append, mut client_rows, mut cores) = (Vec::new(), Vec::new(), Vec::new());
    for batch in [1usize, 16, 256] {
        let (mut seg, mut pg) = (Vec::new(), Vec::new());
        let batches = batches_for(batch);
        let n = (batch * batches) as f64;
        for r in 0..rounds {
            seg.push(n / crate::append::ledger_round(dir, &text, batch, batches).as_secs_f64());
            let ledger = format!("append-{batch}-{r}");
            let (per_s, cpu) = pg_round(&store, &ledger, &text, batch, batches);
            pg.push(per_s);
            if batch == 256 {
                cores.push(cpu);
                client_rows.push(client_rows_round(url, &ledger, batches));
            }
        }
        append.push((batch, Rounds::new(seg), Rounds::new(pg)));
    }
    let per_s = 1000;
    let (warm, measure) = (Duration::from_secs(1), Duration::from_secs(u64::from(secs)));
    let seg = crate::latency::figure(&dir.join("pg-latency-segment"), per_s, warm, measure);
    let led = open_pg(&store, "latency", crate::store::options());
    let pg = crate::latency::measure(led, per_s, warm, measure);
    let lease_ms = LEASE_MS_DEFAULT;
    let failover_s = Rounds::new(
        (0..5)
            .map(|r| failover_round(url, &format!("failover-{r}"), lease_ms))
            .collect(),
    );
    PgEngine {
        append,
        client_rows_per_s: Rounds::new(client_rows),
        cpu_cores_batch256: Rounds::new(cores),
        decision_p99_us: (seg.p99_us, pg.p99_us),
        decision_per_s: per_s,
        failover_s,
        lease_ms,
    }
}

/// A `parley serve` node of `ledger`; its address.
fn node(url: &str, ledger: &str, lease_ms: u64) -> (crate::http::Server, String) {
    let mut child: Child = Process::new(crate::http::parley_bin())
        .args([
            "serve",
            "--store",
            url,
            "--ledger",
            ledger,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--lease-ms", &lease_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start parley serve");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("piped"))
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("parley serve: listening on http://")
        .unwrap_or_else(|| panic!("parley serve did not start: {line:?}"))
        .to_owned();
    (crate::http::Server(child), addr)
}

/// (status, body) of one request; status 0 when the node did not answer.
fn request(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut text = String::new();
    if sent.is_err() || s.read_to_string(&mut text).is_err() {
        return (0, String::new());
    }
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Two nodes on a new ledger; the writer is killed; seconds until a write
/// sent to the other node after the kill is acknowledged.
fn failover_round(url: &str, ledger: &str, lease_ms: u64) -> f64 {
    let token = crate::http::parley(
        &[
            "token", "create", "--store", url, "--ledger", ledger, "--name", "admin", "--role",
            "admin",
        ],
        "",
    );
    let token = token.trim();
    let nodes = [node(url, ledger, lease_ms), node(url, ledger, lease_ms)];
    let role = |addr: &str| {
        let (status, body) = request(addr, "GET", "/v1/cluster", token, "");
        (status == 200).then(|| body.contains(r#""role":"writer""#))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let writer = loop {
        if let Some(w) = (0..2).find(|i| role(&nodes[*i].1) == Some(true)) {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "no node of {ledger} became the writer"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let [a, b] = nodes;
    let ((mut dead, _), (_alive, addr)) = if writer == 0 { (a, b) } else { (b, a) };
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(dead.0.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let _ = dead.0.wait();
    let body = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"after","domain":"pricing","priority":5}}"#;
    loop {
        let (status, text) = request(&addr, "POST", "/v1/commands", token, body);
        if status == 200 || status == 201 {
            return killed.elapsed().as_secs_f64();
        }
        assert!(
            status == 0 || status == 503,
            "the surviving node answered {status}: {text}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "{ledger}: no write after the kill in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
