//! The `parley` command line: the binary's edge, where errors get context.
//! Commands that write open the ledger as its one writer (`write`); the
//! others open a read-only view (`inspect`, `escalations`) and work next to a
//! running writer.

mod catalog;
mod checkpoint;
mod escalations;
mod inspect;
mod place;
mod remote;
mod repair;
mod rules;
mod scorecard;
mod serve;
mod state;
mod suggest;
mod webhooks;
mod write;

pub use write::Create;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::reader::{LogView, ViewReport};
use place::Place;

#[derive(Parser)]
#[command(name = "parley", version, about = "A coordination ledger for the AI agents that run an online store", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Run the seed's scenarios through a fresh ledger and compare them with the same agents uncoordinated.
    Demo {
        /// Where to write the ledger (default: a new directory under the system temp dir).
        #[arg(long)]
        data: Option<PathBuf>,
        /// One scenario, or `all`: conflict, redundancy, sequencing, price-war, viral, supply-delay, flash-sale.
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Seed of the simulated agents' timing and of the shoppers.
        #[arg(long, default_value_t = crate::demo::DEFAULT_SEED)]
        seed: u64,
        /// Print the figures as JSON instead of the timeline.
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Generate a large realistic ledger (many skus, agents, conflicts, escalations, workflows).
    Simulate {
        /// The directory to create the ledger in (must not hold one).
        #[arg(long)]
        data: PathBuf,
        /// Seed of the simulated store and agents: the same seed, the same ledger.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop once the log holds at least this many records.
        #[arg(long)]
        records: u64,
        /// How many skus the simulated store sells.
        #[arg(long, default_value_t = 1000)]
        skus: usize,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Append commands from a JSON Lines file (or `-` for stdin); print one JSON answer per line.
    Run {
        /// The ledger (not with --server).
        #[command(flatten)]
        place: Place,
        /// Send the commands to a running `parley serve` instead (token from
        /// PARLEY_TOKEN; each command must be written as the token's identity).
        #[arg(long, conflicts_with_all = ["data", "store", "ledger"])]
        server: Option<String>,
        /// File of commands, one JSON object per line; `-` reads stdin.
        file: PathBuf,
        #[command(flatten)]
        create: Create,
    },
    /// Serve the ledger over HTTP (JSON under /v1/, SSE stream); creates it if DIR holds none.
    Serve {
        #[command(flatten)]
        place: Place,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: std::net::SocketAddr,
        /// Writes each identity may make per second before getting 429.
        #[arg(long, default_value = "1000")]
        writes_per_s: std::num::NonZeroU32,
        /// Failed authentications an address may make per minute before all
        /// its requests get 429 for the rest of the minute (0: no limit).
        #[arg(long, default_value_t = crate::server::throttle::BAD_TOKENS_PER_MIN)]
        bad_tokens_per_min: u32,
        /// Let MCP clients without a token initialize and list tools and
        /// resources at /mcp (for conformance suites); tool calls and
        /// resource reads still need a token.
        #[arg(long)]
        mcp_anonymous_handshake: bool,
        /// A host name /mcp accepts besides loopback and the listen address
        /// (repeatable; other Host headers are refused against DNS rebinding).
        #[arg(long = "mcp-allowed-host")]
        mcp_allowed_hosts: Vec<String>,
        /// With --store: the address other nodes forward writes to when this
        /// node writes the ledger (default http://LISTEN).
        #[arg(long)]
        advertise: Option<String>,
        /// With --store: the writer's lease, in milliseconds (300 to 60000): a
        /// writer that stops renewing it is replaced this long after (at most).
        #[arg(long, default_value_t = crate::log::postgres::LEASE_MS_DEFAULT)]
        lease_ms: u64,
        /// With --store: the most ledgers this node writes at once; it
        /// follows (and serves) the others and takes a free lease only while
        /// it writes fewer. Spreads the writers of many ledgers over the
        /// nodes; leave room for a lost node's share. Default: no limit.
        #[arg(long)]
        write_at_most: Option<std::num::NonZeroUsize>,
        #[command(flatten)]
        webhooks: webhooks::WebhookArgs,
        #[command(flatten)]
        create: Create,
    },
    /// An MCP server on stdio for a desktop MCP host, using a running `parley serve` (token from PARLEY_TOKEN).
    Mcp {
        /// The server, e.g. http://127.0.0.1:7420
        #[arg(long)]
        server: String,
    },
    /// Credentials for `parley serve`.
    Token {
        #[command(subcommand)]
        action: serve::TokenCmd,
    },
    /// Recompute the whole hash chain (read-only). Exit 1 on any damage.
    Verify {
        #[command(flatten)]
        place: Place,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
        /// Also check the derived state (index files, and the derived store when no writer runs) against the log.
        #[arg(long)]
        derived: bool,
        /// Check the checkpoints signed by this public key (hex, or a file
        /// holding it: `signing.pub`).
        #[arg(long)]
        key: Option<String>,
        /// Prove the log still extends the signed head in FILE (`parley
        /// checkpoint export`, kept elsewhere).
        #[arg(long, requires = "key")]
        checkpoint: Option<PathBuf>,
    },
    /// Signed checkpoints: make a key pair, export the newest signed head.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCmd),
    /// Write the log as JSON Lines (one record per line, with hashes).
    Export {
        #[command(flatten)]
        place: Place,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a store platform's product CSV export (Shopify, WooCommerce) as catalog records.
    ImportCatalog(catalog::ImportCatalogArgs),
    /// Rebuild a ledger in a new directory from an export, only if every hash verifies.
    Import {
        /// Where to create the ledger (a --data directory or a --store ledger; it must hold none).
        #[command(flatten)]
        place: Place,
        /// The export to read (JSON Lines, as `parley export` writes it).
        file: PathBuf,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the derived state (index files, derived store) from the log. Writes nothing to the log.
    Rebuild {
        /// The ledger's data directory (or set PARLEY_DATA).
        #[arg(long, env = "PARLEY_DATA")]
        data: PathBuf,
    },
    /// Show what can be cut or rewritten from a ledger a writer refuses, and why; with --yes, do it. Never touches a record evidence shows was acknowledged.
    Repair {
        /// The ledger's data directory.
        #[arg(long, env = "PARLEY_DATA")]
        data: PathBuf,
        /// Carry out the repair shown (a copy of every replaced byte is kept under DIR/repair/).
        #[arg(long)]
        yes: bool,
        /// Print the plan (and what was done) as JSON.
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Re-derive every decision from the log and check every record's right to be there. Exit 1 on a divergence.
    Replay {
        #[command(flatten)]
        place: Place,
        /// Stop at this seq.
        #[arg(long)]
        until: Option<u64>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// The shared context as it was at a seq or a time, whole or for one entity (sku:SKU-1, order:O-9, customer:C-3).
    State {
        #[command(flatten)]
        place: Place,
        /// The context as of this seq (default: the head).
        #[arg(long)]
        at: Option<u64>,
        /// The context as of this time: an RFC 3339 time, e.g. 2025-11-26T09:00:00Z.
        #[arg(long)]
        at_time: Option<String>,
        /// One entity, e.g. sku:SKU-1, order:O-9, customer:C-3 (default: the whole context).
        entity: Option<String>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Every change of an entity's field, newest first, with the intention, decision, trace, resolution and losers.
    Audit {
        #[command(flatten)]
        place: Place,
        /// The entity, e.g. sku:SKU-1.
        entity: String,
        /// The field, e.g. price (default: every field).
        field: Option<String>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
        /// `dot` prints the causal graph for Graphviz.
        #[arg(long)]
        format: Option<String>,
    },
    /// What followed the decisions (from outcome records), per day, agent, rule and precedent; with --rules, what other rule sets would have changed (estimated). Writes nothing.
    Scorecard(scorecard::Args),
    /// Proposed rule changes (threshold, autonomy, calibration, precedent retirement) with their evidence and a what-if preview. Writes nothing.
    Suggest(suggest::Args),
    /// Replay the log under other rules and/or another resolver version in memory; list every decision that would differ. Writes nothing.
    Whatif {
        #[command(flatten)]
        place: Place,
        /// The alternative rule set (TOML).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The resolver version to run instead of the recorded ones.
        #[arg(long)]
        resolver: Option<u32>,
        /// Decide again from this seq on (default: 1).
        #[arg(long)]
        from: Option<u64>,
        /// Stop at this seq (default: the head).
        #[arg(long)]
        to: Option<u64>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Read and filter the log.
    Log {
        #[command(flatten)]
        place: Place,
        /// The first seq to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// A record kind, e.g. decision, intend, catalog.
        #[arg(long)]
        kind: Option<String>,
        /// An entity, e.g. sku:SKU-1 or intention:42 (uses the entity index).
        #[arg(long)]
        entity: Option<String>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// List escalations (oldest first) with their options, the agents' reasoning and how each was closed.
    Escalations {
        #[command(flatten)]
        place: Place,
        /// Only escalations still waiting for a human.
        #[arg(long)]
        open: bool,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Settle an open escalation as a registered human: choose one of its options.
    Resolve {
        /// The ledger (not with --server).
        #[command(flatten)]
        place: Place,
        /// Resolve through a running `parley serve` (token from PARLEY_TOKEN,
        /// a human's; `--as` must be its identity).
        #[arg(long, conflicts_with_all = ["data", "store", "ledger", "at"])]
        server: Option<String>,
        /// The escalation's id (the escalated intention's seq, as `parley escalations` lists it).
        escalation: u64,
        /// The option's number, from 0.
        #[arg(long)]
        option: u32,
        /// The human resolving (must be registered as a human in the ledger).
        #[arg(long = "as")]
        human: String,
        /// The rationale, recorded with the resolution.
        #[arg(long)]
        why: String,
        /// The resolution's time (RFC 3339), required on a scripted ledger such as the demo's.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// The rule set: check a file, compare two, install one, list what was installed.
    Rules {
        #[command(subcommand)]
        action: rules::RulesCmd,
    },
    /// Print the JSON Schemas of the public formats, or write them into a directory.
    Schema {
        /// The directory to write them into (default: print them).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    if !crate::allocator::keep_large_blocks_mapped() {
        eprintln!("parley: note: the allocator refused its mmap threshold; memory freed may stay resident");
    }
    let level = match std::env::var("PARLEY_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Rust ignores SIGPIPE, so printing into a closed pipe (`parley log | head`)
    // would panic. Restore the default for the commands that print: the
    // process ends quietly, as Unix tools do. Nothing is lost: an answer is
    // printed only after its record is durable. Never for `serve`: its
    // sockets are written with writev, which raises SIGPIPE when a client
    // has gone, and the default would end the whole server (found by the
    // MCP conformance suite: exit 141 after a client dropped its streams).
    if !matches!(cli.command, Cmd::Serve { .. }) {
        // SAFETY: setting a signal disposition before any thread starts
        // (parsing the arguments starts none).
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parley: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes in one line, each said once: typed errors often
/// name their cause in their own message already (`refused: {cause}`).
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

// One flat match from subcommand to handler; every arm is a single call.
#[allow(clippy::too_many_lines)]
fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Demo {
            data,
            scenario,
            seed,
            json,
        } => crate::demo::run_cli(data, &scenario, seed, json),
        Cmd::Simulate {
            data,
            seed,
            records,
            skus,
            json,
        } => inspect::simulate(&data, seed, records, skus, json),
        Cmd::Run {
            place,
            server,
            file,
            create,
        } => match server {
            Some(url) => remote::run(&url, &file),
            None => write::run(&place.at()?, &file, &create),
        },
        Cmd::Serve {
            place,
            listen,
            writes_per_s,
            bad_tokens_per_min,
            mcp_anonymous_handshake,
            mcp_allowed_hosts,
            advertise,
            lease_ms,
            write_at_most,
            webhooks,
            create,
        } => {
            let opts = serve::ServeOptions {
                webhooks: webhooks.config()?,
                listen,
                advertise,
                lease_ms,
                write_at_most,
                writes_per_s,
                bad_tokens_per_min,
                mcp: crate::mcp::http::McpOptions {
                    anonymous_handshake: mcp_anonymous_handshake,
                    allowed_hosts: mcp_allowed_hosts,
                },
            };
            serve::serve(place.for_serve()?, opts, &create)
        }
        Cmd::Mcp { server } => serve::mcp_stdio(&server),
        Cmd::Token {
            action:
                serve::TokenCmd::Create {
                    place,
                    name,
                    role,
                    admin,
                    expires,
                },
        } => serve::token_create(&place.at()?, (&name, role), admin.as_deref(), expires),
        Cmd::Verify {
            place,
            json,
            derived,
            key,
            checkpoint,
        } => match inspect::verify(&place.at()?, json, derived)? {
            code if key.is_none() || code != ExitCode::SUCCESS => Ok(code),
            _ => {
                let key = key.as_deref().unwrap_or_default();
                checkpoint::verify(&place.at()?, key, checkpoint.as_deref(), json)
            }
        },
        Cmd::Checkpoint(checkpoint::CheckpointCmd::Keygen { out }) => checkpoint::keygen(&out),
        Cmd::Checkpoint(checkpoint::CheckpointCmd::Export { place, out }) => {
            checkpoint::export(&place.at()?, out.as_deref())
        }
        Cmd::Export { place, out } => inspect::export(&place.at()?.view()?, out.as_deref()),
        Cmd::ImportCatalog(args) => catalog::run(&args),
        Cmd::Import { place, file, json } => write::import(&place.at()?, &file, json),
        Cmd::Rebuild { data } => write::rebuild(&data),
        Cmd::Repair { data, yes, json } => repair::run(&data, yes, json),
        Cmd::Replay { place, until, json } => inspect::replay(&place.at()?.view()?, until, json),
        Cmd::State {
            place,
            at,
            at_time,
            entity,
            json,
        } => state::state(
            &place.at()?.view()?,
            at,
            at_time.as_deref(),
            entity.as_deref(),
            json,
        ),
        Cmd::Audit {
            place,
            entity,
            field,
            json,
            format,
        } => inspect::audit_cmd(
            &place.at()?.view()?,
            &entity,
            field.as_deref(),
            json,
            format.as_deref(),
        ),
        Cmd::Scorecard(args) => scorecard::run(&args),
        Cmd::Suggest(args) => suggest::run(&args),
        Cmd::Whatif {
            place,
            rules,
            resolver,
            from,
            to,
            json,
        } => inspect::whatif(
            &place.at()?.view()?,
            rules.as_deref(),
            resolver,
            (from, to),
            json,
        ),
        Cmd::Log {
            place,
            from,
            kind,
            entity,
            json,
        } => inspect::log(
            &place.at()?.view()?,
            from,
            kind.as_deref(),
            entity.as_deref(),
            json,
        ),
        Cmd::Escalations {
            place,
            open: only_open,
            json,
        } => escalations::list(&place.at()?.view()?, only_open, json),
        Cmd::Resolve {
            place,
            server,
            escalation,
            option,
            human,
            why,
            at,
            json,
        } => match server {
            Some(url) => remote::resolve(&url, escalation, option, &human, &why, json),
            None => escalations::resolve(
                &place.at()?,
                escalation,
                option,
                &human,
                &why,
                at.as_deref(),
                json,
            ),
        },
        Cmd::Rules { action } => rules::dispatch(action),
        Cmd::Schema { out } => schema(out.as_deref()),
    }
}

fn schema(out: Option<&Path>) -> Result<ExitCode> {
    for (name, text) in crate::schema::all() {
        match out {
            Some(dir) => {
                let path = dir.join(name);
                std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => print!("{text}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing ledger for reading (no lock, nothing written) and tells
/// the operator what it found.
fn view(data: &Path) -> Result<LogView> {
    let (view, report) = LogView::open(data).with_context(|| format!("open {}", data.display()))?;
    tell_view(&report);
    Ok(view)
}

fn tell_view(report: &ViewReport) {
    if let Some(t) = &report.torn_tail {
        eprintln!(
            "parley: note: the log ends in a torn final write at seq {} ({} bytes at offset {} of {}: {}); it was never acknowledged, and the next writer cuts it off",
            t.seq,
            t.bytes,
            t.offset,
            t.segment.display(),
            t.reason
        );
    }
}

#[cfg(test)]
mod tests;
