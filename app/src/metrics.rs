//! Broker metrics in one Prometheus registry, exposed on `/metrics` (OpenMetrics text).

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

use kafscale_adapters::ObjectStoreMetrics;
use kafscale_core::log::{FlushReport, LogObserver};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::Arc;

/// Flush measurements from the log.
#[derive(Debug, Clone)]
pub struct FlushMetrics {
    bytes: Histogram,
    partitions: Histogram,
    upload: Histogram,
    commit: Histogram,
}

impl LogObserver for FlushMetrics {
    fn flushed(&self, r: FlushReport) {
        self.bytes.observe(r.bytes as f64);
        self.partitions.observe(r.partitions as f64);
        self.upload.observe(r.upload_ms as f64 / 1000.0);
        self.commit.observe(r.commit_ms as f64 / 1000.0);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<ApiLabels, Counter>,
    pub produced_bytes: Counter,
    pub produced_batches: Counter,
    pub fetched_bytes: Counter,
    pub connections: Counter,
    pub open_connections: Gauge,
    cache_bytes: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    pub object_store: ObjectStoreMetrics,
    pub flush: Arc<FlushMetrics>,
    storage_health: Gauge,
    flushes: Counter,
    flushed_bytes: Counter,
    segments: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let object_store = ObjectStoreMetrics::register(&mut registry);
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            produced_bytes: Counter::default(),
            produced_batches: Counter::default(),
            fetched_bytes: Counter::default(),
            connections: Counter::default(),
            open_connections: Gauge::default(),
            cache_bytes: Gauge::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            object_store,
            flush: Arc::new(FlushMetrics {
                // 1 KiB .. 1 GiB
                bytes: Histogram::new(exponential_buckets(1024.0, 4.0, 11)),
                partitions: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
                // 1 ms .. ~33 s
                upload: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
                commit: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            }),
            storage_health: Gauge::default(),
            flushes: Counter::default(),
            flushed_bytes: Counter::default(),
            segments: Counter::default(),
        };
        let k = registry.sub_registry_with_prefix("kafscale");
        k.register("requests", "Kafka requests by API", m.requests.clone());
        k.register(
            "produced_bytes",
            "Record batch bytes accepted by produce",
            m.produced_bytes.clone(),
        );
        k.register(
            "produced_batches",
            "Record batches accepted by produce",
            m.produced_batches.clone(),
        );
        k.register(
            "fetched_bytes",
            "Record bytes returned by fetch",
            m.fetched_bytes.clone(),
        );
        k.register(
            "connections",
            "Kafka connections accepted",
            m.connections.clone(),
        );
        k.register(
            "open_connections",
            "Kafka connections open",
            m.open_connections.clone(),
        );
        k.register(
            "cache_bytes",
            "Bytes held by the chunk cache",
            m.cache_bytes.clone(),
        );
        k.register(
            "object_store_health",
            "Object store health: 0 healthy, 1 degraded, 2 unavailable",
            m.storage_health.clone(),
        );
        k.register("flushes", "Flush objects written", m.flushes.clone());
        k.register(
            "flush_size_bytes",
            "Size of flush objects",
            m.flush.bytes.clone(),
        );
        k.register(
            "flush_partitions",
            "Partitions per flush",
            m.flush.partitions.clone(),
        );
        k.register(
            "flush_upload_duration_seconds",
            "Time to write a flush object",
            m.flush.upload.clone(),
        );
        k.register(
            "flush_commit_duration_seconds",
            "Time to commit a flush in the metadata store",
            m.flush.commit.clone(),
        );
        k.register(
            "flushed_bytes",
            "Bytes of flush objects written",
            m.flushed_bytes.clone(),
        );
        k.register(
            "segments",
            "Segments built by compaction",
            m.segments.clone(),
        );
        k.register("cache_hits", "Chunk cache hits", m.cache_hits.clone());
        k.register("cache_misses", "Chunk cache misses", m.cache_misses.clone());
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        m
    }

    pub fn set_storage_health(&self, state: i64) {
        self.storage_health.set(state);
    }

    pub fn request(&self, key: ApiKey) {
        self.requests
            .get_or_create(&ApiLabels {
                api: format!("{key:?}"),
            })
            .inc();
    }

    /// Renders every metric; `cache` is (bytes held, hits, misses) of the chunk cache.
    pub fn render(&self, cache: (usize, u64, u64), log: &kafscale_core::log::LogStats) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        for (counter, total) in [
            (&self.flushes, log.flushes.load(Relaxed)),
            (&self.flushed_bytes, log.flushed_bytes.load(Relaxed)),
            (&self.segments, log.segments.load(Relaxed)),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let (bytes, hits, misses) = cache;
        self.cache_bytes.set(bytes as i64);
        // The cache keeps its own totals; move the counters up to them.
        self.cache_hits
            .inc_by(hits.saturating_sub(self.cache_hits.get()));
        self.cache_misses
            .inc_by(misses.saturating_sub(self.cache_misses.get()));
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
