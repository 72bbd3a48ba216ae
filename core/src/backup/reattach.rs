//! Which records written after a backup may be re-attached to the restored metadata: the
//! decision, per partition, from the chunks the bucket holds and the restored state. No I/O;
//! [`super::recover`] reads the bucket and writes what is decided.
//!
//! The flush records of those chunks were lost with the metadata store, and an uploaded but
//! uncommitted object is garbage, so a chunk is taken only where nothing committed can have
//! held its offsets instead. What proves a chunk was *not* committed:
//!
//! - **A later leader.** A leader of epoch `f` loads the committed state before its first
//!   flush, after the previous leader was fenced or handed over, so its first chunk starts
//!   exactly at the committed end of the epochs before it. A chunk whose batches are all of
//!   a lower epoch and which reaches past the start of any chunk of epoch `f` never
//!   committed. The restored checkpoint's epoch is such a leader too (it wrote that
//!   checkpoint on taking the partition over).
//! - **A later flush of the same leader at the same offset.** A leader builds a flush on
//!   its committed end, or on the flush before it; only after a flush fails does it build
//!   on the same offset again. Of chunks of one leader starting at one offset, all but the
//!   newest (object keys are UUIDv7, in creation order) failed.
//!
//! Nothing proves the newest chunk at an offset committed: the chain from the restored end
//! is taken as found, and the part no later leader confirms is reported as unconfirmed (its
//! producer may have been told the write failed). Chunks after a gap, two brokers' chunks
//! with different records at one offset, and chunks that start below the end reached and
//! run past it are left out and reported.

use serde::Serialize;

use crate::object_format::{ChunkEntry, ProducerBatch};
use crate::types::{BrokerId, LeaderEpoch, Millis, Offset};

/// A partition's chunk in an object the restored metadata does not reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The object's key (`data/<broker>/<uuidv7>.ksf`: sorting keys of one broker sorts them
    /// by creation).
    pub object: String,
    pub broker: BrokerId,
    pub created_ms: Millis,
    /// Where the object's index lies.
    pub index: (u64, u32),
    pub entry: ChunkEntry,
    /// The leader epochs stamped on its first and last batch: only coalescing copies
    /// committed batches of several leaders into one chunk.
    pub first_epoch: LeaderEpoch,
    pub last_epoch: LeaderEpoch,
    /// Its batches, in order: copies hold the same ones.
    pub batches: Vec<BatchMark>,
    pub producers: Vec<ProducerBatch>,
}

/// What tells one batch from another: where it is, its leader's stamp and the CRC of its
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    pub base_offset: Offset,
    pub epoch: LeaderEpoch,
    pub crc: u32,
}

impl Found {
    fn same_records(&self, other: &Found) -> bool {
        self.batches == other.batches
    }

    /// Whether `other`'s batches are the first of this chunk's.
    fn holds(&self, other: &Found) -> bool {
        self.batches.starts_with(&other.batches)
    }
}

/// Where the restored metadata leaves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub end: Offset,
    /// The epoch of the leader that wrote the restored checkpoint (none without one).
    pub epoch: Option<LeaderEpoch>,
}

/// Why a chunk is not re-attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A later leader started at or below its offsets: it never committed.
    Fenced,
    /// The same leader wrote the same offsets again later: this flush failed.
    Replaced,
    /// Another object holds the same records.
    Duplicate,
    /// It starts below the end reached (restored, or by a longer chunk attached before it)
    /// and runs past it, as a coalesced copy can: only whole chunks can be attached.
    Overlaps,
    /// The offsets before it are in no object.
    Gap,
    /// Two brokers' chunks with different records start at the same offset, and nothing
    /// tells which committed.
    Undecided,
}

/// What is decided for one partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The chunks to attach, in offset order, each starting where the one before ends.
    pub taken: Vec<Found>,
    /// Offsets below this are proven committed (a later leader started above them).
    pub confirmed_end: Offset,
    pub left: Vec<(Found, Reason)>,
    /// Chunks entirely below the restored end: already restored, or garbage from before.
    pub below: usize,
}

impl Decision {
    pub fn end(&self, restored: Restored) -> Offset {
        self.taken
            .last()
            .map_or(restored.end, |c| c.entry.last_offset.next())
    }
}

/// Decides which of a partition's found chunks continue its restored log.
pub fn decide(restored: Restored, found: Vec<Found>) -> Decision {
    let mut d = Decision {
        confirmed_end: restored.end,
        ..Decision::default()
    };
    let mut live = Vec::new();
    for c in found {
        if c.entry.last_offset < restored.end {
            d.below += 1;
        } else if c.entry.base_offset < restored.end {
            d.left.push((c, Reason::Overlaps));
        } else {
            live.push(c);
        }
    }
    // The fence rule, against the restored checkpoint's leader and every later one seen.
    let starts = live_starts(&live);
    let (fenced, mut live): (Vec<Found>, Vec<Found>) = live.into_iter().partition(|c| {
        restored.epoch.is_some_and(|e| c.last_epoch < e) || found_later_leader(c, &starts)
    });
    d.left
        .extend(fenced.into_iter().map(|c| (c, Reason::Fenced)));
    live.sort_by(|a, b| {
        (a.entry.base_offset, a.created_ms, &a.object).cmp(&(
            b.entry.base_offset,
            b.created_ms,
            &b.object,
        ))
    });
    let mut cursor = restored.end;
    let mut epoch = restored.epoch;
    let mut rest = live.into_iter().peekable();
    loop {
        // Chunks below the cursor were passed over by a longer chunk taken before them.
        while let Some(c) = rest.next_if(|c| c.entry.base_offset < cursor) {
            let reason = if d
                .taken
                .iter()
                .any(|t| t.entry.last_offset >= c.entry.last_offset)
            {
                Reason::Duplicate
            } else {
                Reason::Overlaps
            };
            d.left.push((c, reason));
        }
        let mut here: Vec<Found> = Vec::new();
        while let Some(c) = rest.next_if(|c| c.entry.base_offset == cursor) {
            here.push(c);
        }
        if here.is_empty() {
            d.left.extend(rest.map(|c| (c, Reason::Gap)));
            break;
        }
        let Some((chosen, others)) = choose(here.clone()) else {
            d.left
                .extend(here.into_iter().map(|c| (c, Reason::Undecided)));
            d.left.extend(rest.map(|c| (c, Reason::Gap)));
            break;
        };
        d.left.extend(others);
        let copy = chosen.first_epoch < chosen.last_epoch;
        if copy {
            // Only coalescing writes batches of several leaders in one chunk, and it copies
            // committed ones.
            d.confirmed_end = chosen.entry.last_offset.next();
        } else if epoch.is_some_and(|e| chosen.first_epoch > e) {
            // A new leader loaded the committed state here.
            d.confirmed_end = cursor;
        }
        epoch = Some(chosen.last_epoch);
        cursor = chosen.entry.last_offset.next();
        d.taken.push(chosen);
    }
    d
}

/// Of the chunks starting at one offset (in creation order: by time, then by key, which
/// orders one broker's UUIDv7 keys),
/// the one that may have committed, and why each other one did not; `None` when that
/// cannot be told.
fn choose(mut here: Vec<Found>) -> Option<(Found, Vec<(Found, Reason)>)> {
    let newest = here.pop()?;
    let why = |c: Found, reason: Reason| (c, reason);
    if here.iter().all(|c| c.same_records(&newest)) {
        return Some((
            newest,
            here.into_iter()
                .map(|c| why(c, Reason::Duplicate))
                .collect(),
        ));
    }
    if here.iter().all(|c| c.broker == newest.broker) {
        // One leader's: every flush but the newest at this offset failed (a coalesced copy
        // is always newer than what it copies, and holds the same batches).
        let others = here
            .into_iter()
            .map(|c| {
                let reason = if newest.holds(&c) {
                    Reason::Duplicate
                } else {
                    Reason::Replaced
                };
                why(c, reason)
            })
            .collect();
        return Some((newest, others));
    }
    // Two brokers wrote batches of one epoch here, so one of them copied the other's
    // committed batches: a copy newer than everything else that holds all of it is safe.
    if here.iter().all(|c| newest.holds(c)) {
        return Some((
            newest,
            here.into_iter()
                .map(|c| why(c, Reason::Duplicate))
                .collect(),
        ));
    }
    None
}

/// (first epoch, base offset) of each chunk.
fn live_starts(live: &[Found]) -> Vec<(LeaderEpoch, Offset)> {
    live.iter()
        .map(|c| (c.first_epoch, c.entry.base_offset))
        .collect()
}

/// Whether a leader newer than every batch of `c` started at or below its last offset.
fn found_later_leader(c: &Found, starts: &[(LeaderEpoch, Offset)]) -> bool {
    starts
        .iter()
        .any(|(epoch, base)| *epoch > c.last_epoch && *base <= c.entry.last_offset)
}

#[cfg(test)]
#[path = "reattach_tests.rs"]
mod tests;
