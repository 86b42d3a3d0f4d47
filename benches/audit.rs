//! `cargo bench --bench audit`
//!
//! Audit of one sku's price on a large ledger: generates PARLEY_BENCH_RECORDS
//! (default 1,000,000) records over PARLEY_BENCH_SKUS (default 10,000) skus on
//! disk through the sequencer, reopens the ledger, and times `audit(sku, price)`
//! for several skus (median of 5 runs each).

// Benchmarks measure elapsed wall time: that is their job.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use parley::audit::{audit, LedgerRead};
use parley::command::Command;
use parley::ledger::{Ledger, Options};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let records = env_or("PARLEY_BENCH_RECORDS", 1_000_000);
    let skus = env_or("PARLEY_BENCH_SKUS", 10_000);
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let data = dir.path().join("ledger");
    let t0 = 1_764_147_600_000u64;
    let start = Instant::now();
    {
        let opts = Options {
            genesis_at_ms: Some(t0),
            timeline: parley::record::Timeline::Scripted,
            first_admin: "ops".into(),
            ..Options::default()
        };
        let (ledger, _) = Ledger::open(&data, opts).unwrap();
        let mut tickets = std::collections::VecDeque::new();
        let mut submit = |line: String| {
            tickets.push_back(ledger.submit(Command::parse(&line).unwrap()).unwrap());
            if tickets.len() >= 4096 {
                tickets.pop_front().unwrap().wait().unwrap();
            }
        };
        submit(format!(
            r#"{{"producer":"ops","at_ms":{t0},"kind":"agent_registered","profile":{{"agent":"pricing","domain":"pricing","priority":50}}}}"#
        ));
        for s in 0..skus {
            submit(format!(
                r#"{{"producer":"m","at_ms":{t0},"kind":"catalog","sku":"S{s}","category":"c{}","cost_minor":1000,"price_minor":3000,"stock":100,"lifecycle":"active"}}"#,
                s % 50
            ));
        }
        let mut i = 0u64;
        while ledger.head().unwrap().seq < records {
            let at = t0 + 1000 + i * 1000;
            let s = (i * 7919) % skus;
            let line = if i % 4 == 0 {
                format!(
                    r#"{{"producer":"pricing","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":100,"margin_minor":1}},"objective":"margin-protection"}}}}"#,
                    2000 + i % 2000
                )
            } else {
                format!(
                    r#"{{"producer":"inventory","at_ms":{at},"kind":"stock_changed","sku":"S{s}","stock":{}}}"#,
                    i % 500
                )
            };
            submit(line);
            i += 1;
        }
        for t in tickets {
            t.wait().unwrap();
        }
        ledger.close().unwrap();
    }
    let gen_s = start.elapsed().as_secs_f64();
    let (ledger, _) = parley::reader::LogView::open(&data).unwrap();
    let head = ledger.head().unwrap().seq;
    println!("ledger of {head} records over {skus} skus written in {gen_s:.1} s");
    let mut all = Vec::new();
    // Intentions land on skus that are multiples of 4 (i * 7919 mod skus, i = 4k).
    for s in [0u64, 4, 4244, skus - 4] {
        let sku = parley::entity::EntityRef::Sku(format!("S{}", s % skus));
        let mut times = Vec::new();
        let mut changes = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let report = audit(&ledger, &sku, Some("price")).unwrap();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            changes = report.changes.len();
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let touches = ledger.entity_seqs(&sku).unwrap().len();
        println!("  audit {sku} price: {changes} changes from {touches} records naming it: median {:.1} ms", times[2]);
        all.push(times[2]);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    println!(
        "audit of one sku on {head} records: median {:.1} ms",
        all[all.len() / 2]
    );
}
