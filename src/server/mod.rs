//! `parley serve`: the ledger over HTTP/1.1 (axum), JSON under `/v1/`.
//!
//! One process holds the writer; handlers never block a tokio worker on a
//! channel or on disk: commands go in with `try_submit` (a full queue is a
//! 503) and their acknowledgement is awaited; log reads run on the blocking
//! pool. Current reads use the context the projector publishes after each
//! batch. Every request but the health checks carries a bearer token whose
//! credential the log granted (`parley token create`).

pub mod auth;
pub mod metrics;
pub mod problem;
pub mod stream;
pub mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::audit::LedgerRead;
use crate::command::MAX_COMMAND_BYTES;
use crate::entity::EntityRef;
use crate::export::ExportedRecord;
use crate::ledger::Ledger;
use auth::Caller;
use problem::Problem;

/// A rate limiter keyed by identity (GCRA, from the `governor` crate). Its
/// hash map is only looked up by key, never iterated into an output.
pub type Limiter = governor::RateLimiter<
    String,
    governor::state::keyed::HashMapStateStore<String>,
    governor::clock::DefaultClock,
>;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub ledger: Arc<Ledger>,
    /// Writes per identity: a caller over its quota gets 429 with Retry-After.
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<metrics::Metrics>,
    /// Turns true when the server is shutting down: streams end with a
    /// resumable `resume` event.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

impl App {
    /// The caller a request's token names, checked against the published
    /// context (the credentials as of the durable head).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        self.with_context(|ctx| auth::caller(headers, ctx))?
    }

    /// Runs `f` on the published context (read-locked, briefly).
    pub fn with_context<T>(
        &self,
        f: impl FnOnce(&crate::context::Context) -> T,
    ) -> Result<T, Problem> {
        let published = self
            .ledger
            .published()
            .ok_or_else(|| Problem::internal("this ledger was not opened to serve".into()))?;
        let ctx = published
            .read()
            .map_err(|_| Problem::internal("the published context is unavailable".into()))?;
        Ok(f(&ctx))
    }
}

/// The routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/v1/commands", post(writes::post_command))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/intentions/{seq}", get(intention))
        .route("/v1/state", get(state))
        .route("/v1/entities/{entity}", get(entity))
        .layer(DefaultBodyLimit::max(MAX_COMMAND_BYTES))
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(app)
}

/// One `tracing` span per request (method, path, status); handlers add the
/// identity and seq. Never the Authorization header.
async fn trace_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty
    );
    let res = next.run(req).instrument(span.clone()).await;
    span.record("status", res.status().as_u16());
    res
}

/// `/metrics` (any valid token).
async fn metrics_text(State(app): State<App>, headers: HeaderMap) -> Result<String, Problem> {
    app.caller(&headers)?;
    let open = app.with_context(|ctx| {
        ctx.intentions
            .states
            .values()
            .filter(|s| s.escalation.is_some())
            .count()
    })?;
    let depth = app.ledger.queue_depth();
    Ok(app.metrics.render(depth, app.ledger.head_seq(), open))
}

/// Microseconds since `start`: shell timing for metrics, never state.
#[allow(clippy::disallowed_methods)] // measuring latency for /metrics
pub fn started() -> std::time::Instant {
    std::time::Instant::now()
}

async fn ready(State(app): State<App>) -> Result<&'static str, Problem> {
    match app.ledger.published() {
        Some(_) => Ok("ready"),
        None => Err(Problem::internal("not serving".into())),
    }
}

/// The shared context at the durable head (`schemas/state.schema.json`).
async fn state(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<crate::context::view::StateView>, Problem> {
    app.caller(&headers)?;
    app.with_context(crate::context::view::state).map(Json)
}

/// One entity (`sku:S1`, `order:O-9`, …) at the durable head
/// (`schemas/entity.schema.json`).
async fn entity(
    State(app): State<App>,
    headers: HeaderMap,
    Path(text): Path<String>,
) -> Result<Json<crate::context::view::EntityView>, Problem> {
    app.caller(&headers)?;
    let e = EntityRef::parse(&text).map_err(|m| Problem::bad_request("bad-entity", m))?;
    app.with_context(|ctx| crate::context::view::entity(ctx, &e))?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("the shared context holds nothing about {e}")))
}

/// An intention and every decision about it so far, oldest first.
#[derive(Serialize)]
struct IntentionAnswer {
    intention: ExportedRecord,
    decisions: Vec<ExportedRecord>,
    /// True once a decision settled it for good (approved, modified,
    /// rejected, expired): no later decision will follow.
    settled: bool,
}

/// `?wait_ms=N`: wait up to N ms (at most 30 s) for a decision while the
/// intention is not settled (a long poll).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentionQuery {
    wait_ms: Option<u64>,
}

/// The longest a long poll waits.
const MAX_WAIT_MS: u64 = 30_000;

async fn intention(
    State(app): State<App>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
    axum::extract::Query(q): axum::extract::Query<IntentionQuery>,
) -> Result<Json<IntentionAnswer>, Problem> {
    app.caller(&headers)?;
    // Subscribe before reading, so no decision slips between the two.
    let mut rx = app.ledger.subscribe();
    let answer = read_intention(&app, seq).await?;
    let wait_ms = q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS);
    let (true, false, Some(rx)) = (wait_ms > 0, answer.settled, rx.as_mut()) else {
        return Ok(Json(answer));
    };
    let known = answer.decisions.len();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
    loop {
        let batch = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(batch)) => batch,
            // Timed out, lagged or closing: answer with what the log holds.
            _ => return Ok(Json(read_intention(&app, seq).await?)),
        };
        let about_it = batch.records.iter().any(|r| {
            matches!(&r.record.body, crate::record::Body::Decision { decision } if decision.intention == seq)
        });
        if about_it {
            let now = read_intention(&app, seq).await?;
            if now.decisions.len() > known {
                return Ok(Json(now));
            }
        }
    }
}

/// The intention at `seq` and its decisions, from the log.
async fn read_intention(app: &App, seq: u64) -> Result<IntentionAnswer, Problem> {
    let ledger = app.ledger.clone();
    let records = tokio::task::spawn_blocking(move || {
        let head = ledger.head_seq();
        let mut seqs = ledger.entity_seqs(&EntityRef::Intention(seq))?;
        seqs.push(seq);
        seqs.sort_unstable();
        seqs.dedup();
        seqs.retain(|s| *s <= head);
        ledger.read(&seqs)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
    .map_err(|e| Problem::internal(e.to_string()))?;
    let first = records
        .iter()
        .find(|r| r.record.envelope.seq == seq)
        .filter(|r| matches!(r.record.body, crate::record::Body::Intend { .. }))
        .ok_or_else(|| Problem::not_found(format!("seq {seq} is not an intention")))?;
    let mut settled = false;
    let decisions = records
        .iter()
        .filter(|r| {
            matches!(&r.record.body, crate::record::Body::Decision { decision } if decision.intention == seq)
        })
        .inspect(|r| {
            if let crate::record::Body::Decision { decision } = &r.record.body {
                settled = decision.outcome.is_final();
            }
        })
        .map(ExportedRecord::from)
        .collect();
    Ok(IntentionAnswer {
        intention: ExportedRecord::from(first),
        decisions,
        settled,
    })
}

/// How many 50 ms waits shutdown allows for request tasks to let go.
const SHUTDOWN_WAITS: u32 = 200;

/// Serves `ledger` on `listen` until SIGINT or SIGTERM, then stops accepting,
/// lets in-flight requests finish and closes the ledger.
pub async fn serve(
    ledger: Ledger,
    listen: SocketAddr,
    writes_per_s: std::num::NonZeroU32,
) -> anyhow::Result<()> {
    let ledger = Arc::new(ledger);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let quota = governor::Quota::per_second(writes_per_s);
    let app = App {
        ledger: ledger.clone(),
        limiter: Arc::new(governor::RateLimiter::hashmap(quota)),
        metrics: Arc::new(metrics::Metrics::default()),
        closing,
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    // The line scripts and tests wait for.
    println!("parley serve: listening on http://{local}");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Streams never end on their own: tell them to.
            let _ = closing_tx.send(true);
        })
        .await?;
    // Connections are closed; their tasks (and blocking reads) may still be
    // dropping their handles. Every acknowledged record is already durable.
    let mut ledger = ledger;
    let mut waits = 0u32;
    let ledger = loop {
        match Arc::try_unwrap(ledger) {
            Ok(l) => break l,
            Err(shared) if waits < SHUTDOWN_WAITS => {
                ledger = shared;
                waits += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(_) => anyhow::bail!("requests still held the ledger 10 s after shutdown"),
        }
    };
    ledger.close()?;
    println!("parley serve: stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
