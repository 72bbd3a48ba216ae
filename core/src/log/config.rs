//! The log's settings.

use crate::types::BrokerId;

/// Settings of the log, validated by the app's config layer.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub broker_id: BrokerId,
    /// How long a flush may wait to gather more batches (0 = as soon as the previous is done).
    pub flush_ms: u64,
    /// Pending bytes that start a flush early.
    pub flush_bytes: usize,
    /// Produced bytes held at most, pending or in flushes under way: beyond it, produce
    /// requests wait (and their connections stop being read) until flushes finish.
    pub max_buffered_bytes: usize,
    /// Bytes of chunk data kept in memory for reads.
    pub cache_bytes: usize,
    /// Largest record batch accepted (Kafka's `message.max.bytes`).
    pub max_batch_bytes: usize,
    /// Attempts at an object-store upload or a metadata commit before giving up.
    pub attempts: u32,
    /// This process's incarnation: flush records are keyed by it. 0 = a random one (a log
    /// opened without a cluster registration).
    pub incarnation: u64,
    /// How often dirty partitions are checkpointed, at the latest.
    pub checkpoint_interval_ms: u64,
    /// Flush records not covered by a checkpoint that start a checkpoint round early.
    pub checkpoint_max_records: u64,
    /// How often retention is enforced (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_ms: u64,
    /// `retention.ms` of topics that do not set it; negative = unlimited.
    pub default_retention_ms: i64,
    /// `retention.bytes` of topics that do not set it; negative = unlimited.
    pub default_retention_bytes: i64,
    /// How often unreferenced objects are looked for.
    pub gc_interval_ms: u64,
    /// Objects younger than this are never collected: they may belong to a flush whose
    /// commit is still under way.
    pub gc_grace_ms: u64,
    /// Largest segment compaction builds (Kafka's `segment.bytes`).
    pub segment_bytes: u64,
    /// Size of the blocks a segment's index points at; a fetch reads whole blocks.
    pub segment_block_bytes: usize,
    /// Unmerged chunk bytes of a partition that start a compaction.
    pub compaction_min_bytes: u64,
    /// Small unmerged chunks of a partition that start a coalesce (see
    /// `maintenance/coalesce.rs`), not counting the newest `coalesce_keep_newest`.
    pub coalesce_min_chunks: usize,
    /// The newest chunks of a partition a coalesce leaves alone (tail readers find them in
    /// the cache).
    pub coalesce_keep_newest: usize,
    /// An idempotent producer idle this long is forgotten (Kafka's
    /// `producer.id.expiration.ms`).
    pub producer_expiration_ms: i64,
    /// Segment bytes read beyond what a fetch asks for, into the cache.
    pub read_ahead_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            broker_id: BrokerId(0),
            flush_ms: 0,
            flush_bytes: 4 << 20,
            max_buffered_bytes: 256 << 20,
            cache_bytes: 256 << 20,
            max_batch_bytes: 1 << 20,
            attempts: 3,
            incarnation: 0,
            checkpoint_interval_ms: 30_000,
            checkpoint_max_records: 256,
            retention_check_ms: 60_000,
            default_retention_ms: 7 * 24 * 3600 * 1000,
            default_retention_bytes: -1,
            gc_interval_ms: 300_000,
            gc_grace_ms: 600_000,
            segment_bytes: 64 << 20,
            segment_block_bytes: 64 << 10,
            compaction_min_bytes: 4 << 20,
            coalesce_min_chunks: 64,
            coalesce_keep_newest: 8,
            producer_expiration_ms: 86_400_000,
            read_ahead_bytes: 1 << 20,
        }
    }
}
