//! The benchmark ledgers: a store's days at scale over a fixed set of skus,
//! written through the sequencer like any user's commands.

use std::collections::VecDeque;
use std::path::Path;

use parley::command::Command;
use parley::ledger::{Ledger, Options};

/// Genesis time of every benchmark ledger (scripted time line).
pub const T0_MS: u64 = 1_764_147_600_000;

pub fn options() -> Options {
    Options {
        genesis_at_ms: Some(T0_MS),
        timeline: parley::record::Timeline::Scripted,
        first_admin: "ops".into(),
        ledger_id: Some("bench".into()),
        snapshot_every: crate::stats::env_or(
            "PARLEY_BENCH_SNAPSHOT_EVERY",
            parley::sequencer::SNAPSHOT_EVERY,
        ),
        ..Options::default()
    }
}

/// The agents and the catalog of `skus` skus.
pub fn setup(skus: u64) -> Vec<String> {
    let mut lines = Vec::new();
    // Every producer of the day is registered in its domain: resolver
    // version 2 admits store facts by domain (the [writers] table).
    for (agent, priority) in [
        ("pricing", 50),
        ("merchandising", 40),
        ("customer-service", 30),
        ("inventory", 20),
        ("competitor-tracking", 10),
        ("orders", 25),
    ] {
        lines.push(format!(
            r#"{{"producer":"ops","at_ms":{T0_MS},"kind":"agent_registered","profile":{{"agent":"{agent}","domain":"{agent}","priority":{priority}}}}}"#
        ));
    }
    for s in 0..skus {
        lines.push(format!(
            r#"{{"producer":"merchandising","at_ms":{T0_MS},"kind":"catalog","sku":"S{s}","category":"c{}","cost_minor":{},"price_minor":{},"stock":100,"lifecycle":"active"}}"#,
            s % 20,
            2000 + s % 1000,
            4000 + 2 * (s % 1000)
        ));
    }
    lines
}

/// The i-th command of the store's day: per ten commands two price
/// intentions (one in a hundred over the escalation threshold), one customer
/// notification, two competitor prices and five stock movements.
pub fn command(i: u64, skus: u64) -> String {
    let at = T0_MS + 1000 + i * 100;
    let s = (i * 7919) % skus;
    match i % 10 {
        0 | 5 => {
            let (agent, objective) = if i % 20 == 0 {
                ("pricing", "margin-protection")
            } else {
                ("merchandising", "sales-growth")
            };
            let revenue = if (i / 5) % 100 == 0 {
                600_000
            } else {
                ((i % 900) * 100) as i64
            };
            format!(
                r#"{{"producer":"{agent}","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":{revenue},"margin_minor":1}},"objective":"{objective}"}}}}"#,
                2100 + (i % 3000)
            )
        }
        1 => format!(
            r#"{{"producer":"customer-service","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"notify_customer","customer":"C{}","order":"O{}","topic":"delay"}},"reasoning":"r","impact":{{"revenue_minor":0,"margin_minor":0}},"objective":"customer-experience"}}}}"#,
            i % 5000,
            i % 7000
        ),
        2 | 3 => format!(
            r#"{{"producer":"competitor-tracking","at_ms":{at},"kind":"competitor_price","sku":"S{s}","competitor":"rival","price_minor":{}}}"#,
            3000 + i % 999
        ),
        _ => format!(
            r#"{{"producer":"inventory","at_ms":{at},"kind":"stock_changed","sku":"S{s}","stock":{}}}"#,
            i % 500
        ),
    }
}

/// The store whose order book and customer list grow with the log: the
/// same day as [`command`], but one command in ten (the last stock movement)
/// places a new order, by a new customer every second order.
pub fn command_with_orders(i: u64, skus: u64) -> String {
    if i % 10 != 9 {
        return command(i, skus);
    }
    let at = T0_MS + 1000 + i * 100;
    format!(
        r#"{{"producer":"orders","at_ms":{at},"kind":"order_placed","order":"O{}","customer":"C{}","total_minor":{}}}"#,
        i / 10,
        i / 20,
        1000 + i % 9000
    )
}

/// Submits commands keeping at most `window` unacknowledged.
pub struct Pipeline<'a> {
    ledger: &'a Ledger,
    tickets: VecDeque<parley::ledger::Ticket>,
    window: usize,
}

impl<'a> Pipeline<'a> {
    pub fn new(ledger: &'a Ledger, window: usize) -> Pipeline<'a> {
        Pipeline {
            ledger,
            tickets: VecDeque::with_capacity(window),
            window,
        }
    }

    pub fn submit(&mut self, command: Command) {
        self.tickets
            .push_back(self.ledger.submit(command).expect("submit"));
        if self.tickets.len() >= self.window {
            self.tickets.pop_front().unwrap().wait().expect("append");
        }
    }

    pub fn drain(&mut self) {
        for t in self.tickets.drain(..) {
            t.wait().expect("append");
        }
    }
}

/// Writes a ledger of at least `records` records over `skus` skus into `dir`;
/// calls `checkpoint(head)` each time the head passes one of `marks`, after
/// every earlier command was acknowledged. Returns the command count.
pub fn generate(
    dir: &Path,
    (records, skus, orders): (u64, u64, bool),
    marks: &[u64],
    checkpoint: &mut dyn FnMut(u64),
) -> u64 {
    let next: fn(u64, u64) -> String = if orders { command_with_orders } else { command };
    let (ledger, _) = Ledger::open(dir, options()).expect("open the bench ledger");
    let mut pipe = Pipeline::new(&ledger, 4096);
    for line in setup(skus) {
        pipe.submit(Command::parse(&line).expect("setup command"));
    }
    let mut marks = marks.iter().copied().peekable();
    let mut i = 0u64;
    loop {
        let head = ledger.head().map_or(0, |h| h.seq);
        if let Some(&m) = marks.peek() {
            if head + 2 * pipe.tickets.len() as u64 >= m {
                pipe.drain();
                let head = ledger.head().map_or(0, |h| h.seq);
                if head >= m {
                    checkpoint(head);
                    marks.next();
                    continue;
                }
            }
        }
        if head >= records {
            break;
        }
        // A burst of 1024 commands between head checks.
        for _ in 0..1024 {
            pipe.submit(Command::parse(&next(i, skus)).expect("bench command"));
            i += 1;
        }
    }
    pipe.drain();
    ledger.close().expect("close the bench ledger");
    i
}
