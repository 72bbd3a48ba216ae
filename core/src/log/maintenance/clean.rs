//! The log cleaner: key compaction of the partitions of compacted topics (`cleanup.policy`
//! lists compact), in a checkpoint round every `log.cleaner.backoff.ms`. What a clean takes
//! and keeps is decided in `clean_plan.rs`; here the segments are read and written.
//!
//! A clean reads the dirty segments once to build the key map (pass 1), then reads the
//! segments again, one at a time, and writes the records it keeps into new segment objects
//! of up to `segment.bytes` (pass 2): memory holds the map, one segment read and one segment
//! being written. The batches keep their base offsets and last offset deltas, so offsets only
//! get gaps; each new segment spans exactly the offsets of the segments it replaces. Like a
//! merge, the new segments are uploaded first and committed by the round's checkpoint of the
//! partition, in one transaction that puts their keys, deletes the keys of the segments they
//! replace and is fenced like every checkpoint (the broker's fence, the partition's
//! checkpoint and leader revisions): a reader sees the old segments or the new ones, never a
//! mix, and after a leader change the new objects are garbage nothing references. The old
//! segment objects become garbage when the checkpoint commits.
//!
//! A clean takes only segments wholly below the partition's last stable offset, and reads
//! them in offset order from the first (see `clean_plan::txns`): the records of aborted
//! transactions go, markers go once their transactions' records are gone and
//! `delete.retention.ms` has passed, and the aborted-index entry of an abort marker removed
//! goes from the producer state in the same checkpoint.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::clean_plan::txns::{self, AbortedIndex, DataFate, MarkerFate, TxnPass};
use super::clean_plan::{self, KeyMap, Policy, SegmentView};
use crate::batch::{self, BatchError, BatchHeader};
use crate::error::{Error, Result};
use crate::log::producers::AbortedTxn;
use crate::log::state::{ChunkRecord, SegmentRef};
use crate::log::{lock, Shared};
use crate::object_format::{self, FormatError};
use crate::ports::PutMode;
use crate::schema::keys;
use crate::segment;
use crate::topic_settings::TopicSettings;
use crate::types::{Millis, Offset, PartitionKey};
use crate::unpack;

/// What a clean of one partition wrote.
#[derive(Debug, Clone, Default)]
pub(in crate::log) struct CleanedSegments {
    /// Each new segment, with the base offsets of the segments it replaces (its own first).
    pub replacements: Vec<(Vec<Offset>, ChunkRecord)>,
    /// Segment bytes read (both passes).
    pub bytes_read: u64,
    /// Records removed (markers included).
    pub removed: u64,
    /// The abort markers removed, as (producer id, offset): their aborted-index entries go
    /// with them.
    pub retired: Vec<(i64, Offset)>,
}

/// A partition whose clean may be due: its segments below the last stable offset (oldest
/// first), its topic's cleaning policy and its aborted transactions.
struct Candidate {
    key: PartitionKey,
    segments: Vec<ChunkRecord>,
    policy: Policy,
    aborted: Vec<AbortedTxn>,
}

/// What pass 2 of one clean works with, for every group of segments in turn.
struct Pass2<'a> {
    map: &'a KeyMap,
    policy: &'a Policy,
    now: Millis,
    txns: TxnPass<'a>,
    aborted: &'a AbortedIndex,
}

impl Pass2<'_> {
    /// A marker: kept, or removed with its aborted-index entry (see [`TxnPass::marker`]).
    fn marker(
        &mut self,
        header: &BatchHeader,
        due: bool,
        bytes: Bytes,
        out: &mut Rewritten,
        result: &mut CleanedSegments,
    ) {
        match self.txns.marker(header, due) {
            MarkerFate::Keep => out.kept.push(bytes),
            MarkerFate::KeepUntilDue => {
                out.removable = true;
                out.kept.push(bytes);
            }
            MarkerFate::Remove => {
                out.removed += header.record_count.max(0) as u64;
                if self.aborted.ends(header.producer_id, header.base_offset) {
                    result
                        .retired
                        .push((header.producer_id, Offset(header.base_offset)));
                }
            }
        }
    }
}

/// What pass 2 made of one group of segments.
#[derive(Default)]
struct Rewritten {
    kept: Vec<Bytes>,
    removed: u64,
    /// Tombstones or markers remain that a later clean removes.
    removable: bool,
}

impl Shared {
    /// The partitions of compacted topics this broker leads, with their segments below the
    /// last stable offset: records of an open transaction are never judged, so that a key's
    /// committed value never goes for an uncommitted one.
    fn clean_candidates(&self) -> Vec<Candidate> {
        let keys: Vec<PartitionKey> = self.partitions.read().keys().copied().collect();
        let mut out = Vec::new();
        for key in keys {
            let Some(topic) = self.topic_record(key) else {
                continue;
            };
            let settings = TopicSettings::of(&topic, &self.config);
            if !settings.compacted {
                continue;
            }
            let Ok(partition) = self.partitions.get(key) else {
                continue;
            };
            let p = lock(&partition);
            if !p.writable() {
                continue;
            }
            let stable = p.last_stable_offset();
            let segments: Vec<ChunkRecord> = p
                .index
                .from_offset(p.record.log_start_offset)
                .take_while(|c| c.segment.is_some() && c.last_offset < stable)
                .cloned()
                .collect();
            if !segments.is_empty() {
                out.push(Candidate {
                    key,
                    segments,
                    policy: settings.cleaning,
                    aborted: p.producers.aborted.clone(),
                });
            }
        }
        out
    }

    /// Cleans, one after the other, the partitions whose clean is due, starting none after
    /// `budget_ms` (the rest wait for the next round, so that the round's checkpoints are not
    /// held up long); returns what each wrote, for the round's checkpoints.
    pub(in crate::log) async fn cleans(
        &self,
        budget_ms: i64,
    ) -> BTreeMap<PartitionKey, CleanedSegments> {
        let started = self.clock.now_ms();
        let mut out = BTreeMap::new();
        for c in self.clean_candidates() {
            let now = self.clock.now_ms();
            if now - started >= budget_ms {
                break;
            }
            let aborted = AbortedIndex::new(&c.aborted);
            let key = c.key;
            match self.clean(key, &c.segments, &c.policy, &aborted, now).await {
                Ok(Some(cleaned)) => {
                    out.insert(key, cleaned);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = %key, error = %e, "log clean failed"),
            }
        }
        out
    }

    /// Cleans a partition's segments if a clean is due (see `clean_plan::cleanable`).
    async fn clean(
        &self,
        key: PartitionKey,
        segments: &[ChunkRecord],
        policy: &Policy,
        aborted: &AbortedIndex,
        now: Millis,
    ) -> Result<Option<CleanedSegments>> {
        let views: Vec<SegmentView> = segments.iter().map(view).collect();
        let Some(end) = clean_plan::cleanable(&views, now, policy) else {
            return Ok(None);
        };
        let mut result = CleanedSegments::default();
        let map = self
            .key_map(&segments[..end], &views[..end], aborted, &mut result)
            .await?;
        let Some(covered) = map.covered().map(Offset) else {
            return Ok(None);
        };
        let end = segments[..end]
            .iter()
            .take_while(|s| s.base_offset <= covered)
            .count();
        let mut changed = false;
        // One pass over every group in offset order: a marker is judged by what was seen of
        // its transaction before it.
        let mut pass = Pass2 {
            map: &map,
            policy,
            now,
            txns: TxnPass::new(aborted, covered.0),
            aborted,
        };
        for group in clean_plan::groups(&views[..end], covered, policy.segment_bytes) {
            let inputs: Vec<&ChunkRecord> = group.iter().map(|i| &segments[*i]).collect();
            let group_views: Vec<SegmentView> = group.iter().map(|i| views[*i]).collect();
            let Rewritten {
                kept,
                removed,
                removable,
            } = self
                .rewrite(&inputs, &group_views, &mut pass, &mut result)
                .await?;
            let cleaned = clean_plan::cleaned_state(&group_views, covered, now, removable);
            let bases: Vec<Offset> = inputs.iter().map(|c| c.base_offset).collect();
            result.removed += removed;
            let first = inputs[0];
            let replacement = if inputs.len() == 1 && removed == 0 {
                // Nothing to remove: the object stays, only what the cleaner knows of it
                // changes (if anything).
                if first.segment.and_then(|s| s.cleaned) == cleaned {
                    continue;
                }
                let mut same = first.clone();
                if let Some(s) = same.segment.as_mut() {
                    s.cleaned = cleaned;
                }
                same
            } else {
                let last = inputs[inputs.len() - 1].last_offset;
                self.write_cleaned(key, (first.base_offset, last), &kept, cleaned)
                    .await?
            };
            changed = true;
            result.replacements.push((bases, replacement));
        }
        if !changed {
            return Ok(None);
        }
        tracing::debug!(partition = %key, segments = end, removed = result.removed, read = result.bytes_read, "partition cleaned");
        Ok(Some(result))
    }

    /// Pass 1: the key map of the dirty segments among `segments`, as far as it holds.
    async fn key_map(
        &self,
        segments: &[ChunkRecord],
        views: &[SegmentView],
        aborted: &AbortedIndex,
        result: &mut CleanedSegments,
    ) -> Result<KeyMap> {
        let mut map = KeyMap::with_memory(self.config.cleaner_buffer_bytes);
        for (segment, view) in segments.iter().zip(views) {
            if !view.is_clean() {
                // The clean part of a segment the last clean's map did not wholly cover is
                // clean already: only the rest is mapped.
                let through = view.clean_through().map_or(i64::MIN, |t| t.0);
                let data = self.segment_data(segment).await?;
                result.bytes_read += data.len() as u64;
                for item in batch::iter(&data) {
                    let (header, bytes) = item.map_err(|e| corrupt(segment, e))?;
                    if !txns::maps(&header, aborted) || header.last_offset() <= through {
                        map.cover(header.last_offset());
                        continue;
                    }
                    let (_, records) =
                        unpack::read_batch(&bytes).map_err(|e| undecodable(segment, &e))?;
                    for r in records.iter().filter(|r| r.offset > through) {
                        let taken = match &r.key {
                            Some(k) => map.put(k, r.offset),
                            None => {
                                map.cover(r.offset);
                                true
                            }
                        };
                        if !taken {
                            return Ok(map);
                        }
                    }
                    map.cover(header.last_offset());
                }
            }
            map.cover(segment.last_offset.0);
        }
        Ok(map)
    }

    /// Pass 2 for one group of segments: the batches kept (rewritten where records went),
    /// how many records went, and what remains for a later clean to remove.
    async fn rewrite(
        &self,
        inputs: &[&ChunkRecord],
        views: &[SegmentView],
        pass: &mut Pass2<'_>,
        result: &mut CleanedSegments,
    ) -> Result<Rewritten> {
        let mut out = Rewritten::default();
        for (segment, view) in inputs.iter().zip(views) {
            let drop_tombstones = clean_plan::tombstones_due(view.cleaned, pass.now, pass.policy);
            let data = self.segment_data(segment).await?;
            result.bytes_read += data.len() as u64;
            for item in batch::iter(&data) {
                let (header, bytes) = item.map_err(|e| corrupt(segment, e))?;
                if header.is_control() {
                    let due = drop_tombstones.is_some_and(|t| header.last_offset() <= t.0);
                    pass.marker(&header, due, bytes, &mut out, result);
                    continue;
                }
                if pass.txns.data(&header) == DataFate::Drop {
                    out.removed += header.record_count.max(0) as u64;
                    continue;
                }
                let retained = unpack::retain(&bytes, |r| {
                    let keep =
                        clean_plan::keeps(pass.map, r.offset, r.key, r.tombstone, drop_tombstones);
                    out.removable |= keep && r.tombstone;
                    keep
                })
                .map_err(|e| undecodable(segment, &e))?;
                pass.txns.kept(&header, retained != unpack::Retained::None);
                match retained {
                    unpack::Retained::All => out.kept.push(bytes),
                    unpack::Retained::None => out.removed += header.record_count.max(0) as u64,
                    unpack::Retained::Some {
                        batch,
                        removed: gone,
                    } => {
                        out.kept.push(batch);
                        out.removed += gone as u64;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Uploads a cleaned segment spanning `span`.
    async fn write_cleaned(
        &self,
        key: PartitionKey,
        span: (Offset, Offset),
        batches: &[Bytes],
        cleaned: Option<crate::schema::Cleaned>,
    ) -> Result<ChunkRecord> {
        let (object, info) = segment::build_spanning(
            key.topic,
            key.partition,
            span,
            batches.iter().map(|b| b.as_ref()),
            self.config.segment_block_bytes,
        )?;
        let object_key = keys::flush_object(self.config.broker_id, uuid::Uuid::now_v7());
        self.store.put(&object_key, object, PutMode::Create).await?;
        Ok(ChunkRecord {
            object: object_key,
            position: info.data_position,
            length: u32::try_from(info.data_length).map_err(|_| Error::BatchTooLarge {
                size: info.data_length as usize,
                max: u32::MAX as usize,
            })?,
            base_offset: span.0,
            last_offset: span.1,
            max_timestamp: info.max_timestamp,
            crc: 0,
            segment: Some(SegmentRef {
                index_position: info.index_position,
                index_length: info.index_length,
                index_crc: info.index_crc,
                cleaned,
            }),
        })
    }

    /// A segment's whole data, each block verified against its index; read past the cache,
    /// which a clean would only flush.
    async fn segment_data(&self, chunk: &ChunkRecord) -> Result<Bytes> {
        if chunk.length == 0 {
            return Ok(Bytes::new());
        }
        let blocks = self.segment_index(chunk).await?;
        let range = chunk.position..chunk.position + u64::from(chunk.length);
        let data = self.get_range(&chunk.object, range).await?;
        for b in &blocks {
            let at = b.position.checked_sub(chunk.position).map(|a| a as usize);
            let block = at
                .filter(|a| a + b.length as usize <= data.len())
                .map(|a| data.slice(a..a + b.length as usize))
                .ok_or_else(|| Error::CorruptData {
                    key: chunk.object.clone(),
                    source: FormatError::IndexBounds,
                })?;
            object_format::verify_chunk(&block, b.length, b.crc).map_err(|source| {
                Error::CorruptData {
                    key: chunk.object.clone(),
                    source,
                }
            })?;
        }
        Ok(data)
    }
}

fn view(c: &ChunkRecord) -> SegmentView {
    SegmentView {
        base: c.base_offset,
        last: c.last_offset,
        bytes: u64::from(c.length),
        max_timestamp: c.max_timestamp,
        cleaned: c.segment.and_then(|s| s.cleaned),
    }
}

fn corrupt(chunk: &ChunkRecord, e: BatchError) -> Error {
    Error::CorruptData {
        key: chunk.object.clone(),
        source: FormatError::MalformedBatch(e),
    }
}

/// A stored batch whose records cannot be read: it passed its checks when it was produced,
/// so this is damage.
fn undecodable(chunk: &ChunkRecord, e: &unpack::UnpackError) -> Error {
    tracing::error!(object = %chunk.object, error = %e, "stored batch cannot be decoded for cleaning");
    corrupt(chunk, BatchError::Invalid("records cannot be decoded"))
}
