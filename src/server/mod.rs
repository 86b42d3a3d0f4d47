//! `parley serve`: the ledger over HTTP/1.1 (axum), JSON under `/v1/`.
//!
//! One process holds the writer; handlers never block a tokio worker on a
//! channel or on disk: commands go in with `try_submit` (a full queue is a
//! 503) and their acknowledgement is awaited; log reads run on the blocking
//! pool. Current reads use the context the projector publishes after each
//! batch. Every request but the health checks carries a bearer token whose
//! credential the log granted (`parley token create`).

pub mod auth;
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

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub ledger: Arc<Ledger>,
    /// Turns true when the server is shutting down: streams end with a
    /// resumable `resume` event.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

impl App {
    /// The caller a request's token names, checked against the published
    /// context (the credentials as of the durable head).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let published = self
            .ledger
            .published()
            .ok_or_else(|| Problem::internal("this ledger was not opened to serve".into()))?;
        let ctx = published
            .read()
            .map_err(|_| Problem::internal("the published context is unavailable".into()))?;
        auth::caller(headers, &ctx)
    }
}

/// The routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/commands", post(writes::post_command))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/intentions/{seq}", get(intention))
        .layer(DefaultBodyLimit::max(MAX_COMMAND_BYTES))
        .with_state(app)
}

async fn ready(State(app): State<App>) -> Result<&'static str, Problem> {
    match app.ledger.published() {
        Some(_) => Ok("ready"),
        None => Err(Problem::internal("not serving".into())),
    }
}

/// An intention and every decision about it so far, oldest first.
#[derive(Serialize)]
struct IntentionAnswer {
    intention: ExportedRecord,
    decisions: Vec<ExportedRecord>,
}

async fn intention(
    State(app): State<App>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
) -> Result<Json<IntentionAnswer>, Problem> {
    app.caller(&headers)?;
    let ledger = app.ledger.clone();
    let records = tokio::task::spawn_blocking(move || {
        let mut seqs = ledger.entity_seqs(&EntityRef::Intention(seq))?;
        if !seqs.contains(&seq) {
            seqs.insert(0, seq);
        }
        seqs.retain(|s| *s <= ledger.head_seq());
        ledger.read(&seqs)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
    .map_err(|e| Problem::internal(e.to_string()))?;
    let mut it = records.iter();
    let first = it
        .next()
        .filter(|r| r.record.envelope.seq == seq && r.record.body.kind() == "intend")
        .ok_or_else(|| Problem::not_found(format!("seq {seq} is not an intention")))?;
    let decisions = it
        .filter(|r| matches!(&r.record.body, crate::record::Body::Decision { decision } if decision.intention == seq))
        .map(ExportedRecord::from)
        .collect();
    Ok(Json(IntentionAnswer {
        intention: ExportedRecord::from(first),
        decisions,
    }))
}

/// Serves `ledger` on `listen` until SIGINT or SIGTERM, then stops accepting,
/// lets in-flight requests finish and closes the ledger.
pub async fn serve(ledger: Ledger, listen: SocketAddr) -> anyhow::Result<()> {
    let ledger = Arc::new(ledger);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let app = App {
        ledger: ledger.clone(),
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
    let ledger = Arc::try_unwrap(ledger)
        .map_err(|_| anyhow::anyhow!("a request still holds the ledger at shutdown"))?;
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
