//! Reads: whole batches from the chunk holding the requested offset onwards, from the chunk
//! cache or by ranged GETs verified against the chunk's checksum.

use bytes::{Bytes, BytesMut};

use super::state::ChunkRecord;
use super::{lock, LogService};
use crate::batch;
use crate::error::{Error, Result};
use crate::object_format;
use crate::ports::StoreError;
use crate::types::{LeaderEpoch, Millis, Offset, PartitionKey};

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
    pub log_start_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

impl LogService {
    pub async fn read(&self, req: ReadRequest) -> Result<ReadResult> {
        self.check_epoch(req.partition, req.current_leader_epoch)?;
        let partition = self.shared.partition(req.partition)?;
        let (info, chunks) = {
            let p = lock(&partition);
            let hw = p.record.log_end_offset;
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
            ((hw, start, p.record.leader_epoch), chunks)
        };
        let (hw, start, epoch) = info;
        let mut out = BytesMut::new();
        'chunks: for chunk in &chunks {
            let data = self.chunk_bytes(chunk).await?;
            for item in batch::iter(&data) {
                let (header, bytes) = item.map_err(|e| corrupt(chunk, e))?;
                if header.last_offset() < req.offset.0 {
                    continue;
                }
                if (!out.is_empty() || !req.min_one_batch)
                    && out.len() + bytes.len() > req.max_bytes
                {
                    break 'chunks;
                }
                out.extend_from_slice(&bytes);
            }
        }
        Ok(ReadResult {
            records: out.freeze(),
            high_watermark: hw,
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
            let p = self.shared.partition(partition)?;
            let p = lock(&p);
            let Some(base) = p.index.first_at_or_after(ts) else {
                return Ok(None);
            };
            let start = base.max(p.record.log_start_offset);
            p.index.from_offset(start).cloned().collect::<Vec<_>>()
        };
        for chunk in &chunks {
            let data = self.chunk_bytes(chunk).await?;
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
            let p = self.shared.partition(partition)?;
            let p = lock(&p);
            p.index
                .max_timestamp()
                .and_then(|(ts, base)| p.index.find(base).cloned().map(|c| (ts, c)))
        };
        let Some((ts, chunk)) = found else {
            return Ok(None);
        };
        let data = self.chunk_bytes(&chunk).await?;
        for item in batch::iter(&data) {
            let (header, bytes) = item.map_err(|e| corrupt(&chunk, e))?;
            if header.max_timestamp == ts {
                return Ok(Some((ts, bytes)));
            }
        }
        Ok(None)
    }

    async fn chunk_bytes(&self, chunk: &ChunkRecord) -> Result<Bytes> {
        if let Some(b) = self.shared.cache.get(&chunk.object, chunk.position) {
            return Ok(b);
        }
        let range = chunk.position..chunk.position + u64::from(chunk.length);
        let data = self
            .shared
            .store
            .get_range(&chunk.object, range)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { key } => Error::MissingData(key),
                other => Error::Store(other),
            })?;
        object_format::verify_chunk(&data, chunk.length, chunk.crc).map_err(|source| {
            tracing::error!(object = %chunk.object, position = chunk.position, error = %source, "corrupt chunk");
            Error::CorruptData {
                key: chunk.object.clone(),
                source,
            }
        })?;
        self.shared
            .cache
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
