//! `/metrics` in the Prometheus text format (the `prometheus-client` crate):
//! commands by result, decisions by rule and outcome, command latency,
//! rejected requests by reason, records appended and per batch, stream
//! subscribers, and, read when scraped, the write queue's depth, the
//! durable head and the open escalations.

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
        registry.register(
            "write_queue_depth",
            "Commands waiting for the writer",
            m.queue_depth.clone(),
        );
        registry.register("head_seq", "The durable head's seq", m.head_seq.clone());
        registry.register(
            "open_escalations",
            "Escalations waiting for a person",
            m.open_escalations.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
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
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
