//! Fixed workloads for the instruction-count guard (`tools/instructions`):
//! each runs alone in a process that valgrind's callgrind counts. Same binary,
//! same input, same count (up to thread scheduling, a few percent), whatever
//! else the machine is doing; so the guard can fail on a regression without
//! timing anything.

use std::path::Path;

use parley::command::Command;
use parley::ledger::Ledger;
use parley::reader::LedgerRead;
use parley::reader::LogView;
use parley::replay::Replayer;
use parley::resolver::Resolvers;

use crate::store::{command, options, setup, Pipeline};

/// Runs workload `name`: `append N`, `decide N` or `replay DIR`.
pub fn run(args: &[String]) {
    let n = |i: usize| -> u64 { args.get(i).and_then(|v| v.parse().ok()).unwrap_or(10_000) };
    match args.first().map(String::as_str) {
        // The append path alone: facts into an in-memory ledger (no fsync).
        Some("append") => {
            let ledger = Ledger::in_memory(parley::Options::default()).expect("ledger");
            let (_, text) = crate::append::sample();
            let mut pipe = Pipeline::new(&ledger, 1024);
            for i in 0..n(1) {
                pipe.submit(crate::append::command("pricing", i, &text));
            }
            pipe.drain();
            ledger.close().expect("close");
        }
        // The store's mix (intentions decided by the resolver, facts).
        Some("decide") => {
            let ledger = Ledger::in_memory(options()).expect("ledger");
            let mut pipe = Pipeline::new(&ledger, 1024);
            for line in setup(100) {
                pipe.submit(Command::parse(&line).expect("setup"));
            }
            for i in 0..n(1) {
                pipe.submit(Command::parse(&command(i, 100)).expect("command"));
            }
            pipe.drain();
            ledger.close().expect("close");
        }
        // `parley replay` of a ledger written beforehand.
        Some("replay") => {
            let dir = Path::new(args.get(1).expect("replay DIR"));
            let (view, _) = LogView::open(dir).expect("view");
            let mut replayer = Replayer::new(Resolvers::released());
            view.scan(1, view.head_seq(), &mut |r| {
                replayer.feed(&r).expect("replay matches");
                Ok(())
            })
            .expect("scan");
            replayer.finish().expect("nothing owed");
        }
        other => panic!("unknown guard workload {other:?}: append N | decide N | replay DIR"),
    }
}
