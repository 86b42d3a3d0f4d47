//! Figure 3: `parley serve` on loopback, driven from this process (the server
//! is another process): intentions/s at saturation with keep-alive
//! connections, `/healthz` in the same rounds as the baseline, then latency
//! open-loop at half the saturated rate.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::stats::{percentile, Rounds};
use crate::store::setup;

pub struct Http {
    pub intents_per_s: Rounds,
    pub healthz_per_s: Rounds,
    /// Signed Shopify product deliveries acknowledged per second.
    pub webhooks_per_s: Rounds,
    pub p50_us: u64,
    pub p99_us: u64,
    pub offered_per_s: f64,
}

/// The parley binary next to this bench's build (`cargo build --release`).
pub fn parley_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PARLEY_BIN") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/parley")
}

pub fn parley(args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = Process::new(parley_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (run `cargo build --release`)",
                parley_bin().display()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "parley {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn body(i: u64, agent: &str) -> Bytes {
    let s = (i * 7919) % 1000;
    Bytes::from(format!(
        r#"{{"producer":"{agent}","kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":{},"margin_minor":1}},"objective":"margin-protection"}}}}"#,
        3000 + i % 2000,
        (i % 900) * 100
    ))
}

/// The shared secret of the bench's webhook deliveries.
const SECRET: &str = "bench-secret";

/// The i-th signed delivery: a newer version of product `i % 1000`
/// (sku `S{i % 1000}`), each with its own delivery id.
fn delivery(i: u64, secret: &parley::integration::signature::Secret) -> (Bytes, String) {
    let s = i % 1000;
    let at = 1_764_147_600 + i;
    let body = format!(
        r#"{{"id":{s},"product_type":"c{}","status":"active","updated_at":"{}","variants":[{{"sku":"S{s}","price":"{}.{:02}","inventory_item_id":{},"inventory_quantity":{}}}]}}"#,
        s % 20,
        rfc3339(at),
        40 + i % 50,
        i % 100,
        100_000 + s,
        i % 500
    );
    let sig = secret.sign(body.as_bytes());
    (Bytes::from(body), sig)
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).expect("a time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

async fn deliver(
    send: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    i: u64,
    secret: &parley::integration::signature::Secret,
) {
    let (body, sig) = delivery(i, secret);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/webhooks/shopify")
        .header("host", addr)
        .header("content-type", "application/json")
        .header("x-shopify-topic", "products/update")
        .header("x-shopify-webhook-id", format!("bench-{i}"))
        .header("x-shopify-hmac-sha256", sig)
        .body(Full::new(body))
        .expect("request");
    send_checked(send, req, "webhook").await;
}

/// Sends `req` on `send`; the answer must be a success.
async fn send_checked(send: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>, what: &str) {
    send.ready().await.expect("connection ready");
    let resp = send.send_request(req).await.expect("answer");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "{what}: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
}

/// Closed loop of signed deliveries: `conns` connections for `secs`;
/// deliveries acknowledged per second. `first` numbers them past earlier rounds.
async fn saturate_webhooks(addr: &str, conns: u64, secs: f64, first: u64) -> (f64, u64) {
    let secret = Arc::new(parley::integration::signature::Secret::new(SECRET).expect("a secret"));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (addr, count, secret) = (addr.to_owned(), count.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&addr).await;
            let mut i = first + c;
            while Instant::now() < stop {
                deliver(&mut send, &addr, i, &secret).await;
                count.fetch_add(1, Ordering::Relaxed);
                i += conns;
            }
            i
        }));
    }
    let start = Instant::now();
    let mut last = first;
    for t in tasks {
        last = last.max(t.await.expect("load task"));
    }
    (
        count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        last + 1,
    )
}

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

async fn request(
    send: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    token: &str,
    body: Option<Bytes>,
) {
    let (method, path) = match body {
        Some(_) => (Method::POST, "/v1/commands"),
        None => (Method::GET, "/healthz"),
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(body.unwrap_or_default()))
        .expect("request");
    send_checked(send, req, path).await;
}

/// Closed loop: `conns` connections for `secs`; requests per second.
async fn saturate(addr: &str, token: &str, conns: u64, secs: f64, intents: bool) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (addr, token, count) = (addr.to_owned(), token.to_owned(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&addr).await;
            let mut i = c;
            while Instant::now() < stop {
                let b = intents.then(|| body(i, "pricing"));
                request(&mut send, &addr, &token, b).await;
                count.fetch_add(1, Ordering::Relaxed);
                i += conns;
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.expect("load task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Open loop at `per_s` for `secs`: latency from each request's scheduled time.
async fn paced(addr: &str, token: &str, per_s: f64, secs: f64) -> Vec<u64> {
    let n = (per_s * secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / per_s);
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for _ in 0..128 {
        let (addr, token, next) = (addr.to_owned(), token.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&addr).await;
            let mut lat = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return lat;
                }
                let due = start + interval * k as u32;
                tokio::time::sleep_until(due).await;
                request(&mut send, &addr, &token, Some(body(k, "pricing"))).await;
                lat.push(due.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("paced task"));
    }
    all
}

pub fn figure(dir: &Path, rounds: usize, secs: f64) -> Http {
    let _ = std::fs::remove_dir_all(dir);
    let d = dir.to_str().expect("utf-8 path");
    // A wall-clock ledger, as a server runs: the set-up commands carry no time.
    let at = format!(r#""at_ms":{},"#, crate::store::T0_MS);
    let mut lines: Vec<String> = setup(1000).iter().map(|l| l.replace(&at, "")).collect();
    lines.push(r#"{"producer":"ops","kind":"agent_registered","profile":{"agent":"store-sync","domain":"integration","priority":5}}"#.into());
    parley(
        &["run", "--data", d, "--admin", "ops", "-"],
        &(lines.join("\n") + "\n"),
    );
    let token = parley(
        &[
            "token", "create", "--data", d, "--name", "pricing", "--role", "agent",
        ],
        "",
    );
    let token = token.trim().to_owned();
    let secret_file = dir.join("webhook-secret");
    std::fs::write(&secret_file, SECRET).expect("write the webhook secret");
    let port = 17_000 + (std::process::id() % 20_000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let server = Server(
        Process::new(parley_bin())
            .args([
                "serve",
                "--data",
                d,
                "--listen",
                &addr,
                "--writes-per-s",
                "10000000",
                "--webhooks-as",
                "store-sync",
                "--shopify-secret-file",
                secret_file.to_str().expect("utf-8 path"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parley serve"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "parley serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut intents, mut health, mut hooks) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(saturate(&addr, &token, 8, 0.5, true)); // warm-up
    let mut next = rt.block_on(saturate_webhooks(&addr, 8, 0.5, 0)).1;
    for _ in 0..rounds {
        intents.push(rt.block_on(saturate(&addr, &token, 32, secs, true)));
        health.push(rt.block_on(saturate(&addr, &token, 32, secs, false)));
        let (per_s, after) = rt.block_on(saturate_webhooks(&addr, 32, secs, next));
        hooks.push(per_s);
        next = after;
    }
    let intents = Rounds::new(intents);
    let offered = intents.median() / 2.0;
    let mut lat = rt.block_on(paced(&addr, &token, offered, secs * 2.0));
    drop(server);
    Http {
        p50_us: percentile(&mut lat, 0.5),
        p99_us: percentile(&mut lat, 0.99),
        intents_per_s: intents,
        healthz_per_s: Rounds::new(health),
        webhooks_per_s: Rounds::new(hooks),
        offered_per_s: offered,
    }
}
