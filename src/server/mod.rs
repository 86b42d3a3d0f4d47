//! `parley serve`: the ledger over HTTP/1.1 (axum), JSON under `/v1/`.
//!
//! One process holds the writer; handlers never block a tokio worker on a
//! channel or on disk: commands go in with `try_submit` (a full queue is a
//! 503) and their acknowledgement is awaited; log reads run on the blocking
//! pool. Current reads use the context the projector publishes after each
//! batch. Every request but the health checks carries a bearer token whose
//! credential the log granted (`parley token create`).

pub mod a2a;
pub mod auth;
pub mod cluster;
pub mod console;
pub mod extract;
pub mod filter;
pub mod intentions;
pub(crate) mod known;
pub mod ledgers;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod reads;
pub mod rules;
pub mod scorecard;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod throttle;
pub mod tokens;
pub mod webhooks;
pub mod whatif;
pub mod writes;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

use crate::command::COMMAND_BYTES_MAX;
use crate::ledger::Ledger;
use crate::reader::LedgerRead;
use auth::Caller;
use problem::Problem;

/// A rate limiter keyed by identity (GCRA, from the `governor` crate). Its
/// hash map is only looked up by key, never iterated into an output.
pub type Limiter = governor::RateLimiter<
    String,
    governor::state::keyed::HashMapStateStore<String>,
    governor::clock::DefaultClock,
>;

/// Tells streams the server is shutting down (they end with `resume`).
pub type Closer = tokio::sync::watch::Sender<bool>;

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
    /// How store platforms' webhooks are received (`None`: they are not).
    pub webhooks: Option<Arc<webhooks::Webhooks>>,
    /// Addresses that keep failing authentication (`throttle`).
    pub bad_tokens: Arc<throttle::BadTokens>,
}

/// Log reads running at once (the machine has few cores; the writer needs one).
pub const LOG_READS: usize = 2;
/// How long a log read waits for its turn before answering 503.
const LOG_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a current read waits for the published context to reach the
/// durable head it saw on arrival.
pub(crate) const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl App {
    /// The caller a request's token names, checked against the published
    /// context (the credentials as of the durable head).
    ///
    /// A token that names no one while the published context is behind the
    /// durable head is judged once more when it has caught up: a token
    /// granted a moment ago (its grant acknowledged) authenticates at once.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        use crate::sequencer::Clock as _;
        let now_ms = crate::sequencer::SystemClock.now_ms();
        match self.with_context(|ctx| auth::caller(headers, ctx, now_ms))? {
            Err(_) if self.ledger.applied_seq() < self.ledger.head_seq() => {
                self.current(|ctx| auth::caller(headers, ctx, now_ms))
                    .await?
            }
            judged => judged,
        }
    }

    /// Runs `f` on the published context once it holds every record that
    /// was durable when called (read-your-writes), waiting at most
    /// `CATCH_UP_WAIT` for the projector; a context still behind then is a
    /// 503 `context-behind` with Retry-After, never a stale answer.
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
            let applied = self.ledger.applied_seq();
            if applied < target {
                return Err(Problem::context_behind(applied, target));
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
        Ok(f(&*published(&self.ledger)?))
    }
}

/// The context the writer published (read-locked while the guard lives).
fn published(
    ledger: &Ledger,
) -> Result<std::sync::RwLockReadGuard<'_, crate::context::Context>, Problem> {
    let published = ledger
        .published()
        .ok_or_else(|| Problem::internal("this ledger was not opened to serve".into()))?;
    published
        .read()
        .map_err(|_| Problem::internal("the published context is unavailable".into()))
}

/// A copy of the published context, for work on the blocking pool: taken
/// there, inside a log-read permit, so concurrent copies are bounded by
/// `LOG_READS`.
pub(crate) fn published_copy(ledger: &Ledger) -> Result<crate::context::Context, Problem> {
    Ok(published(ledger)?.clone())
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
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/state", get(reads::state))
        .route("/v1/entities/{entity}", get(reads::entity))
        .route("/v1/entities/{entity}/audit", get(reads::audit))
        .route("/v1/records", get(reads::records))
        .route("/v1/escalations", get(reads::escalations))
        .route("/v1/escalations/{id}", get(reads::escalation))
        .route("/v1/workflows", get(reads::workflows))
        .route("/v1/rules", get(reads::rules))
        .route("/v1/rules", post(rules::install))
        .route("/v1/rules/check", post(rules::check))
        .route("/v1/rules/history", get(rules::history))
        .route("/v1/whatif", post(whatif::whatif))
        .route("/v1/scorecard", get(scorecard::get_scorecard))
        .route("/v1/scorecard", post(scorecard::post_scorecard))
        .route("/v1/suggestions", get(scorecard::suggestions))
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/webhooks/{platform}", post(webhooks::receive))
        .merge(console::routes())
        .merge(a2a::routes())
        .layer(DefaultBodyLimit::max(COMMAND_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            cluster::forward,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            throttle::guard,
        ))
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
    span.in_scope(|| tracing::debug!("answered"));
    if let Some(problem::Rejected(code)) = res.extensions().get::<problem::Rejected>() {
        app.metrics.rejected(code.name(), res.status().as_u16());
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
    app.caller(&headers).await?;
    let open = app.with_context(crate::escalations::Waiting::count)?;
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

impl App {
    /// What the handlers of a server over `ledger` share, with `writes_per_s`
    /// writes per identity before 429; and the switch that ends streams.
    pub fn new(ledger: Arc<Ledger>, writes_per_s: std::num::NonZeroU32) -> (App, Closer) {
        let (closer, closing) = tokio::sync::watch::channel(false);
        let quota = governor::Quota::per_second(writes_per_s);
        let app = App {
            ledger,
            limiter: Arc::new(governor::RateLimiter::hashmap(quota)),
            metrics: Arc::new(metrics::Metrics::default()),
            closing,
            log_reads: Arc::new(tokio::sync::Semaphore::new(LOG_READS)),
            webhooks: None,
            bad_tokens: Arc::new(throttle::BadTokens::new(throttle::BAD_TOKENS_PER_MIN)),
        };
        (app, closer)
    }

    /// Counts committed batches for `/metrics` until the ledger closes.
    pub fn count_batches(&self) {
        let Some(mut rx) = self.ledger.subscribe() else {
            return;
        };
        let metrics = self.metrics.clone();
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
}
