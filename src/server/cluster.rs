//! A node of a cluster on PostgreSQL: `GET /v1/cluster`, and writes sent to
//! a follower forwarded to the writer (at the ledger's own path,
//! `/v1/ledgers/{ledger}/…`, which every node serves) and answered as the
//! writer answered.
//!
//! A forwarded write that succeeded is answered once this node's own context
//! holds it (at most `CATCH_UP_WAIT`), so a client that writes through a
//! follower reads its write back from the same follower.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;

use super::problem::Problem;
use super::App;
use crate::command::COMMAND_BYTES_MAX;
use crate::reader::LedgerRead;
use crate::vocab::ProblemCode;

/// The routes that write: a follower forwards them to the writer.
const WRITE_PATHS: [&str; 5] = [
    "/v1/commands",
    "/v1/commands/batch",
    "/v1/tokens",
    "/v1/webhooks/shopify",
    "/v1/webhooks/woocommerce",
];
/// Marks a request one node forwarded to another (never forwarded twice).
const FORWARDED: &str = "parley-forwarded";
/// The largest answer taken back from the writer.
const FORWARDED_ANSWER_BYTES_MAX: usize = 64 << 20;

/// This node in its cluster.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ClusterView {
    /// `writer` or `follower`; `single` for a ledger in a data directory.
    pub role: &'static str,
    /// This node's name in the lease (empty for `single`).
    pub node: String,
    /// The writer's lease as this node last read it.
    pub writer: Option<WriterView>,
    /// The last record this node holds.
    pub head_seq: u64,
    pub head_hash: Option<String>,
    /// The seq this node's context has folded.
    pub applied_seq: u64,
    /// The hash of that context (`parley replay` prints the same for the
    /// same records): nodes at one seq must agree on it.
    pub context_seq: u64,
    pub context_hash: String,
}

/// The writer's lease.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WriterView {
    pub node: String,
    /// Where it serves ('' if it did not say).
    pub address: String,
    pub epoch: i64,
    /// Milliseconds left on its lease by the database's clock when read.
    pub lease_remaining_ms: i64,
}

/// `GET /v1/cluster`: this node's role, the writer, the lease epoch, the head.
pub async fn cluster(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<axum::Json<ClusterView>, Problem> {
    app.caller(&headers).await?;
    let (context_seq, context_hash) = app.with_context(|c| (c.seq, c.state_hash()))?;
    let head = app.ledger.head();
    let m = app.ledger.membership();
    let role = match m {
        None => "single",
        Some(m) if m.writing() => "writer",
        Some(_) => "follower",
    };
    Ok(axum::Json(ClusterView {
        role,
        node: m.map(|m| m.holder().to_owned()).unwrap_or_default(),
        writer: m.and_then(|m| m.lease()).map(|l| WriterView {
            node: l.holder,
            address: l.address,
            epoch: l.epoch,
            lease_remaining_ms: l.remaining_ms,
        }),
        head_seq: app.ledger.head_seq(),
        head_hash: head.map(|h| crate::record::to_hex(&h.hash)),
        applied_seq: app.ledger.applied_seq(),
        context_seq,
        context_hash,
    }))
}

/// Middleware: on a follower, a write goes to the writer.
pub async fn forward(
    State(app): State<App>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let follows = app.ledger.membership().is_some_and(|m| !m.writing());
    if !follows || req.method() != Method::POST || !WRITE_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return not_the_writer("a forwarded write reached a node that does not write the ledger");
    }
    let Some(m) = app.ledger.membership() else {
        return next.run(req).await;
    };
    let Some(address) = m.writer_address() else {
        return not_the_writer("no writer holds the lease now (a takeover is under way)");
    };
    // The writer's node may serve several ledgers: the ledger's own path.
    let path = super::ledgers::path_of(m.ledger(), req.uri());
    match relay(&address, &path, req).await {
        Ok((status, headers, body)) => {
            if status.is_success() {
                settle(&app, &body).await;
            }
            let mut res = (status, body).into_response();
            for (name, value) in &headers {
                if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING
                {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
            }
            res
        }
        Err(reason) => not_the_writer(&format!("the writer at {address} did not answer: {reason}")),
    }
}

fn not_the_writer(detail: &str) -> Response {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemCode::NotTheWriter,
        "Not the writer",
        format!("this node follows the ledger: {detail}; retry shortly (the same idempotency key appends at most once)"),
    );
    p.retry_after_s = Some(1);
    p.into_response()
}

/// Waits (bounded) until this node's context holds the answer's seqs.
async fn settle(app: &App, body: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let seq = v["seq"].as_u64().or_else(|| {
        v["answers"]
            .as_array()
            .and_then(|a| a.iter().filter_map(|x| x["seq"].as_u64()).max())
    });
    let Some(seq) = seq else { return };
    if app.ledger.applied_seq() >= seq {
        return;
    }
    // As `App::current`: `applied` is published before the batch is sent.
    let Some(mut rx) = app.ledger.subscribe() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + super::CATCH_UP_WAIT;
    while app.ledger.applied_seq() < seq {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return,
        }
    }
}

/// Sends `req` to the writer at `address` (http://host:port) and returns
/// its answer; a failure names what went wrong.
async fn relay(
    address: &str,
    path: &str,
    req: Request,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, COMMAND_BYTES_MAX)
        .await
        .map_err(|e| format!("read the request: {e}"))?;
    let uri: hyper::Uri = address
        .parse()
        .map_err(|_| format!("bad address {address}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("bad address {address}"))?
        .clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut out = hyper::Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONNECTION {
            out = out.header(name, value);
        }
    }
    let out = out
        .header(hyper::header::HOST, authority.as_str())
        .header(FORWARDED, HeaderValue::from_static("1"))
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let headers = res.headers().clone();
    let limited = http_body_util::Limited::new(res.into_body(), FORWARDED_ANSWER_BYTES_MAX);
    let body = limited
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, headers, body))
}
