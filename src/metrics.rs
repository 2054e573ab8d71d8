//! Prometheus metrics (`GET /metrics`, OpenMetrics text): what the server counts as it runs,
//! the live gauges read at scrape time, and the process's own RSS, CPU and open files.
//! Each [`Metrics`] has its own registry, so several servers in one process (tests) never
//! share counters.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

type HandlerHistograms = Family<EventLabel, Histogram, fn() -> Histogram>;

fn handler_histogram() -> Histogram {
    // 10 µs … ~2.6 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_received: Family<EventLabel, Counter>,
    events_rejected: Family<CodeLabel, Counter>,
    relayed: Family<KindLabel, Counter>,
    chat_messages: Counter,
    joins: Counter,
    leaves: Counter,
    rate_limited: Family<ClassLabel, Counter>,
    slow_consumers: Counter,
    handler_seconds: HandlerHistograms,
    sockets: Family<TransportLabel, Gauge>,
    rooms: Gauge,
    participants: Gauge,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
    webhook_dropped: Family<ReasonLabel, Counter>,
    webhook_queue_depth: Gauge,
    /// Serialises scrapes, since the live gauges are set just before encoding.
    scrape: Mutex<()>,
}

/// Live values read at scrape time.
pub struct Live {
    pub rooms: usize,
    pub participants: usize,
    pub sockets_polling: usize,
    pub sockets_websocket: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            events_received: Family::default(),
            events_rejected: Family::default(),
            relayed: Family::default(),
            chat_messages: Counter::default(),
            joins: Counter::default(),
            leaves: Counter::default(),
            rate_limited: Family::default(),
            slow_consumers: Counter::default(),
            handler_seconds: Family::new_with_constructor(handler_histogram),
            sockets: Family::default(),
            rooms: Gauge::default(),
            participants: Gauge::default(),
            webhook_deliveries: Family::default(),
            webhook_dropped: Family::default(),
            webhook_queue_depth: Gauge::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "prolitemeet_events_received",
            "Client events received, by event name",
            metrics.events_received.clone(),
        );
        registry.register(
            "prolitemeet_events_rejected",
            "Client events refused with an error, by error code",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "prolitemeet_signaling_relayed",
            "Signaling messages relayed, by kind (offer, answer, ice, connection-request)",
            metrics.relayed.clone(),
        );
        registry.register(
            "prolitemeet_chat_messages",
            "Chat messages sent",
            metrics.chat_messages.clone(),
        );
        registry.register(
            "prolitemeet_joins",
            "Participants who joined a room",
            metrics.joins.clone(),
        );
        registry.register(
            "prolitemeet_leaves",
            "Participants who left a room (leave, switch or disconnect)",
            metrics.leaves.clone(),
        );
        registry.register(
            "prolitemeet_rate_limit_hits",
            "Events refused by a per-socket rate limit, by class",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "prolitemeet_slow_consumers_evicted",
            "Sockets disconnected because their outgoing buffer was full",
            metrics.slow_consumers.clone(),
        );
        registry.register(
            "prolitemeet_handler_duration_seconds",
            "Time from an event's turn to its answer, by event name",
            metrics.handler_seconds.clone(),
        );
        registry.register(
            "prolitemeet_sockets_connected",
            "Socket.IO connections open, by transport",
            metrics.sockets.clone(),
        );
        registry.register(
            "prolitemeet_rooms",
            "Rooms in existence",
            metrics.rooms.clone(),
        );
        registry.register(
            "prolitemeet_participants",
            "Participants in rooms",
            metrics.participants.clone(),
        );
        // The webhook metrics carry the names issue 21 gives them, without the project's prefix,
        // so dashboards written from that contract find them.
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered: a 2xx; rejected: another status; timeout; unreachable)",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_dropped",
            "Webhook events dropped, by reason (queue_full: the oldest, when WEBHOOK_QUEUE_MAX was reached; max_attempts: refused WEBHOOK_MAX_ATTEMPTS times)",
            metrics.webhook_dropped.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook events waiting for delivery on this instance, all endpoints together",
            metrics.webhook_queue_depth.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            ..metrics
        }
    }

    pub fn event_received(&self, event: &str) {
        self.events_received
            .get_or_create(&EventLabel {
                event: event.to_owned(),
            })
            .inc();
    }

    pub fn event_rejected(&self, code: &str) {
        self.events_rejected
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn relayed(&self, kind: &str) {
        self.relayed
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn chat_message(&self) {
        self.chat_messages.inc();
    }

    pub fn joined(&self) {
        self.joins.inc();
    }

    pub fn left(&self) {
        self.leaves.inc();
    }

    pub fn rate_limited(&self, class: &str) {
        self.rate_limited
            .get_or_create(&ClassLabel {
                class: class.to_owned(),
            })
            .inc();
    }

    pub fn slow_consumer(&self) {
        self.slow_consumers.inc();
    }

    /// One webhook delivery attempt ended with `outcome`.
    pub fn webhook_attempt(&self, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn webhook_dropped(&self, reason: &str, events: u64) {
        self.webhook_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(events);
    }

    /// Webhook events queued (positive) or gone from the queue (negative).
    pub fn webhook_queued(&self, change: i64) {
        self.webhook_queue_depth.inc_by(change);
    }

    pub fn handled(&self, event: &str, took: Duration) {
        self.handler_seconds
            .get_or_create(&EventLabel {
                event: event.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The whole exposition, with the live gauges set to `live`.
    pub fn render(&self, live: &Live) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.rooms.set(as_i64(live.rooms));
        self.participants.set(as_i64(live.participants));
        for (transport, count) in [
            ("polling", live.sockets_polling),
            ("websocket", live.sockets_websocket),
        ] {
            self.sockets
                .get_or_create(&TransportLabel {
                    transport: transport.to_owned(),
                })
                .set(as_i64(count));
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        text
    }
}

/// The same exposition in the classic Prometheus text format (0.0.4), for scrapers and
/// parsers that do not ask for OpenMetrics: no `# EOF`/`# UNIT` lines, and a counter
/// family is named like its samples (`…_total`).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `process_resident_memory_bytes`, `process_cpu_seconds_total` and `process_open_fds`,
/// read from `/proc/self` at scrape time (Linux; absent elsewhere).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = process_stats();
        if let Some(rss) = stats.resident_bytes {
            let gauge = ConstGauge::new(as_i64(rss as usize));
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the server process",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        if let Some(cpu) = stats.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "CPU time (user + system) used by the server process",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        if let Some(fds) = stats.open_fds {
            let gauge = ConstGauge::new(as_i64(fds));
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "File descriptors open in the server process",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<usize>,
}

/// Reads the process's own figures from `/proc/self`.
pub fn process_stats() -> ProcessStats {
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kb| kb * 1024)
        });
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may contain spaces) start after the last ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / clock_ticks_per_second())
        });
    let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count);
    ProcessStats {
        resident_bytes,
        cpu_seconds,
        open_fds,
    }
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux platform this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new();
        m.event_received("join-room");
        m.event_received("join-room");
        m.event_rejected("invalid_payload");
        m.relayed("offer");
        m.handled("join-room", Duration::from_micros(50));
        let text = m.render(&Live {
            rooms: 2,
            participants: 3,
            sockets_polling: 1,
            sockets_websocket: 4,
        });
        assert!(
            text.contains("prolitemeet_events_received_total{event=\"join-room\"} 2"),
            "{text}"
        );
        assert!(text.contains("prolitemeet_events_rejected_total{code=\"invalid_payload\"} 1"));
        assert!(text.contains("prolitemeet_signaling_relayed_total{kind=\"offer\"} 1"));
        assert!(text.contains("prolitemeet_rooms 2"));
        assert!(text.contains("prolitemeet_sockets_connected{transport=\"websocket\"} 4"));
        assert!(text.contains("prolitemeet_handler_duration_seconds_count{event=\"join-room\"} 1"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_open_fds "));
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let classic = to_prometheus_text(&text);
        assert!(
            classic.contains("# TYPE prolitemeet_events_received_total counter\n"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(classic.contains("# TYPE prolitemeet_rooms gauge\n"));
        assert!(!classic.contains("# EOF"));
    }
}
