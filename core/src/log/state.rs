//! In-memory state of a partition: its committed extent, leadership and indexes over its
//! stored chunks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::object_format::ChunkEntry;
use crate::types::{BrokerId, LeaderEpoch, Millis, Offset};

/// The extent of a partition's log as stored under `partitions/<topic>/<p>`. Absent means an
/// empty log. Written by the leader's commits, fenced by the [`LeaderRecord`]'s revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub log_start_offset: Offset,
    /// Next offset to assign: the committed log end, which is the high watermark.
    pub log_end_offset: Offset,
}

/// Who leads a partition, as stored under `leaders/<topic>/<p>`. Written only when the
/// leadership changes (by the controller, or by a leader handing the partition over), so
/// every commit of the leader compares its mod revision: a change of leader fences the old
/// one's commits. Absent means: no leader yet, epoch 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    /// The incarnation of the leader's registration this leadership was given to. A broker
    /// restarted under the same id has a new incarnation and does not adopt it.
    #[serde(default)]
    pub incarnation: u64,
}

pub use crate::schema::{ChunkRecord, SegmentRef};

impl ChunkRecord {
    pub fn from_entry(object: &str, e: &ChunkEntry) -> ChunkRecord {
        ChunkRecord {
            object: object.to_owned(),
            position: e.position,
            length: e.length,
            base_offset: e.base_offset,
            last_offset: e.last_offset,
            max_timestamp: e.max_timestamp,
            crc: e.crc,
            segment: None,
        }
    }
}

/// Offset and time indexes over a partition's chunks.
#[derive(Debug, Default, Clone)]
pub struct ChunkIndex {
    by_base: BTreeMap<Offset, ChunkRecord>,
    /// Sparse time index: (running maximum timestamp, base offset of the chunk where the
    /// running maximum first reached it). Strictly increasing in both.
    by_time: Vec<(Millis, Offset)>,
}

impl ChunkIndex {
    pub fn from_chunks(chunks: impl IntoIterator<Item = ChunkRecord>) -> ChunkIndex {
        let mut index = ChunkIndex::default();
        let mut sorted: Vec<ChunkRecord> = chunks.into_iter().collect();
        sorted.sort_by_key(|c| c.base_offset);
        for c in sorted {
            index.push(c);
        }
        index
    }

    /// Adds a chunk above every chunk already indexed.
    pub fn push(&mut self, chunk: ChunkRecord) {
        debug_assert!(self
            .by_base
            .last_key_value()
            .is_none_or(|(_, last)| last.last_offset < chunk.base_offset));
        if self
            .by_time
            .last()
            .is_none_or(|(ts, _)| chunk.max_timestamp > *ts)
        {
            self.by_time.push((chunk.max_timestamp, chunk.base_offset));
        }
        self.by_base.insert(chunk.base_offset, chunk);
    }

    /// The chunk holding `offset`, if any.
    pub fn find(&self, offset: Offset) -> Option<&ChunkRecord> {
        self.by_base
            .range(..=offset)
            .next_back()
            .map(|(_, c)| c)
            .filter(|c| c.last_offset >= offset)
    }

    /// Chunks from the one holding `offset` onwards, in offset order.
    pub fn from_offset(&self, offset: Offset) -> impl Iterator<Item = &ChunkRecord> {
        let start = self.find(offset).map_or(offset, |c| c.base_offset);
        self.by_base.range(start..).map(|(_, c)| c)
    }

    /// Base offset of the first chunk that holds a timestamp at or after `ts`.
    pub fn first_at_or_after(&self, ts: Millis) -> Option<Offset> {
        let i = self.by_time.partition_point(|(max, _)| *max < ts);
        self.by_time.get(i).map(|(_, base)| *base)
    }

    /// The chunk holding the greatest timestamp (the first one to reach it).
    pub fn max_timestamp(&self) -> Option<(Millis, Offset)> {
        self.by_time.last().copied()
    }

    /// Flush chunks not yet merged into a segment, oldest first. They always form the tail
    /// of the index: merging starts at the oldest of them.
    pub fn unmerged_chunks(&self) -> impl Iterator<Item = &ChunkRecord> {
        let start = self
            .by_base
            .iter()
            .rev()
            .take_while(|(_, c)| c.segment.is_none())
            .last()
            .map(|(base, _)| *base);
        start
            .into_iter()
            .flat_map(move |s| self.by_base.range(s..).map(|(_, c)| c))
    }

    /// (count, bytes) of the unmerged chunks.
    pub fn unmerged(&self) -> (usize, u64) {
        self.by_base
            .values()
            .rev()
            .take_while(|c| c.segment.is_none())
            .fold((0, 0), |(n, b), c| (n + 1, b + u64::from(c.length)))
    }

    /// Replaces the chunks starting at `bases` by `merged`, which covers exactly them.
    pub fn replace(&mut self, bases: &[Offset], merged: ChunkRecord) {
        for b in bases {
            self.by_base.remove(b);
        }
        self.by_base.insert(merged.base_offset, merged);
        let chunks: Vec<ChunkRecord> = self.by_base.values().cloned().collect();
        *self = ChunkIndex::from_chunks(chunks);
    }

    /// Replaces, for each of `new`, the unmerged chunks it covers: from the one starting at
    /// its base offset to the one ending at its last. Returns false, changing nothing, if any
    /// of them does not line up with the chunks indexed.
    pub fn replace_chunks(&mut self, new: &[ChunkRecord]) -> bool {
        let lines_up = new.iter().all(|n| {
            let mut covered = self
                .by_base
                .range(n.base_offset..=n.last_offset)
                .map(|(_, c)| c);
            let first = covered.next();
            let last = covered.next_back().or(first);
            first.is_some_and(|c| c.base_offset == n.base_offset)
                && last.is_some_and(|c| c.last_offset == n.last_offset)
                && self
                    .by_base
                    .range(n.base_offset..=n.last_offset)
                    .all(|(_, c)| c.segment.is_none())
        });
        if !lines_up {
            return false;
        }
        for n in new {
            let bases: Vec<Offset> = self
                .by_base
                .range(n.base_offset..=n.last_offset)
                .map(|(b, _)| *b)
                .collect();
            for b in bases {
                self.by_base.remove(&b);
            }
            self.by_base.insert(n.base_offset, n.clone());
        }
        let chunks: Vec<ChunkRecord> = self.by_base.values().cloned().collect();
        *self = ChunkIndex::from_chunks(chunks);
        true
    }

    /// Drops chunks that end before `start`.
    pub fn truncate_before(&mut self, start: Offset) {
        let keep = self.by_base.split_off(&start);
        let straddling = self.find(start).cloned();
        self.by_base = keep;
        if let Some(c) = straddling {
            self.by_base.insert(c.base_offset, c);
        }
        let chunks: Vec<ChunkRecord> = self.by_base.values().cloned().collect();
        *self = ChunkIndex::from_chunks(chunks);
    }

    pub fn len(&self) -> usize {
        self.by_base.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_base.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn chunks(spec: &[(i64, i64)]) -> Vec<ChunkRecord> {
        // spec: (record count, max timestamp)
        let mut next = 0;
        spec.iter()
            .map(|(n, ts)| {
                let c = ChunkRecord {
                    object: "o".into(),
                    position: 0,
                    length: 1,
                    base_offset: Offset(next),
                    last_offset: Offset(next + n - 1),
                    max_timestamp: *ts,
                    crc: 0,
                    segment: None,
                };
                next += n;
                c
            })
            .collect()
    }

    proptest! {
        #[test]
        fn offset_finds_its_chunk(spec in proptest::collection::vec((1i64..50, 0i64..1000), 1..40), probe in 0i64..3000) {
            let cs = chunks(&spec);
            let index = ChunkIndex::from_chunks(cs.clone());
            let expected = cs.iter().find(|c| c.base_offset.0 <= probe && probe <= c.last_offset.0);
            prop_assert_eq!(index.find(Offset(probe)), expected);
            // The greatest indexed base at or below the probe starts the iteration.
            let first = index.from_offset(Offset(probe)).next().cloned();
            if let Some(first) = first {
                prop_assert!(first.last_offset.0 >= probe);
            }
        }

        #[test]
        fn time_lookup_finds_first_chunk_reaching_ts(spec in proptest::collection::vec((1i64..50, 0i64..1000), 1..40), ts in 0i64..1100) {
            let cs = chunks(&spec);
            let index = ChunkIndex::from_chunks(cs.clone());
            let expected = cs.iter().find(|c| c.max_timestamp >= ts).map(|c| c.base_offset);
            prop_assert_eq!(index.first_at_or_after(ts), expected);
        }
    }

    #[test]
    fn replace_chunks_needs_exact_boundaries() {
        let original = ChunkIndex::from_chunks(chunks(&[(10, 5), (10, 6), (10, 7), (10, 8)]));
        let with = |base: i64, last: i64| ChunkRecord {
            object: "new".into(),
            position: 0,
            length: 3,
            base_offset: Offset(base),
            last_offset: Offset(last),
            max_timestamp: 7,
            crc: 0,
            segment: None,
        };
        // 5..=24 starts inside the first chunk; 10..=24 ends inside the third.
        for bad in [with(5, 29), with(10, 24)] {
            let mut index = original.clone();
            assert!(!index.replace_chunks(&[with(10, 29), bad]));
            assert_eq!(index.len(), 4);
        }
        let mut index = original.clone();
        assert!(index.replace_chunks(&[with(10, 29)]));
        assert_eq!(index.len(), 3);
        assert_eq!(index.find(Offset(20)).unwrap().object, "new");
        assert_eq!(index.find(Offset(35)).unwrap().object, "o");
        assert_eq!(index.first_at_or_after(7), Some(Offset(10)));
        assert_eq!(index.unmerged(), (3, 5));
    }

    #[test]
    fn truncate_keeps_straddling_chunk() {
        let mut index = ChunkIndex::from_chunks(chunks(&[(10, 5), (10, 6), (10, 7)]));
        index.truncate_before(Offset(15));
        assert_eq!(index.len(), 2);
        assert_eq!(index.find(Offset(15)).unwrap().base_offset, Offset(10));
        assert!(index.find(Offset(5)).is_none());
    }
}
