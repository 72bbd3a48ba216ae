//! The log cleaner's decisions, without I/O: which segments of a compacted partition a clean
//! takes, the key map of its first pass, which records its second pass keeps, and how the
//! rewritten segments are grouped. `clean.rs` reads and writes the objects.
//!
//! As in Kafka, a partition's segments are clean (rewritten by an earlier clean, each key at
//! most once among them) or dirty (merged from flushes since). A clean maps every key of the
//! dirty segments to its latest offset (pass 1), then rewrites the clean and dirty segments
//! keeping a record only if it is its key's latest (pass 2). The unmerged flush chunks are the
//! active part of the log and are never cleaned, nor are segments holding records younger than
//! `min.compaction.lag.ms`, nor those at or after the last stable offset (the first record of
//! an open transaction). What a clean makes of transactions is in [`txns`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::schema::Cleaned;
use crate::types::{Millis, Offset};

/// Memory one key of the map takes: a 128-bit hash and an offset, with the hash table's own
/// overhead (it is kept at most 7/8 full).
pub const MAP_ENTRY_BYTES: usize = 32;

/// Segments one clean rewrites at most, so that its metadata changes (a put or a delete per
/// segment) fit one transaction; a longer log is cleaned over several runs.
pub const MAX_SEGMENTS_PER_CLEAN: usize = 48;

/// A compacted topic's cleaning settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `delete.retention.ms`: how long a tombstone stays after its segment was first cleaned.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment holding a record younger than this is not cleaned.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment older than this is cleaned whatever the ratio.
    pub max_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty bytes over all cleanable bytes that start a clean.
    pub min_dirty_ratio: f64,
    /// `segment.bytes`: the largest segment a clean writes (from several small ones).
    pub segment_bytes: u64,
}

/// A segment as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentView {
    pub base: Offset,
    pub last: Offset,
    pub bytes: u64,
    pub max_timestamp: Millis,
    pub cleaned: Option<Cleaned>,
}

impl SegmentView {
    /// The offset it is clean up to, if any.
    pub fn clean_through(&self) -> Option<Offset> {
        self.cleaned.map(|c| c.through)
    }

    /// Clean to its end: a clean maps none of its keys.
    pub fn is_clean(&self) -> bool {
        self.clean_through().is_some_and(|t| t >= self.last)
    }
}

/// How many of a partition's segments (oldest first) a clean should take now, if one is due:
/// those before the first holding a record younger than the minimum lag (at most
/// [`MAX_SEGMENTS_PER_CLEAN`]). Due when they hold dirty bytes at the dirty ratio or more,
/// a dirty segment older than the maximum lag, or tombstones past their time.
pub fn cleanable(segments: &[SegmentView], now: Millis, policy: &Policy) -> Option<usize> {
    // Without a minimum lag nothing is too young, whatever a producer's clock said.
    let young = |s: &SegmentView| {
        policy.min_lag_ms > 0 && s.max_timestamp > now.saturating_sub(policy.min_lag_ms)
    };
    let end = segments
        .iter()
        .position(young)
        .unwrap_or(segments.len())
        .min(MAX_SEGMENTS_PER_CLEAN);
    let region = &segments[..end];
    let total: u64 = region.iter().map(|s| s.bytes).sum();
    let dirty: u64 = region
        .iter()
        .filter(|s| !s.is_clean())
        .map(|s| s.bytes)
        .sum();
    let ratio_reached = dirty > 0 && dirty as f64 >= policy.min_dirty_ratio * total as f64;
    let overdue = region
        .iter()
        .find(|s| !s.is_clean())
        .is_some_and(|s| s.max_timestamp <= now.saturating_sub(policy.max_lag_ms));
    let tombstones_due = region.iter().any(|s| {
        s.cleaned.is_some_and(|c| {
            c.tombstones && c.since_ms.saturating_add(policy.delete_retention_ms) <= now
        })
    });
    (end > 0 && (ratio_reached || overdue || tombstones_due)).then_some(end)
}

/// Pass 1's map: each key's latest offset, by a 128-bit hash of the key, up to a number of
/// keys fixed by the memory it may take (Kafka's `log.cleaner.dedupe.buffer.size`).
#[derive(Debug)]
pub struct KeyMap {
    latest: HashMap<u128, i64>,
    capacity: usize,
    /// The last offset put in the map: records after it are beyond what this clean knows.
    covered: Option<i64>,
}

impl KeyMap {
    pub fn with_memory(bytes: usize) -> KeyMap {
        KeyMap {
            latest: HashMap::new(),
            capacity: (bytes / MAP_ENTRY_BYTES).max(1),
            covered: None,
        }
    }

    /// Records that `key` is at `offset` (offsets come in increasing order). Returns false,
    /// changing nothing, when the key is new and the map is full: the clean then covers the
    /// offsets before this one only.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let h = hash(key);
        if self.latest.len() >= self.capacity && !self.latest.contains_key(&h) {
            return false;
        }
        debug_assert!(self.covered.is_none_or(|c| c < offset));
        self.latest.insert(h, offset);
        self.covered = Some(offset);
        true
    }

    /// Marks the offsets up to `offset` covered (records the map does not take, such as
    /// markers and aborted ones, do not end what it covers).
    pub fn cover(&mut self, offset: i64) {
        self.covered = Some(self.covered.map_or(offset, |c| c.max(offset)));
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&hash(key)).copied()
    }

    /// The last offset the map covers.
    pub fn covered(&self) -> Option<i64> {
        self.covered
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.latest.len()
    }
}

/// Two SipHash passes with different prefixes: 128 bits, so that two keys of one partition
/// share a hash (and the older one's records are wrongly removed) with a probability of about
/// n^2 / 2^129 (Kafka uses 128-bit MD5 likewise).
fn hash(key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// Whether pass 2 keeps a record: one beyond the map's range is kept; otherwise it must be
/// its key's latest, and a tombstone goes if its segment's tombstones are due and it lies in
/// the segment's clean part (`drop_tombstones_through`, from [`tombstones_due`]). A record
/// without a key is not kept, as Kafka's cleaner does (a compacted topic refuses them; they
/// can only predate the policy).
pub fn keeps(
    map: &KeyMap,
    offset: i64,
    key: Option<&[u8]>,
    tombstone: bool,
    drop_tombstones_through: Option<Offset>,
) -> bool {
    let drop_tombstones = drop_tombstones_through.is_some_and(|t| offset <= t.0);
    if map.covered().is_none_or(|c| offset > c) {
        return true;
    }
    let Some(key) = key else {
        return false;
    };
    let latest = map.latest(key).is_none_or(|l| l <= offset);
    latest && !(tombstone && drop_tombstones)
}

/// Up to which offset the tombstones of a segment go in a clean at `now`: its clean part,
/// once `delete.retention.ms` has passed since it was first cleaned.
pub fn tombstones_due(cleaned: Option<Cleaned>, now: Millis, policy: &Policy) -> Option<Offset> {
    cleaned
        .filter(|c| c.since_ms.saturating_add(policy.delete_retention_ms) <= now)
        .map(|c| c.through)
}

/// The segments a clean rewrites into one: consecutive, of the same kind (dirty and fully
/// covered by the map, or already clean, or beyond the map), and together at most
/// `segment.bytes` (the inputs' bytes bound the output's).
pub fn groups(segments: &[SegmentView], covered: Offset, segment_bytes: u64) -> Vec<Vec<usize>> {
    #[derive(PartialEq)]
    enum Kind {
        Dirty,
        Clean,
        Partial,
    }
    let kind = |s: &SegmentView| {
        if s.last > covered {
            Kind::Partial
        } else if s.is_clean() {
            Kind::Clean
        } else {
            Kind::Dirty
        }
    };
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0u64;
    for (i, s) in segments.iter().enumerate() {
        let joins = out.last().is_some_and(|g| {
            let prev = &segments[g[g.len() - 1]];
            kind(prev) == kind(s) && kind(s) != Kind::Partial && bytes + s.bytes <= segment_bytes
        });
        if joins {
            bytes += s.bytes;
            if let Some(g) = out.last_mut() {
                g.push(i);
            }
        } else {
            bytes = s.bytes;
            out.push(vec![i]);
        }
    }
    out
}

/// What a group's output segment records of its cleaning: clean up to what the map covered
/// (all of it, or part of a segment the map did not wholly cover); first cleaned `now`, or,
/// for inputs cleaned before, at the latest of their times (their tombstones then stay at
/// most that much longer). `removable`: it holds tombstones or markers a later clean removes
/// once `delete.retention.ms` has passed.
pub fn cleaned_state(
    inputs: &[SegmentView],
    covered: Offset,
    now: Millis,
    removable: bool,
) -> Option<Cleaned> {
    let (first, last) = (inputs.first()?, inputs.last()?);
    if covered < first.base {
        return first.cleaned;
    }
    let since_ms = inputs
        .iter()
        .map(|s| s.cleaned.map_or(now, |c| c.since_ms))
        .max()
        .unwrap_or(now);
    let before = first.clean_through().unwrap_or(covered);
    Some(Cleaned {
        since_ms,
        tombstones: removable,
        through: covered.max(before).min(last.last),
    })
}

#[cfg(test)]
mod tests;
pub mod txns;
