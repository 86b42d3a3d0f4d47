//! Figures 6 and 7 on the large ledger: audit of one sku's price (in this
//! process and as a `parley audit` call), restart until the ledger accepts a
//! write, and the writer's resident memory as the log grows.

use std::path::Path;
use std::process::Command as Process;
use std::time::Instant;

use parley::audit::audit;
use parley::entity::EntityRef;
use parley::ledger::Ledger;
use parley::reader::LogView;

use crate::http::parley_bin;
use crate::stats::Rounds;
use crate::store::options;

/// The skus whose price the audits read: price intentions land on
/// (i * 7919) mod skus for i = 0, 5 mod 10.
pub fn audited_skus(skus: u64) -> Vec<String> {
    [0u64, 5, 10, 15]
        .iter()
        .map(|i| format!("S{}", (i * 7919) % skus))
        .collect()
}

pub struct Audit {
    pub in_process_ms: Rounds,
    pub cli_ms: Rounds,
    pub changes: usize,
}

pub fn audit_figure(dir: &Path, skus: u64, rounds: usize) -> Audit {
    let (mut inproc, mut cli) = (Vec::new(), Vec::new());
    let mut changes = 0;
    let d = dir.to_str().expect("utf-8 path");
    for _ in 0..rounds {
        for sku in audited_skus(skus) {
            let start = Instant::now();
            let (view, _) = LogView::open(dir).expect("open view");
            let report = audit(&view, &EntityRef::Sku(sku.clone()), Some("price")).expect("audit");
            inproc.push(start.elapsed().as_secs_f64() * 1e3);
            changes = changes.max(report.changes.len());

            let start = Instant::now();
            let out = Process::new(parley_bin())
                .args([
                    "audit",
                    "--data",
                    d,
                    &format!("sku:{sku}"),
                    "price",
                    "--json",
                ])
                .output()
                .expect("run parley audit");
            cli.push(start.elapsed().as_secs_f64() * 1e3);
            assert!(
                out.status.success(),
                "parley audit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Audit {
        in_process_ms: Rounds::new(inproc),
        cli_ms: Rounds::new(cli),
        changes,
    }
}

/// Child process: opens the ledger, appends one fact and waits for it to be
/// durable; prints `open_s rss_kib from_snapshot`.
pub fn restart_child(dir: &Path) {
    let start = Instant::now();
    let (ledger, report) = Ledger::open(dir, options()).expect("open");
    // Scripted time: the write carries the head's time (no deferral comes due).
    let mut first = crate::append::command("inventory", 1, "restart");
    first.envelope.at_ms = ledger.head().map(|h| h.recorded_at_ms);
    ledger.append(first).expect("first write after restart");
    let secs = start.elapsed().as_secs_f64();
    let rss = crate::stats::proc_status_kib("VmRSS");
    ledger.close().expect("close");
    println!("{secs} {rss} {}", report.context_from_snapshot.is_some());
}

pub struct Restart {
    pub seconds: Rounds,
    /// One blake3 pass over every byte of `log/`, every core, each round.
    pub hash_s: Rounds,
    pub log_mib: f64,
    pub rss_mib: f64,
    pub from_snapshot: bool,
}

pub fn restart_figure(dir: &Path, rounds: usize) -> Restart {
    let (mut secs, mut rss, mut snap) = (Vec::new(), 0.0, false);
    let (mut hashes, mut log_bytes) = (Vec::new(), 0);
    for _ in 0..rounds {
        let (s, bytes) = hash_log(&dir.join("log"));
        hashes.push(s);
        log_bytes = bytes;
        let out = Process::new(std::env::current_exe().expect("own path"))
            .args(["restart-child", dir.to_str().expect("utf-8 path")])
            .output()
            .expect("restart child");
        assert!(
            out.status.success(),
            "restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        secs.push(f[0].parse().expect("seconds"));
        rss = f[1].parse::<f64>().expect("rss") / 1024.0;
        snap = f[2] == "true";
    }
    Restart {
        seconds: Rounds::new(secs),
        hash_s: Rounds::new(hashes),
        log_mib: log_bytes as f64 / (1024.0 * 1024.0),
        rss_mib: rss,
        from_snapshot: snap,
    }
}

/// The baseline of a restart: one blake3 pass over every byte of the files
/// in `log_dir` (the bytes a restart vouches for), with blake3's SIMD
/// hashing on every core, files shared out among the threads as `b3sum`
/// over many files would; (seconds, bytes).
fn hash_log(log_dir: &Path) -> (f64, u64) {
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let mut files: Vec<_> = std::fs::read_dir(log_dir)
        .expect("read log/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let (next, bytes) = (AtomicUsize::new(0), AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut f = std::fs::File::open(path).expect("open a log file");
                    let mut h = blake3::Hasher::new();
                    loop {
                        let n = f.read(&mut buf).expect("read a log file");
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    std::hint::black_box(h.finalize());
                }
            });
        }
    });
    (start.elapsed().as_secs_f64(), bytes.into_inner())
}
