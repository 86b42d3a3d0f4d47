//! `tools/bench` (or `cargo bench --bench figures -- --json FILE`): every
//! performance figure of parley in one run, each against a baseline measured
//! in the same run with rounds interleaved, written as a JSON report and as the
//! table in BENCHMARKS.md. What each figure measures and its target: the
//! `FIGURES` table in report.rs and BENCHMARKS.md.
//!
//! Environment: PARLEY_BENCH_RECORDS (large ledger, default 10,000,000),
//! PARLEY_BENCH_REPLAY (records replayed, default 1,000,000), PARLEY_BENCH_SKUS
//! (10,000), PARLEY_BENCH_ROUNDS (3), PARLEY_BENCH_SECS (4, per timed round),
//! PARLEY_BENCH_MIX (commands of figure 10, default 300,000),
//! PARLEY_BENCH_OUTCOMES (records of figure 11, default 1,000,000),
//! PARLEY_BENCH_DIR (where the ledgers go, default target/bench-data),
//! PARLEY_BIN (the parley binary, default target/release/parley), PG_BIN.

// Benchmarks measure elapsed wall time and print: that is their job.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

mod append;
mod custom;
mod durable;
mod guard;
mod http;
mod latency;
mod outcomes;
mod pg_engine;
mod postgres;
mod replay;
mod report;
mod stats;
mod store;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use report::Report;
use stats::env_or;

struct Args {
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    only: Option<Vec<String>>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        json: None,
        markdown: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => a.json = Some(it.next().ok_or("--json needs a file")?.into()),
            "--markdown" => a.markdown = Some(it.next().ok_or("--markdown needs a file")?.into()),
            "--no-markdown" => a.markdown = None,
            "--only" => {
                let list = it.next().ok_or("--only needs a list like 1,4,8")?;
                a.only = Some(list.split(',').map(str::to_owned).collect());
            }
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn child_mode() -> bool {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("restart-child") => durable::restart_child(Path::new(&argv[2])),
        Some("gen-child") => {
            let (records, skus, orders) = (
                argv[3].parse().expect("records"),
                argv[4].parse().expect("skus"),
                argv[5] == "orders",
            );
            let marks: Vec<u64> = argv[6..].iter().map(|m| m.parse().expect("mark")).collect();
            let sizes = (records, skus, orders);
            store::generate(Path::new(&argv[2]), sizes, &marks, &mut |head| {
                println!("{head} {}", stats::proc_status_kib("VmRSS"));
                if std::env::var_os("PARLEY_BENCH_RSS_DETAIL").is_some() {
                    eprintln!(
                        "{head} anon {} file {}",
                        stats::proc_status_kib("RssAnon"),
                        stats::proc_status_kib("RssFile")
                    );
                }
            });
        }
        Some("guard") => guard::run(&argv[2..]),
        Some("disk-probe") => latency::disk_probe(Path::new(&argv[2])),
        Some("context-size") => {
            let (ledger, _) =
                parley::Ledger::open(Path::new(&argv[2]), store::options()).expect("open");
            let head = ledger.head().map_or(0, |h| h.seq);
            let ctx = ledger.context_at(head).expect("context");
            let (i, st) = (&ctx.intentions, &ctx.store);
            println!(
                "seq {head} snapshot {} B; intentions {} open {}; skus {} orders {} contacts {} facts {} promotions {}; precedents {}",
                ctx.to_snapshot().len(), i.iter().count(), i.open().count(),
                st.skus().count(), st.orders().count(), st.contacts().count(), st.facts().count(), st.promotions().count(), ctx.precedents.by_resolution.len()
            );
            let o = &ctx.outcomes;
            let sum =
                |f: fn(&parley::outcomes::SkuTerms) -> usize| o.skus.values().map(f).sum::<usize>();
            println!(
                "outcomes: skus {} prices {} promotions {} pieces {} windows {}; acted {} by_agent {} days {}",
                o.skus.len(), sum(|t| t.prices.len()), sum(|t| t.promotions.len()), sum(|t| t.pieces.len()),
                sum(|t| t.acted.len()), o.acted.len(), o.by_agent.values().map(|v| v.len()).sum::<usize>(), o.days.len()
            );
            ledger.close().expect("close");
        }
        _ => return false,
    }
    true
}

/// Writes the large ledger in a child process (with `orders`, the store
/// whose order book grows: `store::command_with_orders`); (seconds,
/// [(head, rss_mib)]).
fn generate(
    dir: &Path,
    (records, skus, orders): (u64, u64, bool),
    marks: &[u64],
) -> (f64, Vec<(u64, f64)>) {
    let _ = std::fs::remove_dir_all(dir);
    let start = Instant::now();
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.arg("gen-child")
        .arg(dir)
        .arg(records.to_string())
        .arg(skus.to_string())
        .arg(if orders { "orders" } else { "catalog" });
    cmd.args(marks.iter().map(u64::to_string));
    let out = cmd.output().expect("generator");
    assert!(
        out.status.success(),
        "generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let points = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (h, r) = l.split_once(' ').expect("head rss");
            (
                h.parse().expect("head"),
                r.parse::<f64>().expect("rss") / 1024.0,
            )
        })
        .collect();
    (start.elapsed().as_secs_f64(), points)
}

fn main() {
    // As the `parley` binary does at start (src/allocator.rs).
    assert!(parley::allocator::keep_large_blocks_mapped(), "mallopt");
    if std::env::args().any(|a| a == "--list") || child_mode() {
        return;
    }
    let args = args().unwrap_or_else(|e| {
        eprintln!("figures: {e}\nusage: figures [--json FILE] [--markdown FILE | --no-markdown] [--only 1,2,...]");
        std::process::exit(2)
    });
    let want = |n: &str| args.only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let root = std::env::var("PARLEY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&root).expect("bench dir");
    let rounds = env_or("PARLEY_BENCH_ROUNDS", 3) as usize;
    let secs = env_or("PARLEY_BENCH_SECS", 4);
    let (large, replay_n, skus) = (
        env_or("PARLEY_BENCH_RECORDS", 10_000_000),
        env_or("PARLEY_BENCH_REPLAY", 1_000_000),
        env_or("PARLEY_BENCH_SKUS", 10_000),
    );
    let started = Instant::now();
    let mut rep = Report::new(rounds, large, replay_n, skus);
    let big = root.join("large");
    if ["4", "5", "6", "7"].iter().any(|f| want(f)) {
        let (s, points) = generate(&big, (large, skus, false), &[replay_n, large]);
        eprintln!(
            "figures: wrote {} records in {s:.0} s",
            points.last().map_or(0, |p| p.0)
        );
        rep.generated(s, &points);
        if want("4") {
            rep.replay(&replay::figure(&big, replay_n, rounds));
        }
        if want("5") {
            rep.whatif(&replay::whatif(&big, replay_n, rounds));
        }
        if want("6") {
            rep.audit(&durable::audit_figure(&big, skus, rounds));
        }
        if want("7") {
            rep.restart(&durable::restart_figure(&big, rounds));
        }
        if std::env::var_os("PARLEY_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&big);
        }
    }
    if want("7") {
        // The store whose order book grows with the log: the writer's
        // resident memory at 1 M and at the full size.
        let dir = root.join("orders");
        let (s, points) = generate(&dir, (large, skus, true), &[replay_n, large]);
        eprintln!("figures: wrote the store with orders in {s:.0} s");
        rep.orders(&points);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if want("1") {
        rep.append(&append::figure(
            &root,
            rounds.max(5),
            env_or("PARLEY_BENCH_BATCHES", 200) as usize,
        ));
    }
    if want("2") {
        // Rounds of parley's decisions and the disk's own probe, interleaved:
        // this virtual disk's p99 moves by tens of times from minute to
        // minute, so each round's ratio pairs figures taken side by side.
        let mut rounds_of = Vec::new();
        for _ in 0..rounds {
            let lat = latency::figure(
                &root.join("latency"),
                10_000,
                Duration::from_secs(2),
                Duration::from_secs(secs * 2),
            );
            let raw =
                latency::raw_fdatasync(&root, Duration::from_millis(1), Duration::from_secs(secs));
            rounds_of.push((lat, raw));
        }
        rep.latency(&rounds_of);
    }
    if want("3") {
        rep.http(&http::figure(&root.join("http"), rounds, secs as f64));
    }
    if want("8") {
        rep.postgres(&postgres::figure(&root, rounds as u32, secs as u32));
    }
    if want("10") {
        rep.custom(&custom::figure(rounds, env_or("PARLEY_BENCH_MIX", 300_000)));
    }
    if want("11") {
        let n = env_or("PARLEY_BENCH_OUTCOMES", 1_000_000);
        rep.outcomes(&outcomes::figure(&root, n, rounds));
    }
    rep.finish(started.elapsed().as_secs_f64());
    if let Some(p) = &args.json {
        std::fs::write(p, rep.json()).expect("write the JSON report");
        eprintln!("figures: wrote {}", p.display());
    }
    if let Some(p) = &args.markdown {
        report::write_markdown(p, &rep.markdown()).expect("write BENCHMARKS.md");
        eprintln!("figures: wrote {}", p.display());
    }
    print!("{}", rep.markdown());
}
