//! Coalescing small flush chunks of many partitions into one object, reading each flush
//! object once.
//!
//! A flush object holds a small chunk of each of hundreds of partitions. Until a partition
//! has enough bytes for a segment merge (`compaction.min.bytes`), its chunks stay where the
//! flushes put them: checkpoints list each of them (with the object's name), and a merge or
//! a cold read fetches each with a request of its own. At 1,000 partitions and ten flushes a
//! second that is thousands of chunks per partition, tens of megabytes per checkpoint round
//! and thousands of GETs a second.
//!
//! A round therefore coalesces. The partitions with `coalesce_min_chunks` small chunks or
//! more (the newest `coalesce_keep_newest` left alone, as tail readers find them in the
//! cache) name the flush objects to read; each is read once, by one ranged GET, and every
//! partition's runs of consecutive small chunks in them (not only those partitions') are
//! copied, unchanged, into a new object, a chunk of up to [`COALESCED_CHUNK_BYTES`] per run.
//! So an object is read once, and afterwards nothing references it. The source objects are
//! taken oldest first in windows of [`ROUND_BYTES`], one new object per window. The round's
//! checkpoint of each partition then lists the new chunks instead of the old ones; like a
//! merged segment, the new object is garbage if that checkpoint does not commit. No metadata
//! key is written: the coalesced chunks live in checkpoint sections only.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::log::state::ChunkRecord;
use crate::log::{lock, Shared};
use crate::object_format::{self, FlushObjectBuilder};
use crate::ports::PutMode;
use crate::schema::keys;
use crate::types::PartitionKey;

/// A chunk below this size is small: coalescing it saves a listing and a request. A window
/// of [`ROUND_BYTES`] over 1,000 partitions gives chunks of about 64 KiB, which are not
/// coalesced again.
const SMALL_CHUNK_BYTES: u32 = 16 * 1024;

/// Largest chunk a coalesce writes; a fetch reads a whole chunk of this size at most.
pub const COALESCED_CHUNK_BYTES: u64 = 1024 * 1024;

/// Bytes of source objects one new object is made from at most (read, held and written at
/// once).
const ROUND_BYTES: u64 = 64 * 1024 * 1024;

/// Source objects read at once.
const READS_AT_ONCE: usize = 16;

/// One partition's runs to coalesce: each run becomes one chunk.
struct Plan {
    key: PartitionKey,
    runs: Vec<Vec<ChunkRecord>>,
}

/// The runs of consecutive small chunks among `chunks` (oldest first), each cut at
/// [`COALESCED_CHUNK_BYTES`]; runs of one chunk are left out.
fn runs_of(chunks: &[ChunkRecord]) -> Vec<Vec<ChunkRecord>> {
    let mut runs: Vec<Vec<ChunkRecord>> = Vec::new();
    let mut run: Vec<ChunkRecord> = Vec::new();
    let mut bytes = 0u64;
    let mut close = |run: &mut Vec<ChunkRecord>| {
        if run.len() >= 2 {
            runs.push(std::mem::take(run));
        }
        run.clear();
    };
    for c in chunks {
        let follows = run
            .last()
            .is_none_or(|last| last.last_offset.0 + 1 == c.base_offset.0);
        if c.length >= SMALL_CHUNK_BYTES
            || !follows
            || bytes + u64::from(c.length) > COALESCED_CHUNK_BYTES
        {
            close(&mut run);
            bytes = 0;
        }
        if c.length < SMALL_CHUNK_BYTES {
            bytes += u64::from(c.length);
            run.push(c.clone());
        }
    }
    close(&mut run);
    runs
}

/// The byte span of the wanted chunks in each source object.
fn spans_of<'a>(chunks: impl IntoIterator<Item = &'a ChunkRecord>) -> BTreeMap<String, (u64, u64)> {
    let mut spans: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in chunks {
        let end = c.position + u64::from(c.length);
        let span = spans.entry(c.object.clone()).or_insert((c.position, end));
        *span = (span.0.min(c.position), span.1.max(end));
    }
    spans
}

/// The source objects cut into windows of at most [`ROUND_BYTES`] of spans each (one object
/// at least), in name order: flush objects are named by time, so a window holds flushes
/// that followed each other and each partition's chunks in it mostly follow each other too.
fn windows_of(spans: BTreeMap<String, (u64, u64)>) -> Vec<BTreeMap<String, (u64, u64)>> {
    let mut windows = Vec::new();
    let mut window = BTreeMap::new();
    let mut bytes = 0u64;
    for (object, (from, to)) in spans {
        if !window.is_empty() && bytes + (to - from) > ROUND_BYTES {
            windows.push(std::mem::take(&mut window));
            bytes = 0;
        }
        bytes += to - from;
        window.insert(object, (from, to));
    }
    if !window.is_empty() {
        windows.push(window);
    }
    windows
}

impl Shared {
    /// Every partition's chunks a coalesce may take (all unmerged ones but the newest), and
    /// whether the partition has enough small ones to start a coalesce. `skip`: partitions
    /// merged in this round.
    fn coalesce_candidates(
        &self,
        skip: &BTreeMap<PartitionKey, ChunkRecord>,
    ) -> Vec<(PartitionKey, Vec<ChunkRecord>, bool)> {
        let map = self.partitions.read();
        let mut out = Vec::new();
        for (key, p) in map.iter() {
            if skip.contains_key(key) {
                continue;
            }
            let p = lock(p);
            if !p.writable() {
                continue;
            }
            let mut chunks: Vec<ChunkRecord> = p.index.unmerged_chunks().cloned().collect();
            chunks.truncate(
                chunks
                    .len()
                    .saturating_sub(self.config.coalesce_keep_newest),
            );
            let small = chunks
                .iter()
                .filter(|c| c.length < SMALL_CHUNK_BYTES)
                .count();
            if small >= 2 {
                let wants = small >= self.config.coalesce_min_chunks.max(2);
                out.push((*key, chunks, wants));
            }
        }
        out
    }

    /// Coalesces the small chunks of the partitions that have many, a window of source
    /// objects at a time (each window one new object, so memory stays bounded); returns the
    /// new chunks of each partition (oldest first), which the round's checkpoint commits.
    /// Stops after `budget_ms`; a window that fails ends the coalesce with what is done.
    pub(in crate::log) async fn coalesce(
        &self,
        skip: &BTreeMap<PartitionKey, ChunkRecord>,
        budget_ms: i64,
    ) -> BTreeMap<PartitionKey, Vec<ChunkRecord>> {
        let started = self.clock.now_ms();
        let candidates = self.coalesce_candidates(skip);
        // The objects that partitions with many small chunks need; once read, everything in
        // them that can be coalesced is, so that no object is read twice.
        let needed: BTreeSet<&str> = candidates
            .iter()
            .filter(|(_, _, wants)| *wants)
            .flat_map(|(_, chunks, _)| chunks.iter())
            .filter(|c| c.length < SMALL_CHUNK_BYTES)
            .map(|c| c.object.as_str())
            .collect();
        let spans = spans_of(
            candidates
                .iter()
                .flat_map(|(_, chunks, _)| chunks.iter())
                .filter(|c| c.length < SMALL_CHUNK_BYTES && needed.contains(c.object.as_str())),
        );
        let mut out: BTreeMap<PartitionKey, Vec<ChunkRecord>> = BTreeMap::new();
        for window in windows_of(spans) {
            let plans: Vec<Plan> = candidates
                .iter()
                .map(|(key, chunks, _)| {
                    let inside: Vec<ChunkRecord> = chunks
                        .iter()
                        .filter(|c| window.contains_key(&c.object))
                        .cloned()
                        .collect();
                    Plan {
                        key: *key,
                        runs: runs_of(&inside),
                    }
                })
                .filter(|p| !p.runs.is_empty())
                .collect();
            if plans.is_empty() {
                continue;
            }
            match self.coalesce_window(window, &plans).await {
                Ok(placed) => {
                    for (key, chunks) in placed {
                        out.entry(key).or_default().extend(chunks);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot coalesce small chunks");
                    break;
                }
            }
            if self.clock.now_ms() - started >= budget_ms {
                break;
            }
        }
        out
    }

    /// Reads a window's source objects (one ranged GET each) and writes the plans' runs into
    /// one new object.
    async fn coalesce_window(
        &self,
        spans: BTreeMap<String, (u64, u64)>,
        plans: &[Plan],
    ) -> Result<Vec<(PartitionKey, Vec<ChunkRecord>)>> {
        let reads = spans.into_iter().map(|(object, (from, to))| async move {
            let bytes = self.store.get_range(&object, from..to).await;
            (object, from, bytes)
        });
        let mut sources: BTreeMap<String, (u64, Bytes)> = BTreeMap::new();
        let mut reads = futures::stream::iter(reads).buffer_unordered(READS_AT_ONCE);
        while let Some((object, from, bytes)) = reads.next().await {
            match bytes {
                Ok(bytes) => {
                    sources.insert(object, (from, bytes));
                }
                Err(crate::ports::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(Error::Store(e)),
            }
        }
        // A source that is gone (which reads of those chunks report too) leaves its partitions
        // as they are; the others go on.
        let plans: Vec<&Plan> = plans
            .iter()
            .filter(|p| {
                let lost = p.runs.iter().flatten().find(|c| !sources.contains_key(&c.object));
                if let Some(c) = lost {
                    tracing::warn!(partition = %p.key, object = %c.object, "cannot coalesce: a chunk's object is missing");
                }
                lost.is_none()
            })
            .collect();
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let piece = |c: &ChunkRecord| -> Result<&[u8]> {
            let (from, bytes) = sources
                .get(&c.object)
                .ok_or_else(|| Error::MissingData(c.object.clone()))?;
            let at = usize::try_from(c.position - from).unwrap_or(usize::MAX);
            let data = at
                .checked_add(c.length as usize)
                .and_then(|end| bytes.get(at..end))
                .ok_or_else(|| {
                    Error::MissingData(format!("{} is shorter than its chunks", c.object))
                })?;
            object_format::verify_chunk(data, c.length, c.crc).map_err(|source| {
                Error::CorruptData {
                    key: c.object.clone(),
                    source,
                }
            })?;
            Ok(data)
        };
        let capacity: usize = plans
            .iter()
            .flat_map(|p| p.runs.iter().flatten())
            .map(|c| c.length as usize)
            .sum();
        let mut builder =
            FlushObjectBuilder::new(self.config.broker_id, self.clock.now_ms(), capacity);
        let mut placed: Vec<(PartitionKey, Vec<object_format::ChunkEntry>)> = Vec::new();
        for plan in &plans {
            let mut entries = Vec::with_capacity(plan.runs.len());
            for run in &plan.runs {
                let pieces = run
                    .iter()
                    .map(|c| piece(c).map(|d| (d, c.crc)))
                    .collect::<Result<Vec<_>>>()?;
                let entry =
                    builder.add_written_chunk(plan.key.topic, plan.key.partition, pieces)?;
                let (first, last) = (&run[0], &run[run.len() - 1]);
                if entry.base_offset != first.base_offset || entry.last_offset != last.last_offset {
                    return Err(Error::MissingData(format!(
                        "chunks of {} hold offsets {}..={}, not {}..={}",
                        plan.key,
                        entry.base_offset.0,
                        entry.last_offset.0,
                        first.base_offset.0,
                        last.last_offset.0
                    )));
                }
                entries.push(entry);
            }
            placed.push((plan.key, entries));
        }
        drop(sources);
        let (object, _, _) = builder.finish();
        let object_key = keys::flush_object(self.config.broker_id, uuid::Uuid::now_v7());
        self.store.put(&object_key, object, PutMode::Create).await?;
        let replaced: usize = plans.iter().map(|p| p.runs.iter().flatten().count()).sum();
        self.stats
            .coalesced
            .fetch_add(replaced as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(partitions = placed.len(), replaced, object = %object_key, "small chunks coalesced");
        Ok(placed
            .into_iter()
            .map(|(key, entries)| {
                let chunks = entries
                    .iter()
                    .map(|e| ChunkRecord::from_entry(&object_key, e))
                    .collect();
                (key, chunks)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::Offset;

    fn chunk(base: i64, count: i64, length: u32) -> ChunkRecord {
        ChunkRecord {
            object: format!("o{base}"),
            position: 0,
            length,
            base_offset: Offset(base),
            last_offset: Offset(base + count - 1),
            max_timestamp: 0,
            crc: 0,
            segment: None,
        }
    }

    fn bases(runs: &[Vec<ChunkRecord>]) -> Vec<Vec<i64>> {
        runs.iter()
            .map(|r| r.iter().map(|c| c.base_offset.0).collect())
            .collect()
    }

    #[test]
    fn runs_skip_large_chunks_gaps_and_singles() {
        let chunks = [
            chunk(0, 2, 100),
            chunk(2, 3, 100),
            chunk(5, 1, SMALL_CHUNK_BYTES), // large: stays, and ends the run
            chunk(6, 1, 100),               // alone between two large ones: stays
            chunk(7, 1, SMALL_CHUNK_BYTES),
            chunk(8, 4, 100),
            chunk(12, 1, 100),
            // a gap (offsets 13..20 gone): a new run
            chunk(20, 1, 100),
            chunk(21, 1, 100),
        ];
        let runs = runs_of(&chunks);
        assert_eq!(bases(&runs), vec![vec![0, 2], vec![8, 12], vec![20, 21]]);
    }

    #[test]
    fn windows_hold_round_bytes_in_name_order() {
        let half = ROUND_BYTES / 2;
        let spans: BTreeMap<String, (u64, u64)> = [
            ("b", (10, 10 + half)),
            ("a", (0, half)),
            ("c", (0, 1)),
            ("d", (0, ROUND_BYTES * 2)), // larger than a window: a window of its own
            ("e", (5, 6)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let windows = windows_of(spans);
        let names: Vec<Vec<&str>> = windows
            .iter()
            .map(|w| w.keys().map(String::as_str).collect())
            .collect();
        assert_eq!(names, vec![vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }

    #[test]
    fn runs_are_cut_at_the_coalesced_chunk_size() {
        let size = SMALL_CHUNK_BYTES - 1024;
        let per_run = (COALESCED_CHUNK_BYTES / u64::from(size)) as usize;
        let n = 2 * per_run + per_run / 2;
        let chunks: Vec<ChunkRecord> = (0..n as i64).map(|i| chunk(i, 1, size)).collect();
        let lengths: Vec<usize> = runs_of(&chunks).iter().map(Vec::len).collect();
        assert_eq!(lengths, vec![per_run, per_run, per_run / 2]);
        assert!(runs_of(&chunks).iter().all(|r| {
            r.iter().map(|c| u64::from(c.length)).sum::<u64>() <= COALESCED_CHUNK_BYTES
        }));
    }
}
