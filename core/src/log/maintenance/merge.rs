//! Merging a partition's small flush chunks into one segment object with a block index, in a
//! checkpoint round: the segment is uploaded first, and the round's checkpoint of the
//! partition, written in one transaction with the segment's key, no longer lists the chunks
//! it covers. Metadata thus holds O(partitions + segments) keys, and a checkpoint's chunk list
//! stays short.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::log::state::{ChunkRecord, SegmentRef};
use crate::log::{lock, Shared};
use crate::ports::PutMode;
use crate::schema::keys;
use crate::segment;
use crate::topic_settings::TopicSettings;
use crate::types::{Millis, PartitionKey};

/// What a partition's topic asks of its segments.
#[derive(Debug, Clone, Copy)]
struct Roll {
    /// `segment.bytes`.
    segment_bytes: u64,
    /// The oldest unmerged chunk is older than `segment.ms`.
    aged: bool,
}

/// Chunks merged into one segment at most.
pub const MERGE_MAX_CHUNKS: usize = 1000;

/// Chunk reads of one merge under way at once.
const READS_AT_ONCE: usize = 16;

impl Shared {
    /// Whether a partition's unmerged chunks are worth merging: enough bytes (or a segment's
    /// worth), so many chunks that reading them (and listing them in checkpoints) costs more
    /// than rewriting them, or chunks older than the topic's `segment.ms`.
    fn wants_merge(&self, unmerged: (usize, u64), roll: Roll) -> bool {
        let (count, bytes) = unmerged;
        let enough = bytes >= self.config.compaction_min_bytes.min(roll.segment_bytes);
        count >= MERGE_MAX_CHUNKS || (count >= 2 && enough) || (count >= 1 && roll.aged)
    }

    /// A partition's topic's `segment.bytes` and whether its oldest unmerged chunk is older
    /// than its `segment.ms` (if it sets one), by the newest record timestamp in the chunk.
    fn roll_of(&self, key: PartitionKey, oldest: Option<Millis>) -> Roll {
        let settings = self
            .topic_record(key)
            .map(|t| TopicSettings::of(&t, &self.config));
        let now = self.clock.now_ms();
        Roll {
            segment_bytes: settings.map_or(self.config.segment_bytes, |s| s.segment_bytes),
            aged: settings
                .and_then(|s| s.segment_ms)
                .zip(oldest)
                .is_some_and(|(ms, ts)| ts <= now.saturating_sub(ms)),
        }
    }

    /// The partitions this broker leads that want a merge.
    pub(in crate::log) fn merge_candidates(&self) -> Vec<PartitionKey> {
        let keys: Vec<PartitionKey> = self.partitions.read().keys().copied().collect();
        keys.into_iter()
            .filter(|key| {
                let Ok(partition) = self.partitions.get(*key) else {
                    return false;
                };
                let (writable, unmerged, oldest) = {
                    let p = lock(&partition);
                    let oldest = p.index.unmerged_chunks().next().map(|c| c.max_timestamp);
                    (p.writable(), p.index.unmerged(), oldest)
                };
                writable && self.wants_merge(unmerged, self.roll_of(*key, oldest))
            })
            .collect()
    }

    /// Merges the oldest unmerged chunks of a partition (up to its topic's `segment.bytes`)
    /// into a segment object; returns the segment, which the round's checkpoint commits.
    pub(in crate::log) async fn merge(&self, key: PartitionKey) -> Result<Option<ChunkRecord>> {
        let oldest = {
            let partition = self.partitions.get(key)?;
            let p = lock(&partition);
            let oldest = p.index.unmerged_chunks().next().map(|c| c.max_timestamp);
            oldest
        };
        let roll = self.roll_of(key, oldest);
        let run: Vec<ChunkRecord> = {
            let partition = self.partitions.get(key)?;
            let p = lock(&partition);
            if !p.writable() {
                return Ok(None);
            }
            let mut bytes = 0u64;
            p.index
                .unmerged_chunks()
                .enumerate()
                .take_while(|(i, c)| {
                    bytes += u64::from(c.length);
                    // The first chunk always: one larger than a segment becomes one alone.
                    *i == 0 || bytes <= roll.segment_bytes
                })
                .map(|(_, c)| c)
                .take(MERGE_MAX_CHUNKS)
                .cloned()
                .collect()
        };
        if run.is_empty() || (run.len() < 2 && !roll.aged) {
            return Ok(None);
        }
        // Each chunk is most likely in an object of its own: read several at once.
        let reads: Vec<BoxFuture<'_, Result<Bytes>>> = run
            .iter()
            .map(|c| -> BoxFuture<'_, Result<Bytes>> { Box::pin(self.chunk_bytes(c)) })
            .collect();
        let data: Vec<Bytes> = futures::stream::iter(reads)
            .buffered(READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let batches = data
            .iter()
            .flat_map(crate::batch::iter)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (object, info) = segment::build(
            key.topic,
            key.partition,
            batches.iter().map(|(_, b)| b.as_ref()),
            self.config.segment_block_bytes,
        )?;
        let first = &run[0];
        let last = &run[run.len() - 1];
        debug_assert_eq!(info.base_offset, first.base_offset);
        debug_assert_eq!(info.last_offset, last.last_offset);
        let object_key = keys::flush_object(self.config.broker_id, uuid::Uuid::now_v7());
        self.store.put(&object_key, object, PutMode::Create).await?;
        tracing::debug!(partition = %key, chunks = run.len(), "chunks merged into a segment");
        Ok(Some(ChunkRecord {
            object: object_key,
            position: info.data_position,
            length: u32::try_from(info.data_length).map_err(|_| Error::BatchTooLarge {
                size: info.data_length as usize,
                max: u32::MAX as usize,
            })?,
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            max_timestamp: info.max_timestamp,
            crc: 0,
            segment: Some(SegmentRef {
                index_position: info.index_position,
                index_length: info.index_length,
                index_crc: info.index_crc,
                cleaned: None,
            }),
        }))
    }
}
