//! `tools/soak --minutes N`: `parley serve` (release build, another process)
//! on loopback under a steady mixed load for N minutes: intentions from two
//! agents paced open-loop at `PARLEY_SOAK_RATE` per second (default 5,000),
//! SSE streams following every record, the console's reads (state,
//! escalations, records, metrics) and MCP tool calls over one session. Each
//! minute it prints the requests and errors, the intentions' p99 latency
//! (from each one's scheduled time), the server's resident memory, open file
//! descriptors and the data directory's growth. It fails on any error, and
//! when RSS or the fd count grows more than 10 % after minute 2.

// A load generator is timed by the wall clock.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// Connections the intentions are spread over.
const INTENT_CONNS: u64 = 64;
/// SSE followers: the console's (every record) and three agents' (a
/// filter each: decisions, one sku, one producer).
const STREAMS: [&str; 4] = [
    "/v1/stream",
    "/v1/stream?kind=decision",
    "/v1/stream?entity=sku:S7",
    "/v1/stream?producer=marketing",
];
/// Console reads and MCP calls per second.
const READS_PER_S: u64 = 20;
const MCP_PER_S: u64 = 5;
const SKUS: u64 = 1_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parley_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/parley")
}

fn parley(args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = Process::new(parley_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start parley (cargo build --release)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("parley ran");
    assert!(out.status.success(), "parley {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// What every task counts, per minute.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    stream_events: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().expect("tally");
        if first.is_none() {
            *first = Some(what);
        }
    }
}

fn setup_lines() -> String {
    let mut lines = Vec::new();
    for (agent, priority) in [("pricing", 50), ("marketing", 40), ("merchandising", 30)] {
        lines.push(format!(
            r#"{{"producer":"ops","kind":"agent_registered","profile":{{"agent":"{agent}","domain":"{agent}","priority":{priority}}}}}"#
        ));
    }
    lines.push(r#"{"producer":"ops","kind":"human_registered","human":"maya"}"#.into());
    for s in 0..SKUS {
        lines.push(format!(
            r#"{{"producer":"merchandising","kind":"catalog","sku":"S{s}","category":"c{}","cost_minor":2000,"price_minor":4999,"stock":100,"lifecycle":"active"}}"#,
            s % 20
        ));
    }
    lines.join("\n") + "\n"
}

/// One intention in twenty is a promotion: a store launches far fewer
/// promotions than it changes prices, and each one stays in the context until
/// it ends. Promotions run for `PROMOTION_MS` from the moment they are sent,
/// so the live ones level off (at 5,000/s: 250 a second, ~15,000 live); an
/// earlier version launched 1,250 a second ending in the year 2100, which
/// grew the store without bound, and that is what it measured.
const PROMOTION_EVERY: u64 = 20;
const PROMOTION_MS: u64 = 60_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn intent(i: u64) -> (Bytes, bool) {
    let s = (i * 7919) % SKUS;
    let pricing = i % PROMOTION_EVERY != 0;
    let body = if pricing {
        format!(
            r#"{{"producer":"pricing","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"soak","impact":{{"revenue_minor":{},"margin_minor":1}},"objective":"margin-protection"}}}}"#,
            3000 + i % 2000,
            (i % 900) * 100
        )
    } else {
        let start = now_ms();
        format!(
            r#"{{"producer":"marketing","kind":"intend","intention":{{"action":{{"type":"launch_promotion","target":{{"skus":["S{s}"]}},"discount_bp":{},"starts_at_ms":{start},"ends_at_ms":{}}},"reasoning":"soak","impact":{{"revenue_minor":1000,"margin_minor":-100}},"objective":"sales-growth"}}}}"#,
            500 + i % 1000,
            start + PROMOTION_MS
        )
    };
    (Bytes::from(body), pricing)
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// One request; the body when the answer is a success.
async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(hyper::HeaderMap, Bytes), String> {
    let what = format!("{} {}", req.method(), req.uri());
    send.ready().await.map_err(|e| format!("{what}: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .to_bytes();
    if !parts.status.is_success() {
        return Err(format!(
            "{what}: {}: {}",
            parts.status,
            String::from_utf8_lossy(&bytes)
        ));
    }
    Ok((parts.headers, bytes))
}

fn request(
    addr: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Bytes,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(body))
        .expect("request")
}

struct Load {
    addr: String,
    tokens: [String; 3],
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
}

/// Intentions paced open-loop at `per_s`, latency from each one's slot.
async fn intentions(load: Arc<Load>, per_s: u64, start: tokio::time::Instant) {
    let interval = Duration::from_secs_f64(1.0 / per_s as f64);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..INTENT_CONNS {
        let (load, next) = (load.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&load.addr).await;
            while !load.stop.load(Ordering::Relaxed) {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let due = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
                tokio::time::sleep_until(due).await;
                let (body, pricing) = intent(k);
                let token = &load.tokens[usize::from(!pricing)];
                let result = match &mut send {
                    Ok(s) => {
                        call(
                            s,
                            request(&load.addr, Method::POST, "/v1/commands", token, body),
                        )
                        .await
                    }
                    Err(e) => Err(e.clone()),
                };
                load.tally.requests.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(_) => {
                        let us = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                        load.tally.latencies_us.lock().expect("tally").push(us);
                    }
                    Err(e) => {
                        load.tally.error(e);
                        send = connect(&load.addr).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// An SSE follower of `path` from the head on; counts events until stopped.
async fn follow(load: Arc<Load>, path: &'static str) {
    let mut send = match connect(&load.addr).await {
        Ok(s) => s,
        Err(e) => return load.tally.error(e),
    };
    let req = request(&load.addr, Method::GET, path, &load.tokens[2], Bytes::new());
    let resp = match send.send_request(req).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return load.tally.error(format!("stream: {}", r.status())),
        Err(e) => return load.tally.error(format!("stream: {e}")),
    };
    let mut body = resp.into_body();
    while !load.stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_secs(1), body.frame()).await {
            Err(_) => continue,
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let events = data
                        .windows(6)
                        .filter(|w| w == b"\nid: " || *w == b"\nid:\x20")
                        .count();
                    let events = events.max(usize::from(data.starts_with(b"id:")));
                    load.tally
                        .stream_events
                        .fetch_add(events as u64, Ordering::Relaxed);
                }
            }
            Ok(other) => {
                return load.tally.error(format!(
                    "the stream ended early: {:?}",
                    other.map(|r| r.map(|_| ()))
                ));
            }
        }
    }
}

/// The console's reads, round-robin, at `READS_PER_S`.
async fn console(load: Arc<Load>) {
    let paths = [
        "/v1/state",
        "/v1/escalations",
        "/v1/records?limit=50",
        "/metrics",
        "/v1/entities/sku:S7",
    ];
    let mut send = connect(&load.addr).await;
    let mut tick = tokio::time::interval(Duration::from_millis(1_000 / READS_PER_S));
    let mut i = 0;
    while !load.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let path = paths[i % paths.len()];
        i += 1;
        let req = request(&load.addr, Method::GET, path, &load.tokens[2], Bytes::new());
        let result = match &mut send {
            Ok(s) => call(s, req).await,
            Err(e) => Err(e.clone()),
        };
        load.tally.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            load.tally.error(e);
            send = connect(&load.addr).await;
        }
    }
}

/// One MCP session (initialize, initialized), then `get_entity` calls.
async fn mcp(load: Arc<Load>) {
    let mut send = match connect(&load.addr).await {
        Ok(s) => s,
        Err(e) => return load.tally.error(e),
    };
    let token = &load.tokens[0];
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"soak","version":"1"}}}"#;
    let session = match call(
        &mut send,
        request(&load.addr, Method::POST, "/mcp", token, Bytes::from(init)),
    )
    .await
    {
        Ok((h, _)) => h
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        Err(e) => return load.tally.error(format!("mcp initialize: {e}")),
    };
    let Some(session) = session else {
        return load.tally.error("mcp: no session id".into());
    };
    let with_session = |body: String| {
        let mut r = request(&load.addr, Method::POST, "/mcp", token, Bytes::from(body));
        let h = r.headers_mut();
        h.insert("mcp-session-id", session.parse().expect("header"));
        h.insert(
            "mcp-protocol-version",
            "2025-06-18".parse().expect("header"),
        );
        r
    };
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned();
    if let Err(e) = call(&mut send, with_session(note)).await {
        return load.tally.error(format!("mcp initialized: {e}"));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(1_000 / MCP_PER_S));
    let mut id = 2u64;
    while !load.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        id += 1;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"get_entity","arguments":{{"entity":"sku:S{}"}}}}}}"#,
            id % SKUS
        );
        load.tally.requests.fetch_add(1, Ordering::Relaxed);
        match call(&mut send, with_session(body)).await {
            Ok((_, b))
                if b.windows(8).any(|w| w == b"\"result\"")
                    && !b.windows(15).any(|w| w == b"\"isError\":true") => {}
            Ok((_, b)) => load
                .tally
                .error(format!("mcp tools/call: {}", String::from_utf8_lossy(&b))),
            Err(e) => return load.tally.error(format!("mcp tools/call: {e}")),
        }
    }
}

/// The server's resident memory (KiB) and open file descriptors.
/// The server's resident memory (KiB), the anonymous part of it (heap and
/// stacks, KiB: the rest is file pages and shared memory), its threads and
/// its open file descriptors.
struct ProcessStats {
    rss_kib: u64,
    anon_kib: u64,
    threads: u64,
    fds: u64,
}

fn process_stats(pid: u32) -> ProcessStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    ProcessStats {
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        threads: field("Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
    }
}

/// The server's heap in use and heap free but held, in bytes, from its
/// `/metrics` (glibc's allocator statistics; 0 when not reported).
fn heap_bytes(addr: &str, token: &str) -> (u64, u64) {
    use std::io::{Read as _, Write as _};
    let read = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    };
    let text = read().unwrap_or_default();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        gauge("parley_heap_in_use_bytes"),
        gauge("parley_heap_free_bytes"),
    )
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.blocks() * 512
            }),
        })
        .sum()
}

fn p99(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn main() {
    let minutes = env_u64("PARLEY_SOAK_MINUTES", 10);
    let rate = env_u64("PARLEY_SOAK_RATE", 5_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak-data");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("utf-8 path");
    parley(&["run", "--data", d, "--admin", "ops", "-"], &setup_lines());
    let token = |name: &str, role: &str| {
        parley(
            &[
                "token", "create", "--data", d, "--name", name, "--role", role,
            ],
            "",
        )
        .trim()
        .lines()
        .last()
        .expect("a token")
        .to_owned()
    };
    let tokens = [
        token("pricing", "agent"),
        token("marketing", "agent"),
        token("ops", "admin"),
    ];
    let port = 18_000 + (std::process::id() % 20_000) as u16;
    let addr = format!("127.0.0.1:{port}");
    // `PARLEY_SOAK_WRAP="heaptrack -o FILE"` runs the server under a
    // profiler (the table's memory columns are then the wrapper's).
    let wrap = std::env::var("PARLEY_SOAK_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut server = match wrap.next() {
        Some(program) => {
            let mut p = Process::new(program);
            p.args(wrap).arg(parley_bin());
            p
        }
        None => Process::new(parley_bin()),
    };
    let server = Server(
        server
            .args([
                "serve",
                "--data",
                d,
                "--listen",
                &addr,
                "--writes-per-s",
                "10000000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parley serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "parley serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.0.id();
    let load = Arc::new(Load {
        addr,
        tokens,
        tally: Arc::new(Tally::default()),
        stop: Arc::new(AtomicBool::new(false)),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::new();
    handles.push(rt.spawn(intentions(load.clone(), rate, start)));
    for path in STREAMS {
        handles.push(rt.spawn(follow(load.clone(), path)));
    }
    handles.push(rt.spawn(console(load.clone())));
    handles.push(rt.spawn(mcp(load.clone())));
    println!(
        "soak: {minutes} min, intentions offered at {rate}/s over {INTENT_CONNS} connections, {} SSE streams (every record, decisions, one sku, one producer), {READS_PER_S} console reads/s, {MCP_PER_S} MCP calls/s",
        STREAMS.len()
    );
    println!(
        "{:>6} {:>10} {:>9} {:>7} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5} {:>12}",
        "minute",
        "requests",
        "intents/s",
        "errors",
        "intent p99",
        "stream ev",
        "RSS MiB",
        "anon MiB",
        "heap MiB",
        "free MiB",
        "threads",
        "fds",
        "disk MiB/min"
    );
    let (mut last_disk, mut rows) = (dir_bytes(&dir), Vec::new());
    let (mut last_req, mut last_err, mut last_ev) = (0, 0, 0);
    let began = Instant::now();
    for minute in 1..=minutes {
        let until = began + Duration::from_secs(60 * minute);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
        let t = &load.tally;
        let mut lat = std::mem::take(&mut *t.latencies_us.lock().expect("tally"));
        let intents = lat.len() as u64;
        let (req, err, ev) = (
            t.requests.load(Ordering::Relaxed),
            t.errors.load(Ordering::Relaxed),
            t.stream_events.load(Ordering::Relaxed),
        );
        let ProcessStats {
            rss_kib,
            anon_kib,
            threads,
            fds,
        } = process_stats(pid);
        let (heap, free) = heap_bytes(&load.addr, &load.tokens[2]);
        let disk = dir_bytes(&dir);
        println!(
            "{minute:>6} {:>10} {:>9} {:>7} {:>9.1} ms {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {threads:>7} {fds:>5} {:>12.1}",
            req - last_req,
            intents / 60,
            err - last_err,
            p99(&mut lat) as f64 / 1000.0,
            ev - last_ev,
            rss_kib as f64 / 1024.0,
            anon_kib as f64 / 1024.0,
            heap as f64 / f64::from(1 << 20),
            free as f64 / f64::from(1 << 20),
            disk.saturating_sub(last_disk) as f64 / (1 << 20) as f64
        );
        rows.push((rss_kib, fds));
        (last_req, last_err, last_ev, last_disk) = (req, err, ev, disk);
    }
    load.stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    });
    drop(server);
    let errors = load.tally.errors.load(Ordering::Relaxed);
    let growth = |pick: fn(&(u64, u64)) -> u64| -> f64 {
        let base = rows.get(1).map_or(0, pick).max(1) as f64;
        let last = rows.last().map_or(0, pick) as f64;
        (last / base - 1.0) * 100.0
    };
    let (rss_growth, fd_growth) = (growth(|r| r.0), growth(|r| r.1));
    println!(
        "errors: {errors}; after minute 2: RSS {rss_growth:+.1} %, fds {fd_growth:+.1} % (goal: 0 errors, each < 10 %)"
    );
    if let Some(e) = load.tally.first_error.lock().expect("tally").as_ref() {
        println!("first error: {e}");
    }
    let ok = errors == 0 && (minutes < 3 || (rss_growth < 10.0 && fd_growth < 10.0));
    std::process::exit(if ok { 0 } else { 1 });
}
