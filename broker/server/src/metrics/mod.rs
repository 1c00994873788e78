//! What the broker tells Prometheus, and the HTTP endpoint that serves it.
//!
//! Two kinds of figures, kept apart on purpose:
//! - **Counted as it happens** ([`Metrics`]): requests, errors and latency per API,
//!   open connections and request streams. A door (the QUIC listener) records them; a
//!   second door would record into the same families under the same API names.
//!   Per-partition traffic is counted on the partition itself ([`PartitionStats`]), so it
//!   disappears with the partition instead of leaving a stale series behind.
//! - **Read when scraped** (`collect.rs`): log end, high watermark, segments and size per
//!   partition; members, generation and lag per consumer group; what each plugin did. A
//!   scrape walks the broker's state once; nothing on the request path keeps these.
//!
//! `http.rs` serves `/metrics` (Prometheus text format), `/health` (the process is up
//! and not shutting down) and `/ready` (the broker serves requests: data opened, and in a
//! cluster, a metadata quorum leader known).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod collect;
pub(crate) mod http;

pub(crate) use collect::{GroupFigures, StateCollector};

/// The API a request named, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
}

/// The API a request named and the error code it was answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub api: &'static str,
    pub code: &'static str,
}

/// Request latency buckets: 100 µs doubling to about 26 s, which spans an in-memory
/// metadata answer and a long poll that waited its whole limit.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// The figures counted as requests happen. Cheap to record: a label lookup (the labels
/// are static names, nothing is allocated) and an atomic add per request, never per
/// record.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<ApiLabels, Counter>,
    errors: Family<ApiErrorLabels, Counter>,
    latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    connections: Gauge,
    streams: Gauge,
    /// The broker-wide in-flight budget and its size, once a door has one.
    inflight: OnceLock<(Arc<tokio::sync::Semaphore>, usize)>,
    /// Whether the broker serves requests (false before the listener runs and once
    /// shutdown begins).
    serving: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            connections: Gauge::default(),
            streams: Gauge::default(),
            inflight: OnceLock::new(),
            serving: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records one answered request: its API, how long it took from the whole frame read
    /// to the answer written (`None` for a subscription, whose stream lives on), and the
    /// error code it failed with, if any.
    pub fn request(&self, api: &'static str, took: Option<Duration>, error: Option<&'static str>) {
        let labels = ApiLabels { api };
        self.requests.get_or_create(&labels).inc();
        if let Some(took) = took {
            self.latency
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        }
        if let Some(code) = error {
            self.errors
                .get_or_create(&ApiErrorLabels { api, code })
                .inc();
        }
    }

    /// A connection opened; the guard closes it in the figures when dropped.
    pub fn connection(self: &Arc<Self>) -> GaugeGuard {
        self.connections.inc();
        GaugeGuard {
            metrics: Arc::clone(self),
            which: Which::Connection,
        }
    }

    /// A request stream started; the guard ends it in the figures when dropped.
    pub fn stream(self: &Arc<Self>) -> GaugeGuard {
        self.streams.inc();
        GaugeGuard {
            metrics: Arc::clone(self),
            which: Which::Stream,
        }
    }

    /// The door's broker-wide budget of request bytes held in memory, `capacity` in all.
    pub fn track_inflight(&self, budget: Arc<tokio::sync::Semaphore>, capacity: usize) {
        let _ = self.inflight.set((budget, capacity));
    }

    /// Request bytes held in memory right now.
    fn inflight_bytes(&self) -> u64 {
        self.inflight.get().map_or(0, |(budget, capacity)| {
            capacity.saturating_sub(budget.available_permits()) as u64
        })
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Puts the live families into `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "quiver_requests",
            "Requests answered, by API",
            self.requests.clone(),
        );
        registry.register(
            "quiver_request_errors",
            "Requests answered with an error, by API and error code",
            self.errors.clone(),
        );
        registry.register(
            "quiver_request_duration_seconds",
            "Time from a request's last byte read to its answer written, by API",
            self.latency.clone(),
        );
        registry.register(
            "quiver_connections",
            "Client connections open",
            self.connections.clone(),
        );
        registry.register(
            "quiver_request_streams",
            "Request streams being served",
            self.streams.clone(),
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Connection,
    Stream,
}

/// Holds one open connection or stream in the gauges until dropped.
#[derive(Debug)]
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    which: Which,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        match self.which {
            Which::Connection => self.metrics.connections.dec(),
            Which::Stream => self.metrics.streams.dec(),
        };
    }
}

/// Traffic through one partition since it was opened, counted on the partition.
#[derive(Debug, Default)]
pub struct PartitionStats {
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
}

impl PartitionStats {
    /// A produce appended `records` records in `bytes` bytes of batches.
    pub fn appended(&self, bytes: usize, records: u32) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.records_in
            .fetch_add(u64::from(records), Ordering::Relaxed);
    }

    /// A read sent `batches` (whole stored batches, back to back) to a consumer.
    pub fn sent(&self, batches: &bytes::Bytes) {
        if batches.is_empty() {
            return;
        }
        let records: u64 = quiver_proto::batch::split(batches)
            .filter_map(Result::ok)
            .map(|(header, _)| u64::from(header.record_count.max(0).unsigned_abs()))
            .sum();
        self.bytes_out
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }
}

/// Builds the registry a scrape encodes: the live families plus the state collector.
pub(crate) fn registry(metrics: &Metrics, state: StateCollector) -> Registry {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry.register_collector(Box::new(state));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_gauges_are_encoded() {
        let metrics = Arc::new(Metrics::default());
        metrics.request("produce", Some(Duration::from_millis(3)), None);
        metrics.request(
            "produce",
            Some(Duration::from_millis(5)),
            Some("NOT_LEADER"),
        );
        let conn = metrics.connection();
        let stream = metrics.stream();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains("quiver_requests_total{api=\"produce\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("quiver_request_errors_total{api=\"produce\",code=\"NOT_LEADER\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("quiver_request_duration_seconds_count{api=\"produce\"} 2"),
            "{text}"
        );
        assert!(text.contains("quiver_connections 1"), "{text}");
        drop((conn, stream));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("quiver_connections 0"), "{text}");
        assert!(text.contains("quiver_request_streams 0"), "{text}");
    }

    #[test]
    fn sent_counts_the_records_of_every_batch() {
        use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
        let mut builder = BatchBuilder::new();
        for i in 0..3 {
            builder.push(i, None, Some(b"v"), &[]);
        }
        let one = builder.build(Compression::None, ProducerIdentity::NONE);
        let mut two = bytes::BytesMut::new();
        two.extend_from_slice(&one);
        two.extend_from_slice(&one);
        let stats = PartitionStats::default();
        stats.sent(&two.freeze());
        assert_eq!(stats.records_out.load(Ordering::Relaxed), 6);
        assert_eq!(
            stats.bytes_out.load(Ordering::Relaxed),
            2 * one.len() as u64
        );
    }
}
