//! The log's settings.

use crate::settings as S;
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
    /// Memory for the key map of one clean (Kafka's `log.cleaner.dedupe.buffer.size`).
    pub cleaner_buffer_bytes: usize,
    /// How often compacted partitions are checked for cleaning (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub cleaner_backoff_ms: u64,
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

/// The registry's defaults (`crate::settings`); the fields without a setting are fixed here.
impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            broker_id: BrokerId(0),
            flush_ms: S::FLUSH_MS.default_int() as u64,
            flush_bytes: S::FLUSH_BYTES.default_int() as usize,
            max_buffered_bytes: S::PRODUCE_BUFFER_MAX_BYTES.default_int() as usize,
            cache_bytes: S::CACHE_BYTES.default_int() as usize,
            max_batch_bytes: S::MESSAGE_MAX_BYTES.default_int() as usize,
            attempts: 3,
            incarnation: 0,
            checkpoint_interval_ms: S::CHECKPOINT_INTERVAL_MS.default_int() as u64,
            checkpoint_max_records: S::CHECKPOINT_MAX_RECORDS.default_int() as u64,
            retention_check_ms: S::LOG_RETENTION_CHECK_INTERVAL_MS.default_int() as u64,
            default_retention_ms: S::LOG_RETENTION_MS.default_int(),
            default_retention_bytes: S::LOG_RETENTION_BYTES.default_int(),
            gc_interval_ms: S::GC_INTERVAL_MS.default_int() as u64,
            gc_grace_ms: S::GC_GRACE_MS.default_int() as u64,
            segment_bytes: S::LOG_SEGMENT_BYTES.default_int() as u64,
            segment_block_bytes: S::SEGMENT_BLOCK_BYTES.default_int() as usize,
            compaction_min_bytes: S::COMPACTION_MIN_BYTES.default_int() as u64,
            cleaner_buffer_bytes: S::LOG_CLEANER_DEDUPE_BUFFER_SIZE.default_int() as usize,
            cleaner_backoff_ms: S::LOG_CLEANER_BACKOFF_MS.default_int() as u64,
            coalesce_min_chunks: 64,
            coalesce_keep_newest: 8,
            producer_expiration_ms: S::PRODUCER_ID_EXPIRATION_MS.default_int(),
            read_ahead_bytes: S::READ_AHEAD_BYTES.default_int() as usize,
        }
    }
}
