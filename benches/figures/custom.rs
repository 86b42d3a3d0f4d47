//! Figure 10: the cost of the store's own guards. The store's mix of
//! commands (figure `decide` of the instruction guard: price intentions,
//! notifications, competitor prices, stock movements) through an in-memory
//! ledger, under the default rules and under the default rules plus every
//! example guard of `rules/examples/`, rounds interleaved: commands per
//! second both ways.

use std::time::Instant;

use parley::command::Command;
use parley::ledger::{Ledger, Options};

use crate::stats::Rounds;
use crate::store::{command, options, setup, Pipeline};

pub struct Custom {
    /// Commands per second under the default rules.
    pub without: Rounds,
    /// The same with the example guards.
    pub with: Rounds,
    /// How many guards were installed.
    pub guards: usize,
    pub commands: u64,
}

/// The default rules followed by every example guard.
fn with_examples() -> (String, usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("rules/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut text = parley::rules::DEFAULT_RULES.to_owned();
    for f in &files {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(f).expect("an example guard"));
    }
    (text, files.len())
}

/// Commands per second of `n` commands of the mix under `rules`.
fn round(rules: &str, n: u64) -> f64 {
    let opts = Options {
        initial_rules: Some(rules.to_owned()),
        ..options()
    };
    let ledger = Ledger::in_memory(opts).expect("ledger");
    let mut pipe = Pipeline::new(&ledger, 1024);
    for line in setup(100) {
        pipe.submit(Command::parse(&line).expect("setup"));
    }
    pipe.drain();
    let start = Instant::now();
    for i in 0..n {
        pipe.submit(Command::parse(&command(i, 100)).expect("command"));
    }
    pipe.drain();
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    ledger.close().expect("close");
    per_s
}

pub fn figure(rounds: usize, n: u64) -> Custom {
    let (rules, guards) = with_examples();
    let default = parley::rules::DEFAULT_RULES;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(round(default, n));
        with.push(round(&rules, n));
    }
    Custom {
        without: Rounds::new(without),
        with: Rounds::new(with),
        guards,
        commands: n,
    }
}
