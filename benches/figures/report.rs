//! The report: every figure's JSON key, its median, spread and rounds, its
//! target and whether this run met it; printed as JSON and as the table
//! between the markers in BENCHMARKS.md.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::stats::{ratios, Rounds};

/// One round of figure 2: parley's decision latency, then the disk's own
/// (p50, p99, p999) in µs.
pub type LatencyRound = (crate::latency::Latency, (u64, u64, u64));

const BEGIN: &str = "<!-- figures:begin (written by tools/bench) -->";
const END: &str = "<!-- figures:end -->";

struct Row {
    figure: u8,
    key: &'static str,
    what: String,
    value: f64,
    spread: Option<f64>,
    baseline: String,
    target: &'static str,
    met: Option<bool>,
}

pub struct Report {
    rows: Vec<Row>,
    extra: Map<String, Value>,
    rounds: usize,
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": mem_kib / (1024 * 1024),
        "kernel": cmd_out("uname", &["-r"]),
        "filesystem": cmd_out("df", &["--output=fstype", env!("CARGO_MANIFEST_DIR")]).lines().last().unwrap_or("").to_owned(),
        "rustc": cmd_out("rustc", &["-V"]),
    })
}

impl Report {
    pub fn new(rounds: usize, large: u64, replay: u64, skus: u64) -> Report {
        let mut extra = Map::new();
        let dirty = !cmd_out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let commit = cmd_out("git", &["rev-parse", "--short=12", "HEAD"]);
        extra.insert(
            "commit".into(),
            json!(if dirty {
                format!("{commit}+changes")
            } else {
                commit
            }),
        );
        let command = std::env::var("PARLEY_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
        extra.insert("command".into(), json!(command));
        extra.insert(
            "date".into(),
            json!(cmd_out("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
        );
        extra.insert("machine".into(), machine());
        extra.insert("rounds".into(), json!(rounds));
        extra.insert(
            "sizes".into(),
            json!({"large_ledger_records": large, "replay_records": replay, "skus": skus}),
        );
        Report {
            rows: Vec::new(),
            extra,
            rounds,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn row(
        &mut self,
        figure: u8,
        key: &'static str,
        what: String,
        r: &Rounds,
        baseline: String,
        target: &'static str,
        met: Option<bool>,
    ) {
        self.extra.insert(format!("{key}_rounds"), json!(r.values));
        self.rows.push(Row {
            figure,
            key,
            what,
            value: r.median(),
            spread: (r.values.len() > 1).then(|| r.spread()),
            baseline,
            target,
            met,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn single(
        &mut self,
        figure: u8,
        key: &'static str,
        what: String,
        v: f64,
        baseline: String,
        target: &'static str,
        met: Option<bool>,
    ) {
        self.rows.push(Row {
            figure,
            key,
            what,
            value: v,
            spread: None,
            baseline,
            target,
            met,
        });
    }

    pub fn generated(&mut self, secs: f64, points: &[(u64, f64)]) {
        self.extra
            .insert("large_ledger_written_s".into(), json!(secs));
        self.extra
            .insert("large_ledger_rss_points".into(), json!(points));
        let (first, last) = (
            points.first().copied().unwrap_or_default(),
            points.last().copied().unwrap_or_default(),
        );
        let grows = last.1 > first.1 * 1.25;
        self.single(
            7,
            "rss_1m_mib",
            format!("writer's resident memory after {} records", first.0),
            first.1,
            String::new(),
            "follows live entities",
            None,
        );
        self.single(
            7,
            "rss_10m_mib",
            format!("the same writer after {} records (same skus)", last.0),
            last.1,
            format!("{} MiB at {} records", fmt(first.1), first.0),
            "≤ 1.25× rss_1m",
            Some(!grows),
        );
    }

    pub fn orders(&mut self, points: &[(u64, f64)]) {
        self.extra.insert("orders_rss_points".into(), json!(points));
        let (first, last) = (
            points.first().copied().unwrap_or_default(),
            points.last().copied().unwrap_or_default(),
        );
        let ratio = last.1 / first.1.max(1.0);
        self.single(
            7,
            "rss_orders_ratio",
            format!(
                "writer's resident memory after {} records over after {}, one new order (and a new customer every second order) per ten commands",
                last.0, first.0
            ),
            ratio,
            format!("{} MiB at {} records; {} MiB at {}", fmt(first.1), first.0, fmt(last.1), last.0),
            "≤ 1.5×",
            Some(ratio <= 1.5),
        );
    }

    pub fn append(&mut self, figs: &[(usize, Rounds, Rounds)]) {
        for (batch, raw, led) in figs {
            let key = if *batch == 256 {
                "append_ratio_vs_raw_256"
            } else {
                "append_ratio_vs_raw_1024"
            };
            let r = ratios(led, raw);
            let what = format!("durable append, batch {batch}: {} rec/s", fmt(led.median()));
            let met = r.median() >= 0.8;
            self.row(
                1,
                key,
                what,
                &r,
                format!("raw file {} rec/s", fmt(raw.median())),
                "≥ 0.8×",
                Some(met),
            );
            self.extra
                .insert(format!("append_{batch}_records_per_s"), json!(led.median()));
            self.extra
                .insert(format!("raw_{batch}_records_per_s"), json!(raw.median()));
        }
    }

    /// Figure 2: rounds of (parley's decision latency, the disk's probe
    /// (p50, p99, p999) in µs), interleaved.
    pub fn latency(&mut self, rounds: &[LatencyRound]) {
        assert!(!rounds.is_empty(), "at least one round");
        let of = |f: &dyn Fn(&LatencyRound) -> f64| Rounds::new(rounds.iter().map(f).collect());
        let raw = (
            of(&|r| r.1 .0 as f64),
            of(&|r| r.1 .1 as f64),
            of(&|r| r.1 .2 as f64),
        );
        self.extra.insert(
            "raw_fdatasync_us".into(),
            json!({"p50": raw.0.values, "p99": raw.1.values, "p999": raw.2.values}),
        );
        let (n, per_s) = (rounds[0].0.intentions, of(&|r| r.0.achieved_per_s).median());
        let base = |r: &Rounds| {
            format!(
                "one 4 KiB pwrite + fdatasync every 1 ms, rounds interleaved: median {} µs",
                fmt(r.median())
            )
        };
        let what = |p: &str| {
            format!("decision {p}, open loop 10 k intentions/s + 10 k facts/s ({n} intentions a round, {} /s achieved)", fmt(per_s))
        };
        let p50 = of(&|r| r.0.p50_us as f64);
        let met = p50.median() <= 500.0;
        self.row(
            2,
            "decision_p50_us",
            what("p50"),
            &p50,
            base(&raw.0),
            "≤ 500 µs",
            Some(met),
        );
        let p99 = of(&|r| r.0.p99_us as f64);
        self.row(
            2,
            "decision_p99_us",
            what("p99"),
            &p99,
            base(&raw.1),
            "",
            None,
        );
        let ratio = of(&|r| r.0.p99_us as f64 / r.1 .1.max(1) as f64);
        let met = ratio.median() <= 2.0;
        self.row(
            2,
            "decision_p99_ratio_vs_disk",
            "decision p99 over the disk's own pwrite + fdatasync p99, round by round".into(),
            &ratio,
            base(&raw.1),
            "≤ 2×",
            Some(met),
        );
        let p999 = of(&|r| r.0.p999_us as f64);
        self.row(
            2,
            "decision_p999_us",
            what("p99.9"),
            &p999,
            base(&raw.2),
            "",
            None,
        );
    }

    pub fn http(&mut self, h: &crate::http::Http) {
        let v = h.intents_per_s.median();
        self.row(
            3,
            "http_intents_per_s",
            "HTTP intentions/s, 32 keep-alive connections, load from another process".into(),
            &h.intents_per_s.clone(),
            format!("/healthz {} req/s", fmt(h.healthz_per_s.median())),
            "",
            None,
        );
        self.extra
            .insert("http_healthz_per_s".into(), json!(h.healthz_per_s.median()));
        let ratio = ratios(&h.intents_per_s, &h.healthz_per_s);
        self.row(
            3,
            "http_ratio_vs_healthz",
            "HTTP intentions/s over /healthz requests/s, same connections, same rounds".into(),
            &ratio,
            format!("/healthz {} req/s", fmt(h.healthz_per_s.median())),
            "≥ 0.3×",
            Some(ratio.median() >= 0.3),
        );
        let hooks = h.webhooks_per_s.median();
        self.row(
            3,
            "webhooks_per_s",
            "Signed Shopify deliveries acknowledged/s (HMAC checked, mapped, durable), 32 connections".into(),
            &h.webhooks_per_s.clone(),
            format!(
                "/healthz {} req/s; {:.2}× the intentions/s",
                fmt(h.healthz_per_s.median()),
                hooks / v.max(1.0)
            ),
            "≥ 0.5× http_intents_per_s",
            Some(hooks >= 0.5 * v),
        );
        self.extra.insert(
            "webhooks_ratio_vs_intents".into(),
            json!(hooks / v.max(1.0)),
        );
        self.extra.insert("http_p50_us".into(), json!(h.p50_us));
        self.single(
            3,
            "http_p99_us",
            format!(
                "HTTP intention p99 at {} /s (half of saturation, open loop; p50 {} µs)",
                fmt(h.offered_per_s),
                h.p50_us
            ),
            h.p99_us as f64,
            String::new(),
            "≤ 5000 µs",
            Some(h.p99_us <= 5000),
        );
    }

    pub fn replay(&mut self, r: &crate::replay::Replay) {
        let what = format!(
            "full replay of {} records ({} decisions re-derived, {} divergent)",
            r.records, r.decisions, r.divergent
        );
        let ok = r.divergent == 0;
        self.row(
            4,
            "replay_events_per_s",
            what,
            &r.replay_per_s,
            String::new(),
            "≥ 1000000",
            Some(ok && r.replay_per_s.median() >= 1e6),
        );
        let ratio = ratios(&r.replay_per_s, &r.chain_per_s);
        self.row(
            4,
            "replay_ratio_vs_chain",
            "replay / bare blake3 chain (one core) over the same bytes".into(),
            &ratio,
            format!("chain {} rec/s", fmt(r.chain_per_s.median())),
            "≥ 0.5×",
            Some(ok && ratio.median() >= 0.5),
        );
        self.extra
            .insert("replay_divergent".into(), json!(r.divergent));
        self.extra
            .insert("replay_decisions".into(), json!(r.decisions));
    }

    pub fn whatif(&mut self, w: &crate::replay::WhatIfFigure) {
        let what = format!("what-if, other rules, over the first records ({} intentions, {} decisions changed; same rules: {} changed)", w.intentions, w.changed, w.same_rules_changed);
        let v = w.seconds.median();
        self.row(
            5,
            "whatif_1m_s",
            what,
            &w.seconds,
            String::new(),
            "< 2 s",
            Some(v < 2.0 && w.same_rules_changed == 0),
        );
        let r = ratios(&w.seconds, &w.replay_seconds);
        self.row(
            5,
            "whatif_ratio_vs_replay",
            "what-if time over a replay's of the same records (open included both ways)".into(),
            &r,
            format!("replay {} s", fmt(w.replay_seconds.median())),
            "≤ 1.3×",
            Some(r.median() <= 1.3),
        );
        self.extra.insert(
            "whatif_same_rules_changed".into(),
            json!(w.same_rules_changed),
        );
    }

    pub fn audit(&mut self, a: &crate::durable::Audit) {
        self.row(
            6,
            "audit_10m_ms",
            format!(
                "audit of one sku's price, in process, open included ({} changes)",
                a.changes
            ),
            &a.in_process_ms,
            String::new(),
            "< 50 ms",
            Some(a.in_process_ms.median() < 50.0),
        );
        self.row(
            6,
            "audit_cli_10m_ms",
            "the same as a `parley audit` process".into(),
            &a.cli_ms,
            String::new(),
            "< 300 ms",
            Some(a.cli_ms.median() < 300.0),
        );
    }

    pub fn restart(&mut self, r: &crate::durable::Restart) {
        let what = format!("restart of the large ledger until a write is durable (context from snapshot: {}; {} MiB resident)", r.from_snapshot, fmt(r.rss_mib));
        self.row(
            7,
            "restart_10m_s",
            what,
            &r.seconds,
            String::new(),
            "≤ 1 s",
            Some(r.seconds.median() <= 1.0),
        );
        let ratio = ratios(&r.seconds, &r.hash_s);
        self.row(
            7,
            "restart_ratio_vs_hash",
            "restart time over one blake3 pass over every byte of log/".into(),
            &ratio,
            format!(
                "blake3 of log/ ({} MiB, every core) {} s",
                fmt(r.log_mib),
                fmt(r.hash_s.median())
            ),
            "≤ 1.5×",
            Some(ratio.median() <= 1.5),
        );
    }

    pub fn postgres(&mut self, p: &crate::postgres::Postgres) {
        let (led, pg) = &p.batched;
        let table_rows_per_s = pg.median();
        let r = ratios(led, pg);
        self.row(
            8,
            "postgres_ratio_batched",
            format!("parley {} rec/s at batch 256", fmt(led.median())),
            &r,
            format!(
                "PostgreSQL {} rows/s, 256 per transaction",
                fmt(pg.median())
            ),
            "≥ 4×",
            Some(r.median() >= 4.0),
        );
        for (clients, led, pg) in &p.concurrent {
            let r = ratios(led, pg);
            let (key, target, goal) = if *clients == 16 {
                ("postgres_ratio_concurrent", "≥ 5×", 5.0)
            } else {
                ("postgres_ratio_concurrent_64", "≥ 10×", 10.0)
            };
            self.row(
                8,
                key,
                format!(
                    "parley {} rec/s, {clients} producers each waiting",
                    fmt(led.median())
                ),
                &r,
                format!("PostgreSQL {} rows/s, {clients} clients", fmt(pg.median())),
                target,
                Some(r.median() >= goal),
            );
        }
        self.pg_engine(&p.engine, table_rows_per_s);
    }

    /// Figure 9: the PostgreSQL engine; batch 256 is held to the table
    /// baseline of figure 8 (the same rows written by pgbench).
    pub fn pg_engine(&mut self, e: &crate::pg_engine::PgEngine, table_rows_per_s: f64) {
        for (batch, seg, pg) in &e.append {
            let key = match batch {
                1 => "pg_append_per_s_batch1",
                16 => "pg_append_per_s_batch16",
                _ => "pg_append_per_s_batch256",
            };
            let base = format!("segment engine {} rec/s, same batch", fmt(seg.median()));
            let (target, met, baseline) = if *batch == 256 {
                let b = format!(
                    "{base}; PostgreSQL table {} rows/s (figure 8)",
                    fmt(table_rows_per_s)
                );
                (
                    "≥ the table baseline",
                    Some(pg.median() >= table_rows_per_s),
                    b,
                )
            } else {
                ("", None, base)
            };
            let what = format!("ledger on PostgreSQL, durable appends at batch {batch}");
            self.row(9, key, what, pg, baseline, target, met);
            if *batch == 256 {
                self.client_rows(e, pg);
            }
        }
        let (seg, pg) = e.decision_p99_us;
        self.single(
            9,
            "pg_decision_p99_us",
            format!(
                "decision p99 on PostgreSQL, open loop {} intentions/s + as many facts",
                e.decision_per_s
            ),
            pg as f64,
            format!("segment engine {seg} µs, same load"),
            "",
            None,
        );
        let f = &e.failover_s;
        self.row(
            9,
            "pg_failover_s",
            format!("SIGKILL of the writer to the first acknowledged write on the other node (lease {} ms)", e.lease_ms),
            f,
            String::new(),
            "≤ 5 s",
            Some(f.median() <= 5.0),
        );
    }

    /// Figure 9's second baseline: the ledger's own rows sent by a client
    /// (no fence, no sequencer, no projection), and parley's CPU share.
    fn client_rows(&mut self, e: &crate::pg_engine::PgEngine, pg: &Rounds) {
        let r = ratios(pg, &e.client_rows_per_s);
        self.row(
            9,
            "pg_append_ratio_vs_client_rows_256",
            format!(
                "ledger on PostgreSQL at batch 256 (parley using {} cores of the machine it shares with the server)",
                fmt(e.cpu_cores_batch256.median())
            ),
            &r,
            format!(
                "the same rows (the ledger's frames) sent by a client, one INSERT … unnest per 256: {} rows/s",
                fmt(e.client_rows_per_s.median())
            ),
            "",
            None,
        );
    }

    /// Figure 10: the store's mix with the example guards, against the
    /// default rules alone (same commands, same run).
    pub fn custom(&mut self, c: &crate::custom::Custom) {
        let r = ratios(&c.with, &c.without);
        self.row(
            10,
            "custom_guards_ratio",
            format!(
                "the store's mix of {} commands with the {} example guards installed: {} commands/s",
                c.commands,
                c.guards,
                fmt(c.with.median())
            ),
            &r,
            format!("default rules alone: {} commands/s", fmt(c.without.median())),
            "",
            None,
        );
    }

    pub fn finish(&mut self, secs: f64) {
        self.extra.insert("duration_s".into(), json!(secs));
    }

    pub fn json(&self) -> String {
        let mut m = self.extra.clone();
        let mut targets = Map::new();
        for r in &self.rows {
            m.insert(r.key.into(), json!(r.value));
            targets.insert(r.key.into(), json!({"figure": r.figure, "what": r.what, "spread": r.spread, "baseline": r.baseline, "target": r.target, "met": r.met}));
        }
        m.insert("figures".into(), Value::Object(targets));
        serde_json::to_string_pretty(&Value::Object(m)).expect("JSON")
    }

    pub fn markdown(&self) -> String {
        let e = &self.extra;
        let mut s = format!(
            "Run `{}` at commit `{}` on {}: {} cores, {} ({} GiB, {}), {}; {} interleaved rounds, {:.0} s in all.\n\n",
            e["command"].as_str().unwrap_or(""),
            e["commit"].as_str().unwrap_or(""),
            e["date"].as_str().unwrap_or(""),
            e["machine"]["cores"],
            e["machine"]["cpu"].as_str().unwrap_or(""),
            e["machine"]["memory_gib"],
            e["machine"]["filesystem"].as_str().unwrap_or(""),
            e["machine"]["rustc"].as_str().unwrap_or(""),
            self.rounds,
            e.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0),
        );
        s += "| # | key | median | spread | baseline (same run) | target | met | what |\n|---|---|---:|---:|---|---|---|---|\n";
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let spread = r
                .spread
                .map_or(String::new(), |v| format!("{:.0} %", v * 100.0));
            s += &format!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
                r.figure,
                r.key,
                fmt(r.value),
                spread,
                r.baseline,
                r.target,
                met,
                r.what
            );
        }
        s
    }
}

/// Replaces the table between the markers (or appends it) in `path`.
pub fn write_markdown(path: &Path, table: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let block = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(path, new)
}
