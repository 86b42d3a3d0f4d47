//! `parley serve` and `parley token create`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::place::At;
use super::write::{options, tell_recovery};
use super::Create;
use crate::command::{Command, CommandEnvelope};
use crate::ledger::Ledger;
use crate::log::postgres::PgOptions;
use crate::reader::LedgerRead;
use crate::record::{Body, Role, Timeline};
use crate::server::App;

/// `parley serve`: opens (or creates, on the wall clock) and serves DIR.
pub(super) fn serve(at: &At, serve_opts: ServeOptions, create: &Create) -> Result<ExitCode> {
    let mut opts = options(create)?;
    opts.serve = true;
    // Bound before the ledger opens: a node of a cluster advertises the
    // address it really serves on (a `--listen` port 0 included).
    let listener = std::net::TcpListener::bind(serve_opts.listen)
        .with_context(|| format!("listen on {}", serve_opts.listen))?;
    listener
        .set_nonblocking(true)
        .context("make the listener non-blocking")?;
    let local = listener.local_addr().context("the listener's address")?;
    let ledger = match at {
        At::Pg { store, ledger } => {
            let mut node = PgOptions::new(ledger);
            node.address = serve_opts
                .advertise
                .clone()
                .unwrap_or_else(|| format!("http://{local}"));
            node.lease_ms = serve_opts.lease_ms;
            Ledger::cluster(store, node, opts).with_context(|| format!("join {at}"))?
        }
        At::Dir(_) => {
            let (ledger, report) = at.open(opts)?;
            tell_recovery(&report);
            ledger
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(run_server(ledger, listener, serve_opts))?;
    Ok(ExitCode::SUCCESS)
}

/// `parley mcp --server URL`: an MCP server on stdin/stdout (the form a
/// desktop MCP host launches), whose tools call the server as the token in
/// `PARLEY_TOKEN`.
pub(super) fn mcp_stdio(url: &str) -> Result<ExitCode> {
    use rmcp::ServiceExt as _;
    let token = crate::client::token_from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let handler = crate::mcp::Parley::remote(url.to_owned(), token);
        let service = handler
            .serve(rmcp::transport::stdio())
            .await
            .context("start the MCP session on stdio")?;
        service.waiting().await.context("the MCP session")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The genesis record's first admin and time line.
fn genesis(ledger: &Ledger) -> Result<(String, Timeline)> {
    let mut found = None;
    ledger.scan(1, 1, &mut |r| {
        if let Body::Genesis {
            first_admin,
            timeline,
            ..
        } = r.record.body
        {
            found = Some((first_admin, timeline));
        }
        Ok(())
    })?;
    found.context("the log has no genesis record")
}

/// `parley token create`: grants a credential as an admin and prints the
/// token once; creates the ledger if DIR holds none. Needs the writer's
/// lock: run it before `parley serve` (a running server grants tokens with
/// `POST /v1/tokens`).
pub(super) fn token_create(
    at: &At,
    name: &str,
    role: impl Into<Role>,
    admin: Option<&str>,
) -> Result<ExitCode> {
    let (ledger, report) = at
        .open(options(&Create::default())?)
        .context("stop `parley serve` to create tokens")?;
    if report.created {
        // A new ledger (on the wall clock, as `parley serve` makes), so the
        // first admin can get a token before the server starts.
        eprintln!("parley: created a new ledger in {at}");
    }
    tell_recovery(&report);
    let (first_admin, timeline) = genesis(&ledger)?;
    let token = crate::server::auth::new_token().context("read the system's random source")?;
    let at_ms = match timeline {
        Timeline::Scripted => ledger.head().map(|h| h.recorded_at_ms),
        Timeline::Wall => None,
    };
    let cmd = Command {
        envelope: CommandEnvelope {
            producer: admin.unwrap_or(&first_admin).to_owned(),
            at_ms,
            ..CommandEnvelope::default()
        },
        body: Body::CredentialGranted {
            identity: name.to_owned(),
            role: role.into(),
            token_hash: crate::server::auth::token_hash(&token),
        },
    };
    let ack = ledger.append(cmd).context("grant the credential")?;
    ledger.close()?;
    eprintln!(
        "granted at seq {}; the token is shown once, keep it secret:",
        ack.seq
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// How many 50 ms waits shutdown allows for request tasks to let go.
const SHUTDOWN_WAITS: u32 = 200;

/// How `parley serve` runs.
#[derive(Clone, Debug)]
pub(super) struct ServeOptions {
    pub listen: SocketAddr,
    /// The address other nodes forward writes to (default http://LISTEN).
    pub advertise: Option<String>,
    /// The writer's lease on a ledger in PostgreSQL, in milliseconds.
    pub lease_ms: u64,
    /// Writes per identity per second before 429.
    pub writes_per_s: std::num::NonZeroU32,
    pub mcp: crate::mcp::http::McpOptions,
}

/// Serves `ledger` on `listen` until SIGINT or SIGTERM (the HTTP API and MCP
/// on one listener: the one place that composes them), then stops
/// accepting, lets in-flight requests finish and closes the ledger.
pub(super) async fn run_server(
    ledger: Ledger,
    listener: std::net::TcpListener,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let ledger = Arc::new(ledger);
    let (app, closing_tx) = App::new(ledger.clone(), opts.writes_per_s);
    app.count_batches();
    let listen = opts.listen;
    let stop_mcp = tokio_util::sync::CancellationToken::new();
    let api = crate::server::router(app.clone());
    let (mcp, sessions) = crate::mcp::http::routes(
        app.clone(),
        api.clone(),
        &opts.mcp,
        listen,
        stop_mcp.clone(),
    );
    let all = api.merge(mcp);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    // The line scripts and tests wait for.
    println!("parley serve: listening on http://{local}");
    drop(app);
    let watched = ledger.clone();
    axum::serve(listener, all)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = fenced(&watched) => {}
            }
            drop(watched);
            // MCP sessions hold the ledger: end them.
            stop_mcp.cancel();
            crate::mcp::http::close_sessions(&sessions).await;
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

/// Resolves when a node of a cluster can no longer write (its lease was
/// taken or ran out, or taking over failed): the server stops, and is
/// restarted as a follower. Never resolves for a ledger in a directory.
async fn fenced(ledger: &Ledger) {
    if ledger.membership().is_none() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Some(why) = ledger.failure() {
            eprintln!("parley serve: this node stops: {why}");
            return;
        }
    }
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
