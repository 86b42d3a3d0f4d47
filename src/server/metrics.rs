//! `/metrics` in the Prometheus text format (the `prometheus-client` crate):
//! commands by result, decisions by rule and outcome, command latency,
//! rejected requests by reason, records appended and per batch, stream
//! subscribers, and, read when scraped, the write queue's depth, the
//! durable head, the open escalations and the allocator's heap (in use, and
//! free but still held: resident memory that grows while the heap in use
//! stays level is fragmentation, not a leak).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The server's instruments.
pub struct Metrics {
    registry: Registry,
    pub commands: Family<Labels, Counter>,
    pub decisions: Family<Labels, Counter>,
    pub latency_us: Histogram,
    pub rejected: Family<Labels, Counter>,
    /// Webhook deliveries by platform, topic and result.
    pub webhooks: Family<Labels, Counter>,
    pub appended: Counter,
    /// Requests that failed authentication (401).
    pub auth_failures: Counter,
    /// Requests refused (429) because their address failed too often.
    pub auth_throttled: Counter,
    pub batch_records: Histogram,
    pub subscribers: Gauge,
    queue_depth: Gauge,
    head_seq: Gauge<u64, AtomicU64>,
    open_escalations: Gauge,
    heap_in_use_bytes: Gauge<u64, AtomicU64>,
    heap_free_bytes: Gauge<u64, AtomicU64>,
}

/// The allocator's heap, bytes in use and bytes free but held by the
/// process (glibc's `mallinfo2`; `None` elsewhere).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_bytes() -> Option<(u64, u64)> {
    // SAFETY: mallinfo2 takes no arguments, returns a plain struct by value
    // and only reads the allocator's own statistics under its locks.
    let m = unsafe { libc::mallinfo2() };
    let in_use = (m.uordblks as u64).saturating_add(m.hblkhd as u64);
    Some((in_use, m.fordblks as u64))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_bytes() -> Option<(u64, u64)> {
    None
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("parley");
        let m = Metrics {
            commands: Family::default(),
            decisions: Family::default(),
            // 100 µs to about 3.3 s.
            latency_us: Histogram::new(exponential_buckets(100.0, 2.0, 16)),
            rejected: Family::default(),
            webhooks: Family::default(),
            appended: Counter::default(),
            auth_failures: Counter::default(),
            auth_throttled: Counter::default(),
            // 1 to 4096 records.
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            subscribers: Gauge::default(),
            queue_depth: Gauge::default(),
            head_seq: Gauge::default(),
            open_escalations: Gauge::default(),
            heap_in_use_bytes: Gauge::default(),
            heap_free_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "commands",
            "Commands by result (ok or the error code)",
            m.commands.clone(),
        );
        registry.register(
            "decisions",
            "Decisions answering commands, by rule and outcome",
            m.decisions.clone(),
        );
        registry.register(
            "command_latency_us",
            "From a command's arrival to its durable answer, in microseconds",
            m.latency_us.clone(),
        );
        registry.register(
            "rejected_requests",
            "Requests answered with a problem, by reason (the problem type's code) and status",
            m.rejected.clone(),
        );
        registry.register(
            "webhooks",
            "Store platform webhook deliveries, by platform, topic (as sent) and result (applied, superseded, duplicate, not_mapped)",
            m.webhooks.clone(),
        );
        registry.register(
            "appended_records",
            "Records committed while serving (commands and what they caused)",
            m.appended.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests that failed authentication (401: a missing, malformed, unknown or revoked token, or a bad webhook signature)",
            m.auth_failures.clone(),
        );
        registry.register(
            "auth_throttled",
            "Requests refused with 429 because their address failed authentication too often this minute",
            m.auth_throttled.clone(),
        );
        registry.register(
            "commit_batch_records",
            "Records per committed batch (one fdatasync each)",
            m.batch_records.clone(),
        );
        registry.register(
            "stream_subscribers",
            "Open /v1/stream connections",
            m.subscribers.clone(),
        );
        m.register_scraped(&mut registry);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The gauges set when `/metrics` is scraped. The heap's are registered
    /// only where the allocator reports them (glibc), so a scrape never
    /// shows a zero that was not measured.
    fn register_scraped(&self, registry: &mut Registry) {
        registry.register(
            "write_queue_depth",
            "Commands waiting for the writer",
            self.queue_depth.clone(),
        );
        registry.register("head_seq", "The durable head's seq", self.head_seq.clone());
        registry.register(
            "open_escalations",
            "Escalations waiting for a person",
            self.open_escalations.clone(),
        );
        if heap_bytes().is_none() {
            return;
        }
        registry.register(
            "heap_in_use_bytes",
            "The allocator's heap in use, in bytes (glibc mallinfo2)",
            self.heap_in_use_bytes.clone(),
        );
        registry.register(
            "heap_free_bytes",
            "Heap freed but still held by the process, in bytes (glibc mallinfo2)",
            self.heap_free_bytes.clone(),
        );
    }

    /// Counts a command's result.
    pub fn command(&self, result: &str) {
        self.commands
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// Counts a request answered with a problem.
    pub fn rejected(&self, reason: &str, status: u16) {
        let labels = vec![
            ("reason", reason.to_owned()),
            ("status", status.to_string()),
        ];
        self.rejected.get_or_create(&labels).inc();
    }

    /// Counts a webhook delivery. The topic is only a label when parley
    /// maps it (or `other`), so a sender cannot grow the label set.
    pub fn webhook(&self, platform: &str, topic: &str, result: &str) {
        let labels = vec![
            ("platform", platform.to_owned()),
            ("topic", topic.to_owned()),
            ("result", result.to_owned()),
        ];
        self.webhooks.get_or_create(&labels).inc();
    }

    /// Counts a committed batch.
    pub fn batch(&self, records: usize) {
        self.appended.inc_by(records as u64);
        self.batch_records.observe(records as f64);
    }

    /// Counts a decision.
    pub fn decision(&self, rule: &str, outcome: &str) {
        let labels = vec![("rule", rule.to_owned()), ("outcome", outcome.to_owned())];
        self.decisions.get_or_create(&labels).inc();
    }

    /// The text exposition, with the scrape-time gauges set first.
    pub fn render(&self, queue_depth: usize, head_seq: u64, open_escalations: usize) -> String {
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        self.head_seq.set(head_seq);
        self.open_escalations
            .set(i64::try_from(open_escalations).unwrap_or(i64::MAX));
        if let Some((in_use, free)) = heap_bytes() {
            self.heap_in_use_bytes.set(in_use);
            self.heap_free_bytes.set(free);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
