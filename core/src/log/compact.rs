//! Compaction of small flush chunks into per-partition segments.
//!
//! Flushes leave one chunk per partition per flush. When a partition's unmerged chunks
//! reach `compaction_min_bytes` (or `COMPACTION_MAX_CHUNKS` chunks), they are merged into one
//! segment object with a block index, and their metadata entries are replaced by one in a
//! single transaction fenced on the partition's revision. Metadata thus holds
//! O(partitions + segments) keys, not O(flushes).
//!
//! Runs in a task of its own beside the flusher: reading chunks and uploading the segment
//! never delay a flush. Its commit neither changes the partition record nor touches the key
//! a flush adds, so flushes do not conflict with it; it compares every chunk key it
//! replaces against the value it merged, and holds the maintenance lock that retention holds
//! too, so that no chunk key it replaces has changed or gone meanwhile. A merge is a no-op on
//! the data (the same committed bytes, in a new place), so it needs no leader fencing beyond
//! that.

use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::keys;
use super::state::{ChunkRecord, SegmentRef};
use super::{lock, Shared};
use crate::error::{Error, Result};
use crate::ports::metadata::encode_json;
use crate::ports::{Compare, PutMode, Txn, TxnOp};
use crate::segment;
use crate::types::PartitionKey;

/// Chunks merged per step: one compare, deletes and a put stay below etcd's 128 operations.
pub const COMPACTION_MAX_CHUNKS: usize = 100;

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.compact_wake.notified() => {}
            _ = shared.clock.sleep(Duration::from_secs(5)) => {}
        }
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        while !shared.shutting_down.load(Ordering::SeqCst) && shared.compact_next().await {
            tokio::task::yield_now().await;
        }
    }
}

impl Shared {
    /// Whether a partition's unmerged chunks are worth merging now.
    pub(super) fn wants_compaction(&self, unmerged: (usize, u64)) -> bool {
        let (count, bytes) = unmerged;
        count >= COMPACTION_MAX_CHUNKS || (count >= 2 && bytes >= self.config.compaction_min_bytes)
    }

    /// Merges the next run of one partition that wants it, if any; false when none did.
    pub(super) async fn compact_next(&self) -> bool {
        let next = lock(&self.compactable).pop_first();
        let Some(key) = next else {
            return false;
        };
        match self.compact(key).await {
            Ok(merged) if merged > 0 => {
                tracing::debug!(partition = %key, chunks = merged, "chunks merged into a segment")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(partition = %key, error = %e, "compaction failed"),
        }
        true
    }

    /// Merges up to `COMPACTION_MAX_CHUNKS` unmerged chunks (at most `segment_bytes`) of the
    /// partition into one segment. Returns how many chunks were merged.
    async fn compact(&self, key: PartitionKey) -> Result<usize> {
        let partition = self.partition(key)?;
        let (run, leader_revision) = {
            let p = lock(&partition);
            if !p.writable() {
                return Ok(0);
            }
            let mut bytes = 0u64;
            let run: Vec<ChunkRecord> = p
                .index
                .unmerged_chunks()
                .take_while(|c| {
                    bytes += u64::from(c.length);
                    bytes <= self.config.segment_bytes
                })
                .take(COMPACTION_MAX_CHUNKS)
                .cloned()
                .collect();
            (run, p.leader_revision)
        };
        if run.len() < 2 {
            return Ok(0);
        }
        let mut data: Vec<Bytes> = Vec::with_capacity(run.len());
        for chunk in &run {
            data.push(self.chunk_bytes(chunk).await?);
        }
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
        let record = ChunkRecord {
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
            }),
        };
        let _maintenance = self.maintenance.lock().await;
        let mut txn = Txn::new().when(Compare::ModRevision {
            key: keys::leader(key),
            revision: leader_revision,
        });
        for chunk in &run {
            txn = txn.when(Compare::Value {
                key: keys::chunk(key, chunk.base_offset),
                value: Some(encode_json(chunk)),
            });
        }
        for chunk in &run[1..] {
            txn = txn.then(TxnOp::Delete {
                key: keys::chunk(key, chunk.base_offset),
            });
        }
        txn = txn.then(TxnOp::Put {
            key: keys::chunk(key, first.base_offset),
            value: encode_json(&record),
            lease: None,
        });
        let outcome = self.meta.txn(txn).await?;
        if !outcome.succeeded {
            // Retention or a new leader changed these chunks; the segment is garbage.
            tracing::debug!(partition = %key, "compaction lost a race; chunks changed meanwhile");
            return Ok(0);
        }
        let mut p = lock(&partition);
        self.stats.segments.fetch_add(1, Ordering::Relaxed);
        let bases: Vec<_> = run.iter().map(|c| c.base_offset).collect();
        p.index.replace(&bases, record);
        if self.wants_compaction(p.index.unmerged()) {
            lock(&self.compactable).insert(key);
        }
        Ok(run.len())
    }
}
