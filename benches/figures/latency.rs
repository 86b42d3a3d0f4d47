//! Figure 2: durable decision latency, embedded, open loop. A pacer submits
//! intentions at a fixed rate with as many facts between them; a collector
//! waits for each acknowledgement (decision durable). Latency runs from the
//! command's scheduled time, so a stall of the pacer counts against parley
//! (no coordinated omission).

use std::path::Path;
use std::time::{Duration, Instant};

use parley::command::Command;
use parley::ledger::{Ledger, Ticket};

use crate::stats::percentile;
use crate::store::{options, setup, Pipeline, T0_MS};

/// The disk's own latency: one 4 KiB pwrite + fdatasync to a preallocated
/// file every `interval`, for `secs`; (p50, p99, p999) in µs.
pub fn raw_fdatasync(dir: &Path, interval: Duration, total: Duration) -> (u64, u64, u64) {
    let mut lat = probe_latency(dir, Prep::Fallocate, interval, total);
    (
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 0.999),
    )
}

pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub intentions: usize,
    pub achieved_per_s: f64,
}

fn intention(i: u64, skus: u64) -> String {
    let s = (i * 7919) % skus;
    let agent = if i % 2 == 0 {
        "pricing"
    } else {
        "merchandising"
    };
    format!(
        r#"{{"producer":"{agent}","at_ms":{},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S{s}","price_minor":{}}},"reasoning":"r","impact":{{"revenue_minor":{},"margin_minor":1}},"objective":"margin-protection"}}}}"#,
        T0_MS + 1000 + i,
        3000 + (i % 2000),
        (i % 900) * 100
    )
}

fn fact(i: u64, skus: u64) -> String {
    format!(
        r#"{{"producer":"inventory","at_ms":{},"kind":"stock_changed","sku":"S{}","stock":{}}}"#,
        T0_MS + 1000 + i,
        (i * 104_729) % skus,
        i % 500
    )
}

/// Runs `warmup` then `measure` at `per_s` intentions a second (and as many
/// facts); latencies of the intentions in the measured window.
pub fn figure(dir: &Path, per_s: u64, warmup: Duration, measure: Duration) -> Latency {
    let _ = std::fs::remove_dir_all(dir);
    let (ledger, _) = Ledger::open(dir, options()).expect("open");
    self::measure(ledger, per_s, warmup, measure)
}

/// As `figure`, on a ledger the caller opened (any engine), which it closes.
pub fn measure(ledger: Ledger, per_s: u64, warmup: Duration, measure: Duration) -> Latency {
    let skus = 1000;
    {
        let mut pipe = Pipeline::new(&ledger, 1024);
        for line in setup(skus) {
            pipe.submit(Command::parse(&line).expect("setup"));
        }
        pipe.drain();
    }
    // Commands are parsed before the clock starts: the pacer only submits.
    let total = ((warmup + measure).as_secs_f64() * per_s as f64) as u64;
    let commands: Vec<(Command, Command)> = (0..total)
        .map(|i| {
            (
                Command::parse(&intention(i, skus)).expect("intention"),
                Command::parse(&fact(i, skus)).expect("fact"),
            )
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / per_s as f64);
    let (tx, rx) = crossbeam_channel::bounded::<(Instant, Ticket, Ticket)>(1 << 20);
    let warm_until = warmup.as_secs_f64();
    let trace = std::env::var_os("PARLEY_BENCH_TRACE").is_some();
    let collector = std::thread::spawn(move || {
        let mut lat = Vec::new();
        let mut first: Option<Instant> = None;
        let mut last = None;
        for (scheduled, intent, fact) in rx {
            let t0 = *first.get_or_insert(scheduled);
            let ack = intent.wait();
            let done = Instant::now();
            fact.wait().expect("fact appended");
            ack.expect("intention decided");
            if scheduled.duration_since(t0).as_secs_f64() >= warm_until {
                lat.push(done.duration_since(scheduled).as_micros() as u64);
                // PARLEY_BENCH_TRACE=1: when the slow ones were due (stalls).
                if trace && lat.last().is_some_and(|l| *l > 5000) {
                    let at_s = scheduled.duration_since(t0).as_secs_f64();
                    eprintln!("slow: due at {at_s:.3} s, {} us", lat.last().unwrap_or(&0));
                }
                last = Some(done);
            }
        }
        (lat, first, last)
    });
    let start = Instant::now();
    let mut pending = commands.into_iter().enumerate().peekable();
    while pending.peek().is_some() {
        let now = Instant::now();
        while let Some((k, _)) = pending.peek() {
            let scheduled = start + interval * *k as u32;
            if scheduled > now {
                break;
            }
            let (_, (intent, fact)) = pending.next().expect("peeked");
            let a = ledger.submit(intent).expect("submit intention");
            let b = ledger.submit(fact).expect("submit fact");
            tx.send((scheduled, a, b)).expect("collector alive");
        }
        // Commands due while the pacer sleeps are sent on waking, late:
        // their latency counts from when they were due.
        std::thread::sleep(Duration::from_micros(50));
    }
    drop(tx);
    let (mut lat, _, last) = collector.join().expect("collector");
    let span = last.map_or(1.0, |l| l.duration_since(start).as_secs_f64() - warm_until);
    ledger.close().expect("close");
    let n = lat.len();
    Latency {
        p50_us: percentile(&mut lat, 0.50),
        p99_us: percentile(&mut lat, 0.99),
        p999_us: percentile(&mut lat, 0.999),
        intentions: n,
        achieved_per_s: n as f64 / span,
    }
}

/// How the probe's file is made and written.
#[derive(Clone, Copy, Debug)]
enum Prep {
    /// posix_fallocate: unwritten extents (what segments use today).
    Fallocate,
    /// Written with zeros and fsynced before use: overwrites need no
    /// extent conversion at fdatasync.
    Zeroed,
    /// Zeroed, and written with O_DIRECT (aligned 4 KiB buffers).
    ZeroedDirect,
}

fn probe_file(path: &Path, bytes: u64, prep: Prep) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match prep {
        Prep::Fallocate => return crate::append::preallocated(path, bytes),
        Prep::Zeroed | Prep::ZeroedDirect => {
            let _ = std::fs::remove_file(path);
            let f = std::fs::File::create(path).expect("probe file");
            let zeros = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                std::io::Write::write_all(&mut &f, &zeros[..n]).expect("zero fill");
                left -= n as u64;
            }
            f.sync_all().expect("sync");
            f
        }
    };
    drop(file);
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true);
    if matches!(prep, Prep::ZeroedDirect) {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path).expect("reopen probe file")
}

/// 4 KiB pwrite + fdatasync every `interval` for `total`; latencies in µs.
fn probe_latency(dir: &Path, prep: Prep, interval: Duration, total: Duration) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("probe-latency.bin");
    let n = (total.as_secs_f64() / interval.as_secs_f64()) as u64;
    let file = probe_file(&path, n * 4096 + 4096, prep);
    // An aligned 4 KiB block for O_DIRECT.
    let backing = vec![0x5au8; 8192];
    let skip = backing.as_ptr().align_offset(4096);
    let buf = &backing[skip..skip + 4096];
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n as usize);
    for k in 0..n {
        let due = start + interval * k as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        file.write_all_at(buf, k * 4096).expect("pwrite");
        file.sync_data().expect("fdatasync");
        lat.push(due.elapsed().as_micros() as u64);
    }
    let _ = std::fs::remove_file(&path);
    lat
}

/// Back-to-back 64 KiB pwrite + fdatasync (a batch of 256 frames of 256 B):
/// batches per second.
fn probe_throughput(dir: &Path, prep: Prep, batches: u64) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = dir.join("probe-batches.bin");
    let file = probe_file(&path, batches * 65536 + 4096, prep);
    let backing = vec![0x5au8; 65536 + 4096];
    let skip = backing.as_ptr().align_offset(4096);
    let buf = &backing[skip..skip + 65536];
    let start = Instant::now();
    for k in 0..batches {
        file.write_all_at(buf, k * 65536).expect("pwrite");
        file.sync_data().expect("fdatasync");
    }
    let rate = batches as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

/// `figures disk-probe DIR`: the disk's fdatasync tail and batch rate for
/// each way of preparing a file, rounds interleaved (issue: what moves the
/// decision p99). Prints one line per round and way, then the medians.
pub fn disk_probe(dir: &Path) {
    std::fs::create_dir_all(dir).expect("probe dir");
    let preps = [Prep::Fallocate, Prep::Zeroed, Prep::ZeroedDirect];
    let mut results: Vec<(Vec<u64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); preps.len()];
    for round in 0..3 {
        for (i, prep) in preps.iter().enumerate() {
            let mut lat =
                probe_latency(dir, *prep, Duration::from_millis(1), Duration::from_secs(4));
            let (p50, p99, p999) = (
                percentile(&mut lat, 0.5),
                percentile(&mut lat, 0.99),
                percentile(&mut lat, 0.999),
            );
            let rate = probe_throughput(dir, *prep, 2000);
            println!("round {round} {prep:?}: 4 KiB every 1 ms p50 {p50} µs p99 {p99} µs p99.9 {p999} µs; 64 KiB batches back to back {rate:.0}/s");
            results[i].0.push(p99);
            results[i].1.push(rate);
        }
    }
    for (prep, (p99s, rates)) in preps.iter().zip(&mut results) {
        p99s.sort_unstable();
        rates.sort_by(f64::total_cmp);
        println!(
            "median {prep:?}: p99 {} µs, {:.0} batches/s",
            p99s[1], rates[1]
        );
    }
}
