//! Reads: whole batches from the chunk holding the requested offset onwards, from the chunk
//! cache or by ranged GETs verified against the chunk's checksum.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::producers::AbortedTxn;
use super::state::ChunkRecord;
use super::{lock, LogService, Shared};
use crate::batch;
use crate::error::{Error, Result};
use crate::object_format;
use crate::ports::StoreError;
use crate::segment::{self, BlockEntry};
use crate::types::{LeaderEpoch, Millis, Offset, PartitionKey};

/// Chunks of one read fetched from the object store at once.
const CHUNK_LOADS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct ReadRequest {
    pub partition: PartitionKey,
    pub offset: Offset,
    /// Byte budget.
    pub max_bytes: usize,
    /// Return the first batch even when it is larger than the budget (KIP-74); set for the
    /// first partition of a fetch response that gets data.
    pub min_one_batch: bool,
    pub current_leader_epoch: Option<LeaderEpoch>,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Concatenated whole batches; empty when the offset is at the high watermark.
    pub records: Bytes,
    pub high_watermark: Offset,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: Offset,
    /// For a read_committed read: the aborted transactions its records overlap.
    pub aborted: Vec<AbortedTxn>,
    pub log_start_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

impl LogService {
    /// Reads up to the high watermark (read_uncommitted).
    pub async fn read(&self, req: ReadRequest) -> Result<ReadResult> {
        self.read_isolated(req, false).await
    }

    /// [`Self::read`]; `committed` (read_committed) stops at the last stable offset and
    /// names the aborted transactions the records returned overlap.
    pub async fn read_isolated(&self, req: ReadRequest, committed: bool) -> Result<ReadResult> {
        self.check_epoch(req.partition, req.current_leader_epoch)?;
        let partition = self.shared.partitions.get(req.partition)?;
        let (info, chunks, lso, aborted) = {
            let p = lock(&partition);
            let hw = p.record.log_end_offset;
            let lso = p.last_stable_offset();
            let start = p.record.log_start_offset;
            if req.offset < start || req.offset > hw {
                return Err(Error::OffsetOutOfRange {
                    offset: req.offset,
                    start,
                    end: hw,
                });
            }
            // Enough chunks to fill the budget; chunk lengths bound the bytes they hold.
            let mut budget = 0usize;
            let chunks: Vec<ChunkRecord> = p
                .index
                .from_offset(req.offset)
                .take_while(|c| {
                    let take = budget < req.max_bytes.max(1);
                    budget += c.length as usize;
                    take
                })
                .cloned()
                .collect();
            // Taken with the chunks, so that they agree: the log cleaner removes an abort
            // marker and its entry in one step, and a read of the chunks listed before it
            // must still be told of the transaction.
            let aborted = if committed {
                p.producers.aborted_between(req.offset, lso)
            } else {
                Vec::new()
            };
            ((hw, start, p.leadership.leader_epoch), chunks, lso, aborted)
        };
        let (hw, start, epoch) = info;
        // What a read_committed reader may see ends at the last stable offset.
        let limit = if committed { lso } else { hw };
        // Batches are returned as slices of the chunk or block buffers they live in: a read
        // within one buffer copies nothing; only a read spanning buffers is concatenated.
        let mut parts: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        // The chunks are fetched at once (a cold read of many small flush chunks waits for
        // one round of GETs, not one per chunk) and used in order. Each gets the whole
        // budget: how much of it the chunks before will use is not known yet.
        let loads = chunks.into_iter().map(|chunk| {
            let shared = self.shared.clone();
            async move {
                let data = shared.load_from(&chunk, req.offset, req.max_bytes).await;
                (chunk, data)
            }
        });
        let mut loaded = futures::stream::iter(loads).buffered(CHUNK_LOADS);
        'chunks: while let Some((chunk, data)) = loaded.next().await {
            let chunk = &chunk;
            let (data, whole) = data?;
            let mut taken: Option<(usize, usize)> = None;
            let mut pos = 0usize;
            let mut full = false;
            for item in batch::iter(&data) {
                let (header, _) = item.map_err(|e| corrupt(chunk, e))?;
                let at = pos;
                pos += header.size;
                if header.last_offset() < req.offset.0 {
                    continue;
                }
                if header.base_offset >= limit.0 {
                    full = true;
                    break;
                }
                if (total > 0 || !req.min_one_batch) && total + header.size > req.max_bytes {
                    full = true;
                    break;
                }
                total += header.size;
                taken = Some((taken.map_or(at, |(s, _)| s), pos));
            }
            if let Some((s, e)) = taken {
                parts.push(data.slice(s..e));
            }
            // Only the part of a segment the budget covered was loaded: going on to the
            // next chunk would skip the rest of this one. (A cleaned segment's batches may
            // end before its last offset: the offsets after them are gone, and the read goes
            // on with the next chunk.)
            if full || !whole {
                break 'chunks;
            }
        }
        let records = match parts.len() {
            0 => Bytes::new(),
            1 => parts.swap_remove(0),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for p in &parts {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        };
        // The aborted transactions the records returned overlap.
        let end = batch::iter(&records)
            .filter_map(|b| b.ok())
            .last()
            .map_or(req.offset, |(h, _)| Offset(h.last_offset() + 1));
        let mut aborted = aborted;
        aborted.retain(|a| !records.is_empty() && a.first_offset < end);
        Ok(ReadResult {
            records,
            high_watermark: hw,
            last_stable_offset: lso,
            aborted,
            log_start_offset: start,
            leader_epoch: epoch,
        })
    }

    /// The first batch whose maximum timestamp is at or after `ts`, if any (ListOffsets by
    /// time). The caller finds the exact record inside it.
    pub async fn find_batch_by_timestamp(
        &self,
        partition: PartitionKey,
        ts: Millis,
    ) -> Result<Option<Bytes>> {
        let chunks = {
            let p = self.shared.partitions.get(partition)?;
            let p = lock(&p);
            let Some(base) = p.index.first_at_or_after(ts) else {
                return Ok(None);
            };
            let start = base.max(p.record.log_start_offset);
            p.index.from_offset(start).cloned().collect::<Vec<_>>()
        };
        for chunk in &chunks {
            let data = match chunk.segment {
                None => self.shared.chunk_bytes(chunk).await?,
                Some(_) => {
                    let blocks = self.shared.segment_index(chunk).await?;
                    let Some(first) = segment::block_for_timestamp(&blocks, ts) else {
                        continue;
                    };
                    self.shared.segment_blocks(chunk, &blocks[first..]).await?
                }
            };
            for item in batch::iter(&data) {
                let (header, bytes) = item.map_err(|e| corrupt(chunk, e))?;
                if header.max_timestamp >= ts {
                    return Ok(Some(bytes));
                }
            }
        }
        Ok(None)
    }

    /// The batch holding the partition's greatest timestamp, with that timestamp.
    pub async fn find_max_timestamp_batch(
        &self,
        partition: PartitionKey,
    ) -> Result<Option<(Millis, Bytes)>> {
        let found = {
            let p = self.shared.partitions.get(partition)?;
            let p = lock(&p);
            p.index
                .max_timestamp()
                .and_then(|(ts, base)| p.index.find(base).cloned().map(|c| (ts, c)))
        };
        let Some((ts, chunk)) = found else {
            return Ok(None);
        };
        let data = match chunk.segment {
            None => self.shared.chunk_bytes(&chunk).await?,
            Some(_) => {
                let blocks = self.shared.segment_index(&chunk).await?;
                let first = segment::block_for_timestamp(&blocks, ts).unwrap_or(0);
                self.shared.segment_blocks(&chunk, &blocks[first..]).await?
            }
        };
        for item in batch::iter(&data) {
            let (header, bytes) = item.map_err(|e| corrupt(&chunk, e))?;
            if header.max_timestamp == ts {
                return Ok(Some((ts, bytes)));
            }
        }
        Ok(None)
    }
}

impl Shared {
    /// Batches of `chunk` from the one holding `from` onwards: a whole flush chunk, or as
    /// many segment blocks as cover `budget` bytes (at least one); and whether they reach the
    /// chunk's end.
    pub(super) async fn load_from(
        &self,
        chunk: &ChunkRecord,
        from: Offset,
        budget: usize,
    ) -> Result<(Bytes, bool)> {
        if chunk.segment.is_none() {
            return Ok((self.chunk_bytes(chunk).await?, true));
        }
        let blocks = self.segment_index(chunk).await?;
        let first = segment::block_for_offset(&blocks, from);
        // Read ahead: a consumer that keeps reading finds the next blocks in the cache.
        let want = budget.saturating_add(self.config.read_ahead_bytes);
        let mut take = 0usize;
        let mut end = first;
        while end < blocks.len() && (end == first || take < want) {
            take += blocks[end].length as usize;
            end += 1;
        }
        let data = self.segment_blocks(chunk, &blocks[first..end]).await?;
        Ok((data, end >= blocks.len()))
    }

    /// A segment's block index, from the cache or the object; a damaged index is rebuilt
    /// from the segment's data.
    pub(super) async fn segment_index(&self, chunk: &ChunkRecord) -> Result<Vec<BlockEntry>> {
        let Some(seg) = chunk.segment else {
            return Ok(Vec::new());
        };
        let bytes = match self.cache.get(&chunk.object, seg.index_position) {
            Some(b) => b,
            None => {
                let range = seg.index_position..seg.index_position + u64::from(seg.index_length);
                self.get_range(&chunk.object, range).await?
            }
        };
        match segment::decode_index(&bytes, seg.index_crc) {
            Ok(entries) => {
                self.cache.insert(&chunk.object, seg.index_position, bytes);
                Ok(entries)
            }
            Err(e) => {
                tracing::error!(object = %chunk.object, error = %e, "damaged segment index; rebuilding it from the data");
                let range = chunk.position..chunk.position + u64::from(chunk.length);
                let data = self.get_range(&chunk.object, range).await?;
                segment::rebuild_index(&data, chunk.position, self.config.segment_block_bytes)
                    .map_err(|source| Error::CorruptData {
                        key: chunk.object.clone(),
                        source,
                    })
            }
        }
    }

    /// The given consecutive blocks of a segment, each verified against its CRC.
    async fn segment_blocks(&self, chunk: &ChunkRecord, blocks: &[BlockEntry]) -> Result<Bytes> {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return Ok(Bytes::new());
        };
        let cached: Option<Vec<Bytes>> = blocks
            .iter()
            .map(|b| self.cache.get(&chunk.object, b.position))
            .collect();
        if let Some(parts) = cached {
            let mut out = BytesMut::new();
            for p in parts {
                out.extend_from_slice(&p);
            }
            return Ok(out.freeze());
        }
        let data = self
            .get_range(&chunk.object, first.position..last.range().end)
            .await?;
        for b in blocks {
            let at = (b.position - first.position) as usize;
            let block = data.slice(at..at + b.length as usize);
            object_format::verify_chunk(&block, b.length, b.crc).map_err(|source| {
                tracing::error!(object = %chunk.object, position = b.position, error = %source, "corrupt segment block");
                Error::CorruptData {
                    key: chunk.object.clone(),
                    source,
                }
            })?;
            self.cache.insert(&chunk.object, b.position, block);
        }
        Ok(data)
    }

    pub(super) async fn get_range(
        &self,
        object: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        self.store
            .get_range(object, range)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { key } => Error::MissingData(key),
                other => Error::Store(other),
            })
    }

    /// A whole flush chunk, from the cache or verified against its CRC.
    pub(super) async fn chunk_bytes(&self, chunk: &ChunkRecord) -> Result<Bytes> {
        if let Some(b) = self.cache.get(&chunk.object, chunk.position) {
            return Ok(b);
        }
        let range = chunk.position..chunk.position + u64::from(chunk.length);
        let data = self.get_range(&chunk.object, range).await?;
        object_format::verify_chunk(&data, chunk.length, chunk.crc).map_err(|source| {
            tracing::error!(object = %chunk.object, position = chunk.position, error = %source, "corrupt chunk");
            Error::CorruptData {
                key: chunk.object.clone(),
                source,
            }
        })?;
        self.cache
            .insert(&chunk.object, chunk.position, data.clone());
        Ok(data)
    }
}

fn corrupt(chunk: &ChunkRecord, e: batch::BatchError) -> Error {
    Error::CorruptData {
        key: chunk.object.clone(),
        source: object_format::FormatError::MalformedBatch(e),
    }
}
