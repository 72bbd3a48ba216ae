//! Idempotent producers: for each producer id seen on a partition, its epoch and the
//! sequence ranges and offsets of its last five batches. A batch is appended only if its
//! sequence follows the last one of its producer; a retried batch (same sequence range) is
//! answered with the offset it got the first time; a stale epoch is refused.
//!
//! The check runs when a flush is built, against the committed state plus the batches
//! ahead of it in the same flush, so a failed flush never leaves a gap that later batches
//! were accepted on top of. A new leader continues from the state its checkpoint keeps and
//! replays the idempotent batches of the flushes after it (each flush object's index lists
//! them), as Kafka rebuilds producer state from its log.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::batch::BatchHeader;
pub use crate::batch::TxnRole;
use crate::error::Error;
use crate::types::{Millis, Offset};

/// Batches remembered per producer, as Kafka does (max.in.flight of an idempotent
/// producer is at most five).
pub const TRACKED_BATCHES: usize = 5;

/// Producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    #[serde(default)]
    pub producers: BTreeMap<i64, ProducerEntry>,
    /// Aborted transactions of the partition, oldest first: read_committed fetches name
    /// those their range overlaps, and the consumers drop their records.
    #[serde(default)]
    pub aborted: Vec<AbortedTxn>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    pub batches: VecDeque<(i32, i32, i64)>,
    /// When the producer last wrote here; idle producers are forgotten.
    pub last_ms: Millis,
    /// The first offset of the producer's open transaction here: the last stable offset
    /// cannot pass it until the transaction's marker is written.
    #[serde(default)]
    pub txn_first: Option<i64>,
}

/// An aborted transaction's range in a partition: its first record and its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// What to do with a batch.
#[derive(Debug)]
pub enum SeqCheck {
    /// Not idempotent, or next in sequence: append it.
    Append,
    /// A retry of a batch already in the log, at this base offset.
    Duplicate(Offset),
    Reject(Error),
}

fn next_seq(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

fn last_seq(h: &BatchHeader) -> i32 {
    wrap_sequence(h.base_sequence, h.last_offset_delta)
}

/// The last sequence of a batch: sequences wrap at i32::MAX like offsets of a producer's own
/// numbering.
fn wrap_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    let last = i64::from(base_sequence) + i64::from(last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

impl ProducerStates {
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty() && self.aborted.is_empty()
    }

    /// The first offset of the oldest open transaction, if any: the last stable offset.
    pub fn first_unstable(&self) -> Option<Offset> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first)
            .min()
            .map(Offset)
    }

    /// The aborted transactions whose range overlaps `from..to`.
    pub fn aborted_between(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly before the log start.
    pub fn prune_aborted(&mut self, log_start: Offset) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Forgets the aborted transactions whose abort markers the log cleaner removed, given
    /// as (producer id, marker offset): none of their records remains, and an entry without
    /// its marker would hide the producer's later transactions from read_committed readers.
    pub fn retire_aborted(&mut self, markers: &[(i64, Offset)]) {
        if markers.is_empty() {
            return;
        }
        let gone: HashSet<(i64, Offset)> = markers.iter().copied().collect();
        self.aborted
            .retain(|a| !gone.contains(&(a.producer_id, a.last_offset)));
    }

    /// Takes the state a flush committed from `from` (its first offset) on, planned from
    /// this state as it was then: its producers, and the aborted transactions its markers
    /// ended. Those before `from` stay as they are here, since a clean may have retired some
    /// meanwhile.
    pub fn adopt(&mut self, next: ProducerStates, from: Offset) {
        let ProducerStates { producers, aborted } = next;
        self.producers = producers;
        self.aborted
            .extend(aborted.into_iter().filter(|a| a.last_offset >= from));
    }

    pub fn check(&self, h: &BatchHeader) -> SeqCheck {
        let pid = h.producer_id;
        if pid < 0 {
            return SeqCheck::Append;
        }
        if h.is_control() {
            // A transaction marker: no sequence; an epoch older than the producer's is a
            // zombie coordinator's.
            return match self.producers.get(&pid) {
                Some(e) if h.producer_epoch < e.epoch => {
                    SeqCheck::Reject(Error::InvalidProducerEpoch {
                        producer_id: pid,
                        got: h.producer_epoch,
                        current: e.epoch,
                    })
                }
                _ => SeqCheck::Append,
            };
        }
        let Some(e) = self.producers.get(&pid) else {
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Reject(Error::UnknownProducerId(pid))
            };
        };
        if h.producer_epoch < e.epoch {
            return SeqCheck::Reject(Error::InvalidProducerEpoch {
                producer_id: pid,
                got: h.producer_epoch,
                current: e.epoch,
            });
        }
        if h.producer_epoch > e.epoch {
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Reject(Error::OutOfOrderSequence {
                    producer_id: pid,
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        let last = last_seq(h);
        if let Some((_, _, base)) = e
            .batches
            .iter()
            .find(|(first, l, _)| *first == h.base_sequence && *l == last)
        {
            return SeqCheck::Duplicate(Offset(*base));
        }
        let expected = e.batches.back().map_or(0, |(_, l, _)| next_seq(*l));
        if h.base_sequence == expected {
            SeqCheck::Append
        } else {
            SeqCheck::Reject(Error::OutOfOrderSequence {
                producer_id: pid,
                expected,
                got: h.base_sequence,
            })
        }
    }

    /// Records an appended batch at `base`.
    pub fn record(&mut self, h: &BatchHeader, role: TxnRole, base: Offset, now: Millis) {
        self.record_batch(
            ProducerBatchFields {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
                last_offset_delta: h.last_offset_delta,
                role,
            },
            base,
            now,
        );
    }

    /// Records an appended batch from its producer fields (as a flush object's index keeps
    /// them, for a new leader replaying the flushes after a checkpoint).
    pub fn record_batch(&mut self, b: ProducerBatchFields, base: Offset, now: Millis) {
        let ProducerBatchFields {
            producer_id,
            epoch,
            base_sequence,
            last_offset_delta,
            role,
        } = b;
        if producer_id < 0 {
            return;
        }
        let e = self.producers.entry(producer_id).or_default();
        match role {
            TxnRole::Commit | TxnRole::Abort => {
                // A marker ends the producer's transaction here.
                if let (TxnRole::Abort, Some(first)) = (role, e.txn_first) {
                    self.aborted.push(AbortedTxn {
                        producer_id,
                        first_offset: Offset(first),
                        last_offset: base,
                    });
                }
                e.txn_first = None;
            }
            TxnRole::Data if e.txn_first.is_none() => e.txn_first = Some(base.0),
            TxnRole::Data | TxnRole::None => {}
        }
        if base_sequence < 0 {
            // A transaction marker (no sequence): a newer epoch fences the producer's older
            // one here too; the sequences start again with it.
            if epoch > e.epoch || e.batches.is_empty() {
                e.epoch = epoch;
                e.batches.clear();
            }
            e.last_ms = e.last_ms.max(now);
            return;
        }
        if e.epoch != epoch {
            e.batches.clear();
            e.epoch = epoch;
        }
        e.batches.push_back((
            base_sequence,
            wrap_sequence(base_sequence, last_offset_delta),
            base.0,
        ));
        while e.batches.len() > TRACKED_BATCHES {
            e.batches.pop_front();
        }
        e.last_ms = e.last_ms.max(now);
    }

    /// Forgets producers idle since before `cutoff`, except those with a transaction open
    /// here (its marker is still to come).
    pub fn expire(&mut self, cutoff: Millis) {
        self.producers
            .retain(|_, e| e.last_ms >= cutoff || e.txn_first.is_some());
    }
}

/// A batch's producer fields, as the flush object's index keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatchFields {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub last_offset_delta: i32,
    pub role: TxnRole,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size: 100,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut s = ProducerStates::default();
        assert!(matches!(s.check(&header(-1, -1, -1, 3)), SeqCheck::Append));
        assert!(matches!(
            s.check(&header(7, 0, 5, 1)),
            SeqCheck::Reject(Error::UnknownProducerId(7))
        ));
        let b0 = header(7, 0, 0, 3);
        assert!(matches!(s.check(&b0), SeqCheck::Append));
        s.record(&b0, TxnRole::None, Offset(10), 1);
        // A retry of the same batch: its original offset.
        assert!(matches!(s.check(&b0), SeqCheck::Duplicate(Offset(10))));
        // A gap.
        assert!(matches!(
            s.check(&header(7, 0, 4, 1)),
            SeqCheck::Reject(Error::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        let b1 = header(7, 0, 3, 2);
        assert!(matches!(s.check(&b1), SeqCheck::Append));
        s.record(&b1, TxnRole::None, Offset(13), 2);
        // An older epoch is fenced; a newer one starts again at 0.
        assert!(matches!(
            s.check(&header(7, -1, 5, 1)),
            SeqCheck::Reject(Error::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 1, 5, 1)),
            SeqCheck::Reject(Error::OutOfOrderSequence { .. })
        ));
        let b2 = header(7, 1, 0, 1);
        assert!(matches!(s.check(&b2), SeqCheck::Append));
        s.record(&b2, TxnRole::None, Offset(15), 3);
        assert_eq!(s.producers[&7].batches.len(), 1);
    }

    #[test]
    fn markers_need_no_sequence_and_fence_older_epochs() {
        let mut s = ProducerStates::default();
        let b0 = header(7, 0, 0, 2);
        s.record(&b0, TxnRole::None, Offset(0), 1);
        let mut marker = header(7, 1, -1, 1);
        marker.attributes = crate::batch::CONTROL_BIT | crate::batch::TRANSACTIONAL_BIT;
        assert!(matches!(s.check(&marker), SeqCheck::Append));
        s.record(&marker, TxnRole::Commit, Offset(2), 2);
        assert_eq!(s.producers[&7].epoch, 1);
        assert!(s.producers[&7].batches.is_empty());
        // The fenced epoch's batches are refused; the new one starts at sequence 0.
        assert!(matches!(
            s.check(&header(7, 0, 2, 1)),
            SeqCheck::Reject(Error::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(s.check(&header(7, 1, 0, 1)), SeqCheck::Append));
        // A marker of an older epoch (a zombie coordinator) is refused, and one for a
        // producer never seen here is taken.
        let mut old = marker;
        old.producer_epoch = 0;
        assert!(matches!(s.check(&old), SeqCheck::Reject(_)));
        let mut other = marker;
        other.producer_id = 9;
        assert!(matches!(s.check(&other), SeqCheck::Append));
    }

    #[test]
    fn open_transactions_hold_the_stable_offset_and_aborts_are_indexed() {
        let mut s = ProducerStates::default();
        let mut data = header(1, 0, 0, 3);
        data.attributes = crate::batch::TRANSACTIONAL_BIT;
        s.record(&data, TxnRole::Data, Offset(10), 1);
        let mut other = header(2, 0, 0, 1);
        other.attributes = crate::batch::TRANSACTIONAL_BIT;
        s.record(&other, TxnRole::Data, Offset(13), 1);
        s.record(&header(1, 0, 3, 2), TxnRole::Data, Offset(14), 1);
        assert_eq!(s.first_unstable(), Some(Offset(10)));
        // Producer 1 commits: producer 2's transaction holds the stable offset.
        let marker = |pid| header(pid, 0, -1, 1);
        s.record(&marker(1), TxnRole::Commit, Offset(16), 2);
        assert_eq!(s.first_unstable(), Some(Offset(13)));
        assert!(s.aborted.is_empty());
        // Producer 2 aborts: its range is indexed, nothing is open.
        s.record(&marker(2), TxnRole::Abort, Offset(17), 3);
        assert_eq!(s.first_unstable(), None);
        let aborted = AbortedTxn {
            producer_id: 2,
            first_offset: Offset(13),
            last_offset: Offset(17),
        };
        assert_eq!(s.aborted, vec![aborted]);
        assert_eq!(s.aborted_between(Offset(0), Offset(13)), vec![]);
        assert_eq!(s.aborted_between(Offset(0), Offset(14)), vec![aborted]);
        assert_eq!(s.aborted_between(Offset(18), Offset(30)), vec![]);
        // An open transaction keeps its producer from expiring.
        s.record(&data, TxnRole::Data, Offset(20), 4);
        s.expire(1_000);
        assert!(s.producers.contains_key(&1) && !s.producers.contains_key(&2));
        s.prune_aborted(Offset(18));
        assert!(s.aborted.is_empty());
    }

    #[test]
    fn retired_aborts_stay_retired_when_a_flush_planned_before_commits() {
        let mut committed = ProducerStates::default();
        let marker = |pid| header(pid, 0, -1, 1);
        for (pid, first, abort_at) in [(1, 0, 2), (2, 3, 5)] {
            let mut data = header(pid, 0, 0, 2);
            data.attributes = crate::batch::TRANSACTIONAL_BIT;
            committed.record(&data, TxnRole::Data, Offset(first), 1);
            committed.record(&marker(pid), TxnRole::Abort, Offset(abort_at), 1);
        }
        assert_eq!(committed.aborted.len(), 2);
        // A flush is planned from this state: producer 3 aborts at 7.
        let mut planned = committed.clone();
        let mut data = header(3, 0, 0, 1);
        data.attributes = crate::batch::TRANSACTIONAL_BIT;
        planned.record(&data, TxnRole::Data, Offset(6), 2);
        planned.record(&marker(3), TxnRole::Abort, Offset(7), 2);
        // Meanwhile a clean removes producer 1's abort marker; then the flush commits.
        committed.retire_aborted(&[(1, Offset(2)), (9, Offset(4))]);
        committed.adopt(planned, Offset(6));
        let ends: Vec<(i64, i64)> = committed
            .aborted
            .iter()
            .map(|a| (a.producer_id, a.last_offset.0))
            .collect();
        assert_eq!(ends, vec![(2, 5), (3, 7)]);
        assert!(committed.producers.contains_key(&3));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_idle_producers_expire() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            let h = header(1, 0, i, 1);
            assert!(matches!(s.check(&h), SeqCheck::Append));
            s.record(&h, TxnRole::None, Offset(i64::from(i)), 100);
        }
        assert_eq!(s.producers[&1].batches.len(), TRACKED_BATCHES);
        assert!(matches!(
            s.check(&header(1, 0, 6, 1)),
            SeqCheck::Duplicate(Offset(6))
        ));
        s.expire(101);
        assert!(s.is_empty());
    }

    #[test]
    fn sequences_wrap() {
        let mut s = ProducerStates::default();
        s.producers.insert(
            2,
            ProducerEntry {
                epoch: 0,
                batches: VecDeque::from([(i32::MAX - 1, i32::MAX, 0)]),
                last_ms: 0,
                txn_first: None,
            },
        );
        assert!(matches!(s.check(&header(2, 0, 0, 1)), SeqCheck::Append));
        assert_eq!(last_seq(&header(2, 0, i32::MAX, 2)), 0);
    }
}

/// An idempotent producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_ms: Millis,
}

impl crate::log::LogService {
    /// The idempotent producers of a partition this broker leads.
    pub fn active_producers(
        &self,
        partition: crate::types::PartitionKey,
    ) -> crate::error::Result<Vec<ActiveProducer>> {
        self.check_serving(partition)?;
        Ok(self
            .producer_states(partition)?
            .producers
            .iter()
            .map(|(pid, e)| ActiveProducer {
                producer_id: *pid,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |(_, l, _)| *l),
                last_ms: e.last_ms,
            })
            .collect())
    }
}
