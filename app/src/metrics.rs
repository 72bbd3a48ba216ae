//! Broker metrics in one Prometheus registry, exposed on `/metrics` (OpenMetrics text).

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

use kafscale_adapters::{MetadataMetrics, ObjectStoreMetrics};
use kafscale_core::log::{FlushReport, LogObserver};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    event: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabels {
    alarm: String,
}

/// The metadata store as it reports itself (set at scrape time).
#[derive(Debug, Default)]
struct StoreGauges {
    db_bytes: Gauge,
    db_in_use_bytes: Gauge,
    keys: Gauge,
    revision: Gauge,
    alarms: Family<AlarmLabels, Gauge>,
    compactions: Counter,
    /// 1 while the broker cannot take writes because of the metadata store.
    not_writable: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    api: String,
    /// The Kafka error name, e.g. `NotLeaderOrFollower`.
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: i32,
}

/// Records and bytes per topic, one direction (produce or fetch).
#[derive(Clone, Debug, Default)]
struct TopicTraffic {
    records: Family<TopicLabels, Counter>,
    bytes: Family<TopicLabels, Counter>,
}

impl TopicTraffic {
    fn add(&self, topic: &str, records: u64, bytes: u64) {
        let labels = TopicLabels {
            topic: topic.to_owned(),
        };
        self.records.get_or_create(&labels).inc_by(records);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<ApiLabels, Counter>,
    request_duration: Family<ApiLabels, Histogram>,
    request_errors: Family<ApiErrorLabels, Counter>,
    /// Frames refused before any handler ran (each closes its connection), by reason.
    refused_requests: Family<ReasonLabels, Counter>,
    /// SASL and TLS client authentications, by outcome.
    authentications: Family<OutcomeLabels, Counter>,
    /// Events of the audit trail (`audit.rs`), by event and outcome.
    audit_events: Family<AuditLabels, Counter>,
    store: StoreGauges,
    topic_produced: TopicTraffic,
    topic_fetched: TopicTraffic,
    /// Set at scrape time from the log.
    partitions_led: Gauge,
    /// Set at scrape time: log end offset minus committed offset, for the groups this
    /// broker coordinates and the partitions it leads.
    consumer_lag: Family<LagLabels, Gauge>,
    pub metadata: MetadataMetrics,
    pub produced_bytes: Counter,
    pub produced_batches: Counter,
    pub fetched_bytes: Counter,
    pub connections: Counter,
    pub open_connections: Gauge,
    cache_bytes: Gauge,
    buffered_bytes: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    pub object_store: ObjectStoreMetrics,
    pub flush: Arc<FlushMetrics>,
    storage_health: Gauge,
    flushes: Counter,
    flushed_bytes: Counter,
    segments: Counter,
    coalesced_chunks: Counter,
    cleaner_runs: Counter,
    cleaner_bytes: Counter,
    cleaner_removed_records: Counter,
    /// Transactions this broker's coordinator ended, by outcome (commit, abort); set at
    /// scrape time from the coordinator's totals.
    transactions: Family<OutcomeLabels, Counter>,
    transactions_timed_out: Counter,
    transactions_open: Gauge,
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
        let metadata = MetadataMetrics::register(&mut registry);
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(|| {
                // 0.1 ms .. ~26 s: produce waits for a flush, fetch long-polls.
                Histogram::new(exponential_buckets(0.0001, 2.0, 19))
            }),
            request_errors: Family::default(),
            refused_requests: Family::default(),
            authentications: Family::default(),
            transactions: Family::default(),
            transactions_timed_out: Counter::default(),
            transactions_open: Gauge::default(),
            audit_events: Family::default(),
            store: StoreGauges::default(),
            topic_produced: TopicTraffic::default(),
            topic_fetched: TopicTraffic::default(),
            partitions_led: Gauge::default(),
            consumer_lag: Family::default(),
            metadata,
            produced_bytes: Counter::default(),
            produced_batches: Counter::default(),
            fetched_bytes: Counter::default(),
            connections: Counter::default(),
            open_connections: Gauge::default(),
            cache_bytes: Gauge::default(),
            buffered_bytes: Gauge::default(),
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
            coalesced_chunks: Counter::default(),
            cleaner_runs: Counter::default(),
            cleaner_bytes: Counter::default(),
            cleaner_removed_records: Counter::default(),
        };
        let k = registry.sub_registry_with_prefix("kafscale");
        k.register("requests", "Kafka requests by API", m.requests.clone());
        k.register(
            "request_duration_seconds",
            "Time from decoding a Kafka request to its response, by API",
            m.request_duration.clone(),
        );
        k.register(
            "request_errors",
            "Error codes in Kafka responses, by API and error (each partition counts)",
            m.request_errors.clone(),
        );
        k.register(
            "refused_requests",
            "Requests refused before handling, each closing its connection, by reason \
             (frame: bad size or truncated; malformed: does not decode, or a length or count \
             exceeds the frame; unknown_api; unsupported_version)",
            m.refused_requests.clone(),
        );
        k.register(
            "metadata_store_db_bytes",
            "Size of the metadata store's database (etcd's backend, or the embedded store's file)",
            m.store.db_bytes.clone(),
        );
        k.register(
            "metadata_store_db_in_use_bytes",
            "Part of the metadata store's database holding live data",
            m.store.db_in_use_bytes.clone(),
        );
        k.register(
            "metadata_store_keys",
            "Keys in the metadata store under this cluster's prefix",
            m.store.keys.clone(),
        );
        k.register(
            "metadata_store_revision",
            "The metadata store's revision",
            m.store.revision.clone(),
        );
        k.register(
            "metadata_store_alarm",
            "1 for each alarm the metadata store has raised (NOSPACE, CORRUPT)",
            m.store.alarms.clone(),
        );
        k.register(
            "metadata_store_compactions",
            "Compactions of the metadata store's history by this broker (as controller)",
            m.store.compactions.clone(),
        );
        k.register(
            "metadata_store_not_writable",
            "1 while the metadata store cannot take this broker's writes (unreachable, alarm, out of space)",
            m.store.not_writable.clone(),
        );
        k.register(
            "topic_produced_records",
            "Records accepted by produce, by topic",
            m.topic_produced.records.clone(),
        );
        k.register(
            "topic_produced_bytes",
            "Record batch bytes accepted by produce, by topic",
            m.topic_produced.bytes.clone(),
        );
        k.register(
            "topic_fetched_records",
            "Records returned by fetch, by topic",
            m.topic_fetched.records.clone(),
        );
        k.register(
            "topic_fetched_bytes",
            "Record bytes returned by fetch, by topic",
            m.topic_fetched.bytes.clone(),
        );
        k.register(
            "partitions_led",
            "Partitions this broker leads (or is loading or handing over)",
            m.partitions_led.clone(),
        );
        k.register(
            "consumer_group_lag",
            "Log end offset minus committed offset, per group and partition this broker \
             coordinates and leads",
            m.consumer_lag.clone(),
        );
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
            "authentications",
            "Client authentications (SASL, TLS client certificates) by outcome",
            m.authentications.clone(),
        );
        k.register(
            "audit_events",
            "Events of the audit trail by event (authentication, reauthentication, authorization, change) and outcome (success, failure, allowed, denied, or a change's error name)",
            m.audit_events.clone(),
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
            "produce_buffered_bytes",
            "Produced bytes held, pending or in flushes under way (produce.buffer.max.bytes)",
            m.buffered_bytes.clone(),
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
        k.register(
            "coalesced_chunks",
            "Small flush chunks rewritten into larger ones (read once per source object)",
            m.coalesced_chunks.clone(),
        );
        k.register(
            "cleaner_runs",
            "Cleans of compacted partitions committed (key compaction)",
            m.cleaner_runs.clone(),
        );
        k.register(
            "cleaner_bytes",
            "Segment bytes the log cleaner read (both passes)",
            m.cleaner_bytes.clone(),
        );
        k.register(
            "cleaner_removed_records",
            "Records the log cleaner removed (superseded values, expired tombstones, aborted records, markers)",
            m.cleaner_removed_records.clone(),
        );
        k.register(
            "transactions",
            "Transactions ended by this broker's transaction coordinator, by outcome (commit, abort; an abort after a timeout counts too)",
            m.transactions.clone(),
        );
        k.register(
            "transactions_timed_out",
            "Transactions the coordinator aborted because they outlived transaction.timeout.ms",
            m.transactions_timed_out.clone(),
        );
        k.register(
            "transactions_open",
            "Ongoing transactions of the transactional ids this broker coordinates",
            m.transactions_open.clone(),
        );
        k.register("cache_hits", "Chunk cache hits", m.cache_hits.clone());
        k.register("cache_misses", "Chunk cache misses", m.cache_misses.clone());
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        m
    }

    pub fn set_storage_health(&self, state: i64) {
        self.storage_health.set(state);
    }

    /// A frame was refused and its connection closed.
    pub fn refused_request(&self, reason: &'static str) {
        self.refused_requests
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn authentication_failed(&self) {
        self.authentications
            .get_or_create(&OutcomeLabels { outcome: "failure" })
            .inc();
    }

    pub fn authentication_succeeded(&self) {
        self.authentications
            .get_or_create(&OutcomeLabels { outcome: "success" })
            .inc();
    }

    /// One event of the audit trail.
    pub fn audited(&self, event: &'static str, outcome: &str) {
        self.audit_events
            .get_or_create(&AuditLabels {
                event,
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn request(&self, key: ApiKey) {
        self.requests
            .get_or_create(&ApiLabels {
                api: format!("{key:?}"),
            })
            .inc();
    }

    /// A response is ready: its latency and the error codes it carries.
    pub fn responded(&self, key: ApiKey, elapsed: Duration, codes: &[i16]) {
        use kafka_protocol::error::ParseResponseErrorCode;
        let api = format!("{key:?}");
        self.request_duration
            .get_or_create(&ApiLabels { api: api.clone() })
            .observe(elapsed.as_secs_f64());
        for code in codes {
            let error = match code.err() {
                Some(e) => format!("{e:?}"),
                None => continue,
            };
            self.request_errors
                .get_or_create(&ApiErrorLabels {
                    api: api.clone(),
                    error,
                })
                .inc();
        }
    }

    pub fn topic_produced(&self, topic: &str, records: u64, bytes: u64) {
        self.topic_produced.add(topic, records, bytes);
    }

    pub fn topic_fetched(&self, topic: &str, records: u64, bytes: u64) {
        self.topic_fetched.add(topic, records, bytes);
    }

    /// Renders every metric, after bringing the scrape-time ones up to date.
    pub fn render(&self, ctx: &Context) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let cache = ctx.log.cache_stats();
        let log = ctx.log.stats();
        let led = ctx.log.led_partitions();
        self.partitions_led.set(led.len() as i64);
        self.update_lag(ctx, &led);
        for (counter, total) in [
            (&self.flushes, log.flushes.load(Relaxed)),
            (&self.flushed_bytes, log.flushed_bytes.load(Relaxed)),
            (&self.segments, log.segments.load(Relaxed)),
            (&self.coalesced_chunks, log.coalesced.load(Relaxed)),
            (&self.cleaner_runs, log.cleaner_runs.load(Relaxed)),
            (&self.cleaner_bytes, log.cleaned_bytes.load(Relaxed)),
            (
                &self.cleaner_removed_records,
                log.cleaned_records.load(Relaxed),
            ),
            (
                &self.transactions_timed_out,
                ctx.txns.stats.timeouts.load(Relaxed),
            ),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let txns = &ctx.txns.stats;
        for (outcome, total) in [
            ("commit", txns.commits.load(Relaxed)),
            ("abort", txns.aborts.load(Relaxed)),
        ] {
            // One family guard at a time: creating a child takes the family's write lock.
            let counter = self.transactions.get_or_create(&OutcomeLabels { outcome });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let health = ctx.cluster.store_health();
        if let Some(status) = &health.status {
            self.store.db_bytes.set(status.db_size_bytes as i64);
            self.store
                .db_in_use_bytes
                .set(status.db_in_use_bytes as i64);
            self.store.keys.set(status.keys as i64);
            self.store.revision.set(status.revision);
            self.store.alarms.clear();
            for alarm in &status.alarms {
                self.store
                    .alarms
                    .get_or_create(&AlarmLabels {
                        alarm: alarm.clone(),
                    })
                    .set(1);
            }
        }
        self.store.compactions.inc_by(
            health
                .compactions
                .saturating_sub(self.store.compactions.get()),
        );
        self.store
            .not_writable
            .set(i64::from(ctx.cluster.metadata_problem().is_some()));
        let (bytes, hits, misses) = cache;
        self.cache_bytes.set(bytes as i64);
        self.buffered_bytes.set(ctx.log.buffered_bytes() as i64);
        self.transactions_open
            .set(ctx.txns.stats.open.load(Relaxed));
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

impl Metrics {
    /// Lag of every committed offset whose group this broker coordinates and whose
    /// partition it leads (elsewhere the log end is not known here). Groups and partitions
    /// that went away disappear from the family.
    fn update_lag(&self, ctx: &Context, led: &[kafscale_core::PartitionKey]) {
        use kafscale_core::PartitionKey;
        let led: std::collections::HashSet<PartitionKey> = led.iter().copied().collect();
        self.consumer_lag.clear();
        for listing in ctx.groups.list(&[]) {
            let Ok(offsets) = ctx.groups.fetch_offsets(&listing.group, None) else {
                continue;
            };
            for (key, committed) in offsets {
                let Some(committed) = committed else { continue };
                let Some(topic) = ctx.log.topic(&key.topic) else {
                    continue;
                };
                if committed.topic_id.is_some_and(|id| id != topic.id) {
                    continue;
                }
                let partition = PartitionKey {
                    topic: topic.id,
                    partition: key.partition,
                };
                if !led.contains(&partition) {
                    continue;
                }
                let Ok(info) = ctx.log.partition_info(partition) else {
                    continue;
                };
                self.consumer_lag
                    .get_or_create(&LagLabels {
                        group: listing.group.to_string(),
                        topic: key.topic.clone(),
                        partition: key.partition.0,
                    })
                    .set((info.high_watermark.0 - committed.offset.0).max(0));
            }
        }
    }
}
