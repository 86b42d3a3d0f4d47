//! parley: a coordination ledger for the AI agents that run an online store.
//!
//! The pure core (`record`, `value`, `entity`, `bounds`, `vocab`, `effect`,
//! `command`, `rules`, `context`, `workflow`, `resolver`, `replay`, `whatif`,
//! `render`, `demo::world`) does no I/O and reads no clock; the shell (`log`
//! engines, `sequencer`, `derived`, `ledger`, `reader`, `verify`, `export`,
//! `cli`) does. See ARCHITECTURE.md for the map and the invariants.

// Library code returns errors; unwrap/expect only in tests and on proven
// invariants (each with an `allow` and a comment saying why it holds).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Floats never enter the core's arithmetic (money in minor units, rates in bp).
#![deny(clippy::float_arithmetic)]
#![warn(clippy::too_many_lines)]
// Every `pub` item is reachable from outside: the rest is `pub(crate)`.
#![deny(unreachable_pub)]

pub mod allocator;
pub mod alternatives;
pub mod answer;
pub mod audit;
pub mod bounds;
pub mod checkpoint;
pub mod cli;
mod client;
pub mod command;
pub mod context;
pub mod demo;
pub mod derived;
mod digest;
mod effect;
pub mod entity;
mod escalations;
mod explain;
pub mod export;
pub mod fuzzing;
pub mod guards;
pub mod integration;
mod invariant;
pub mod ledger;
pub mod log;
mod mcp;
pub mod outcomes;
pub mod reader;
pub mod record;
pub mod render;
mod repair;
pub mod replay;
pub mod resolver;
pub mod rules;
pub mod schema;
pub mod scorecard;
pub mod sequencer;
pub mod server;
mod time;
pub mod value;
pub mod verify;
pub mod vocab;
pub mod whatif;
pub mod workflow;
mod writers;

// The crate's surface: the public modules above, and these names. The
// private modules (client, digest, effect, escalations, explain, mcp,
// repair, time, writers) serve the CLI and the server.
pub use command::{Checked, Command};
pub use context::Context;
pub use invariant::{Part, Violation};
pub use ledger::{Ledger, Options};
pub use log::{LogEngine, LogError, LogReader};
pub use mcp::tools::McpTool;
pub use reader::{LedgerRead, LogView};
pub use record::{Body, Record, StoredRecord};
pub use resolver::Resolvers;
pub use sequencer::{Ack, AppendError};
pub use vocab::{OutcomeKind, ProblemCode};
pub use writers::Writer;
