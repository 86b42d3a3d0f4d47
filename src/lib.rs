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

pub mod answer;
pub mod audit;
pub mod bounds;
pub mod cli;
pub mod client;
pub mod command;
pub mod context;
pub mod demo;
pub mod derived;
pub mod digest;
pub mod effect;
pub mod entity;
pub mod escalations;
pub mod explain;
pub mod export;
pub mod fuzzing;
pub mod ledger;
pub mod log;
pub mod mcp;
pub mod reader;
pub mod record;
pub mod render;
pub mod repair;
pub mod replay;
pub mod resolver;
pub mod rules;
pub mod schema;
pub mod sequencer;
pub mod server;
pub mod time;
pub mod value;
pub mod verify;
pub mod vocab;
pub mod whatif;
pub mod workflow;
pub mod writers;

pub use command::Command;
pub use ledger::{Ledger, Options};
