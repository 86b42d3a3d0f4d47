//! `parley serve`: the ledger over HTTP/1.1 (axum), JSON under `/v1/`.
//!
//! One process holds the writer; handlers never block a tokio worker on a
//! channel or on disk: commands go in with `try_submit` (a full queue is a
//! 503) and their acknowledgement is awaited; log reads run on the blocking
//! pool. Current reads use the context the projector publishes after each
//! batch. Every request but the health checks carries a bearer token whose
//! credential the log granted (`parley token create`).

pub mod auth;
pub mod console;
pub mod extract;
pub mod filter;
pub mod intentions;
pub mod mcp_http;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod reads;
pub mod stream;
pub mod tokens;
pub mod whatif;
pub mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

use crate::audit::LedgerRead;
use crate::command::MAX_COMMAND_BYTES;
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
    /// Reads of the log (as-of, audit, escalations, records, what-if) that
    /// may run at once on the blocking pool.
    pub log_reads: Arc<tokio::sync::Semaphore>,
}

/// Log reads running at once (the machine has few cores; the writer needs one).
pub const LOG_READS: usize = 2;
/// How long a log read waits for its turn before answering 503.
const LOG_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a current read waits for the published context to reach the
/// durable head it saw on arrival.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl App {
    /// The caller a request's token names, checked against the published
    /// context (the credentials as of the durable head).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        self.with_context(|ctx| auth::caller(headers, ctx))?
    }

    /// Runs `f` on the published context once it holds every record that
    /// was durable when called (read-your-writes), waiting at most
    /// `CATCH_UP_WAIT` for the projector.
    pub async fn current<T>(
        &self,
        f: impl FnOnce(&crate::context::Context) -> T,
    ) -> Result<T, Problem> {
        let target = self.ledger.head_seq();
        if self.ledger.applied_seq() < target {
            // The projector publishes `applied` before it sends a batch, so a
            // batch reaching `target` after this subscription is received.
            if let Some(mut rx) = self.ledger.subscribe() {
                let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
                while self.ledger.applied_seq() < target {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                        _ => break,
                    }
                }
            }
        }
        self.with_context(f)
    }

    /// Runs `f` (a read of the log) on the blocking pool, at most
    /// `LOG_READS` at a time; 503 when none frees up in `LOG_READ_WAIT`.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        let permit = tokio::time::timeout(LOG_READ_WAIT, self.log_reads.clone().acquire_owned())
            .await
            .map_err(|_| Problem::busy("too many reads of the log are running; retry".into()))?
            .map_err(|_| Problem::internal("the server is stopping".into()))?;
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = permit;
            f(&ledger)
        })
        .await
        .map_err(|e| Problem::internal(format!("a log read failed: {e}")))?
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

/// The API routes and the console (what MCP tools call in process).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/commands", post(writes::post_command))
        .route("/v1/commands/batch", post(writes::post_batch))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/intentions/{seq}", get(intentions::intention))
        .route("/v1/decisions/{seq}", get(intentions::decision))
        .route("/v1/whoami", get(auth::whoami))
        .route("/v1/state", get(reads::state))
        .route("/v1/entities/{entity}", get(reads::entity))
        .route("/v1/entities/{entity}/audit", get(reads::audit))
        .route("/v1/records", get(reads::records))
        .route("/v1/escalations", get(reads::escalations))
        .route("/v1/escalations/{id}", get(reads::escalation))
        .route("/v1/workflows", get(reads::workflows))
        .route("/v1/rules", get(reads::rules))
        .route("/v1/whatif", post(whatif::whatif))
        .route("/v1/tokens", post(tokens::create))
        .merge(console::routes())
        .layer(DefaultBodyLimit::max(MAX_COMMAND_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            trace_request,
        ))
        .with_state(app)
}

/// One `tracing` span per request (method, path, status); handlers add the
/// identity and seq. Never the Authorization header.
async fn trace_request(
    State(app): State<App>,
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
    if let Some(problem::Rejected(code)) = res.extensions().get::<problem::Rejected>() {
        app.metrics.rejected(code, res.status().as_u16());
    } else if res.status().is_client_error() {
        // Routing's own refusals (no such route, wrong method).
        app.metrics.rejected("no-route", res.status().as_u16());
    }
    res
}

/// `GET /v1/openapi.json`: the API's contract (no token needed).
async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document())
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

/// How many 50 ms waits shutdown allows for request tasks to let go.
const SHUTDOWN_WAITS: u32 = 200;

/// Serves `ledger` on `listen` until SIGINT or SIGTERM, then stops accepting,
/// lets in-flight requests finish and closes the ledger.
/// How `parley serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Writes per identity per second before 429.
    pub writes_per_s: std::num::NonZeroU32,
    pub mcp: mcp_http::McpOptions,
}

pub async fn serve(ledger: Ledger, opts: ServeOptions) -> anyhow::Result<()> {
    let ledger = Arc::new(ledger);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let quota = governor::Quota::per_second(opts.writes_per_s);
    let app = App {
        ledger: ledger.clone(),
        limiter: Arc::new(governor::RateLimiter::hashmap(quota)),
        metrics: Arc::new(metrics::Metrics::default()),
        closing,
        log_reads: Arc::new(tokio::sync::Semaphore::new(LOG_READS)),
    };
    if let Some(mut rx) = ledger.subscribe() {
        // Counts committed batches for /metrics; ends when the ledger closes.
        let metrics = app.metrics.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(batch) => metrics.batch(batch.records.len()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    let listen = opts.listen;
    let stop_mcp = tokio_util::sync::CancellationToken::new();
    let api = router(app.clone());
    let (mcp, sessions) = mcp_http::routes(
        app.clone(),
        api.clone(),
        &opts.mcp,
        listen,
        stop_mcp.clone(),
    );
    let all = api.merge(mcp);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    // The line scripts and tests wait for.
    println!("parley serve: listening on http://{local}");
    drop(app);
    axum::serve(listener, all)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // MCP sessions hold the ledger: end them.
            stop_mcp.cancel();
            mcp_http::close_sessions(&sessions).await;
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
