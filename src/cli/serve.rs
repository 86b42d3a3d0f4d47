//! `parley serve` and `parley token create`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::place::{At, Place};
use super::write::{options, tell_recovery};
use super::Create;
use crate::command::{Command, CommandEnvelope};
use crate::ledger::Ledger;
use crate::log::postgres::PgOptions;
use crate::reader::LedgerRead;
use crate::record::{Body, Role, Timeline};
use crate::server::App;

/// `parley serve`: opens (or creates, on the wall clock) and serves DIR, or
/// joins the cluster of each ledger named in a store.
pub(super) fn serve(
    (places, cache): (Vec<At>, Option<std::path::PathBuf>),
    serve_opts: ServeOptions,
    create: &Create,
) -> Result<ExitCode> {
    let opts = options(create)?;
    // Bound before the ledgers open: a node of a cluster advertises the
    // address it really serves on (a `--listen` port 0 included).
    let listener = std::net::TcpListener::bind(serve_opts.listen)
        .with_context(|| format!("listen on {}", serve_opts.listen))?;
    listener
        .set_nonblocking(true)
        .context("make the listener non-blocking")?;
    let local = listener.local_addr().context("the listener's address")?;
    // One name for this node in every lease it holds.
    let mut node = PgOptions::new("");
    node.address = serve_opts
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    node.lease_ms = serve_opts.lease_ms;
    let mut ledgers = Vec::with_capacity(places.len());
    let slots = std::sync::Arc::new(crate::ledger::cluster::WriterSlots::new(
        serve_opts
            .write_at_most
            .map_or(usize::MAX, std::num::NonZeroUsize::get),
    ));
    for at in &places {
        let mut opts = opts.clone();
        opts.serve = true;
        ledgers.push(match at {
            At::Pg { store, ledger } => {
                let mut node = node.clone();
                node.ledger.clone_from(ledger);
                let cached = cache
                    .as_ref()
                    .map(|dir| crate::ledger::cluster::cache_dir(dir, ledger));
                let joining = crate::ledger::cluster::Joining {
                    cache: cached,
                    slots: slots.clone(),
                };
                let joined = Ledger::cluster(store, node, &joining, opts)
                    .with_context(|| format!("join {at}"))?;
                (Some(ledger.clone()), joined)
            }
            At::Dir(_) => {
                let (ledger, report) = at.open(opts)?;
                tell_recovery(&report);
                (None, ledger)
            }
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(run_server(ledgers, listener, serve_opts))?;
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
    (name, role): (&str, impl Into<Role>),
    admin: Option<&str>,
    expires_in_ms: Option<u64>,
) -> Result<ExitCode> {
    let hint = match at {
        At::Dir(_) => "stop `parley serve` to create tokens".to_owned(),
        At::Pg { ledger, .. } => format!(
            "a node writes this ledger: grant tokens with POST /v1/ledgers/{ledger}/tokens as an admin (or stop every node)"
        ),
    };
    let (ledger, report) = at.open(options(&Create::default())?).context(hint)?;
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
    let producer = cmd.envelope.producer.clone();
    let ack = ledger.append(cmd).context("grant the credential")?;
    if let Some(ms) = expires_in_ms {
        use crate::sequencer::Clock as _;
        let from = at_ms.unwrap_or_else(|| crate::sequencer::SystemClock.now_ms());
        let expires_at_ms = from.saturating_add(ms);
        let cmd = Command {
            envelope: CommandEnvelope {
                producer,
                at_ms,
                ..CommandEnvelope::default()
            },
            body: Body::CredentialExpires {
                grant: ack.seq,
                expires_at_ms,
            },
        };
        ledger.append(cmd).context("set the credential's expiry")?;
        eprintln!(
            "it expires at {}",
            crate::time::format_rfc3339(expires_at_ms)
        );
    }
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
    /// The most ledgers in a store this node writes at once.
    pub write_at_most: Option<std::num::NonZeroUsize>,
    /// Writes per identity per second before 429.
    pub writes_per_s: std::num::NonZeroU32,
    /// Failed authentications per address per minute before 429 (0: off).
    pub bad_tokens_per_min: u32,
    pub mcp: crate::mcp::http::McpOptions,
    /// How store platforms' webhooks are received (`None`: they are not).
    pub webhooks: Option<crate::server::webhooks::Webhooks>,
}

/// Serves `ledgers` on `listen` until SIGINT or SIGTERM (the HTTP API and
/// MCP on one listener: the one place that composes them), then stops
/// accepting, lets in-flight requests finish and closes every ledger. A
/// ledger with a name (in a store) is served under `/v1/ledgers/{name}/`;
/// one ledger is also served at the root.
pub(super) async fn run_server(
    ledgers: Vec<(Option<String>, Ledger)>,
    listener: std::net::TcpListener,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let listen = opts.listen;
    let stop_mcp = tokio_util::sync::CancellationToken::new();
    let (mut root, mut named) = (None, crate::server::ledgers::Ledgers::new());
    let (mut closers, mut sessions, mut held) = (Vec::new(), Vec::new(), Vec::new());
    // One throttle for the whole listener: an address's failures count
    // across every ledger it tries.
    let bad_tokens = Arc::new(crate::server::throttle::BadTokens::new(
        opts.bad_tokens_per_min,
    ));
    for (name, ledger) in ledgers {
        let ledger = Arc::new(ledger);
        let (mut app, closing_tx) = App::new(ledger.clone(), opts.writes_per_s);
        app.webhooks = opts.webhooks.clone().map(Arc::new);
        app.bad_tokens = Arc::clone(&bad_tokens);
        app.count_batches();
        let api = crate::server::router(app.clone());
        let (mcp, open) =
            crate::mcp::http::routes(app, api.clone(), &opts.mcp, listen, stop_mcp.clone());
        match name {
            Some(name) => drop(named.insert(name, api.merge(mcp))),
            None => root = Some(api.merge(mcp)),
        }
        closers.push(closing_tx);
        sessions.push(open);
        held.push(ledger);
    }
    let all = match root {
        Some(root) if named.is_empty() => root,
        _ if !named.is_empty() => crate::server::ledgers::router(named),
        _ => anyhow::bail!("serve needs --data DIR or --store URL with one or more --ledger"),
    };
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    // The line scripts and tests wait for.
    println!("parley serve: listening on http://{local}");
    let watched = held.clone();
    // The peer's address lets repeated bad tokens be throttled (`server::throttle`).
    let all = all.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, all)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = fenced(&watched) => {}
            }
            drop(watched);
            // MCP sessions hold the ledgers: end them.
            stop_mcp.cancel();
            for open in &sessions {
                crate::mcp::http::close_sessions(open).await;
            }
            // Streams never end on their own: tell them to.
            for closing in &closers {
                let _ = closing.send(true);
            }
        })
        .await?;
    for ledger in held {
        close_when_released(ledger).await?;
    }
    println!("parley serve: stopped cleanly");
    Ok(())
}

/// Closes `ledger` once no request task holds it. Connections are closed;
/// their tasks (and blocking reads) may still be dropping their handles.
/// Every acknowledged record is already durable.
async fn close_when_released(mut ledger: Arc<Ledger>) -> anyhow::Result<()> {
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
    Ok(())
}

/// Resolves when a node of a cluster can no longer write one of its
/// ledgers (its lease was taken or ran out, or taking over failed): the
/// server stops, and is restarted as a follower of them all. Never resolves
/// for a ledger in a directory.
async fn fenced(ledgers: &[Arc<Ledger>]) {
    if ledgers.iter().all(|l| l.membership().is_none()) {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Some(why) = ledgers.iter().find_map(|l| l.failure()) {
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

#[derive(clap::Subcommand)]
pub(super) enum TokenCmd {
    /// Grant a credential and print its token once (only its hash is kept, in the log).
    Create {
        #[command(flatten)]
        place: Place,
        /// The identity the token writes as (an agent, human or admin id; any name for a reader).
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: TokenRole,
        /// The admin granting it (default: the ledger's first admin).
        #[arg(long = "as")]
        admin: Option<String>,
        /// It authenticates no one after this long: a number and s, m, h or
        /// d (e.g. 90d; at most 3650d). Default: until revoked.
        #[arg(long, value_parser = parse_expires)]
        expires: Option<u64>,
    },
}

/// A credential's role.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum TokenRole {
    Agent,
    Human,
    Admin,
    Reader,
    /// A store platform's connector (a registered agent of domain
    /// integration): facts, outcomes and platform objects only.
    Integration,
}

impl From<TokenRole> for crate::record::Role {
    fn from(r: TokenRole) -> crate::record::Role {
        match r {
            TokenRole::Agent => crate::record::Role::Agent,
            TokenRole::Human => crate::record::Role::Human,
            TokenRole::Admin => crate::record::Role::Admin,
            TokenRole::Reader => crate::record::Role::Reader,
            TokenRole::Integration => crate::record::Role::Integration,
        }
    }
}

/// `--expires`: a number and a unit (s, m, h, d), as milliseconds.
fn parse_expires(text: &str) -> Result<u64, String> {
    const MAX_MS: u64 = 3650 * 86_400_000;
    let split = text.len().saturating_sub(1);
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}`: a number and s, m, h or d (e.g. 90d)"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d (e.g. 90d)")),
    };
    match n.checked_mul(unit_ms) {
        Some(ms) if (1..=MAX_MS).contains(&ms) => Ok(ms),
        _ => Err(format!("`{text}`: between 1s and 3650d")),
    }
}
