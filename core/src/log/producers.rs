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
use std::collections::{BTreeMap, VecDeque};

use crate::batch::BatchHeader;
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
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    pub batches: VecDeque<(i32, i32, i64)>,
    /// When the producer last wrote here; idle producers are forgotten.
    pub last_ms: Millis,
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
        self.producers.is_empty()
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
    pub fn record(&mut self, h: &BatchHeader, base: Offset, now: Millis) {
        self.record_batch(
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.last_offset_delta,
            base,
            now,
        );
    }

    /// Records an appended batch from its producer fields (as a flush object's index keeps
    /// them, for a new leader replaying the flushes after a checkpoint).
    pub fn record_batch(
        &mut self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        last_offset_delta: i32,
        base: Offset,
        now: Millis,
    ) {
        if producer_id < 0 {
            return;
        }
        let e = self.producers.entry(producer_id).or_default();
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

    /// Forgets producers idle since before `cutoff`.
    pub fn expire(&mut self, cutoff: Millis) {
        self.producers.retain(|_, e| e.last_ms >= cutoff);
    }
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
        s.record(&b0, Offset(10), 1);
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
        s.record(&b1, Offset(13), 2);
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
        s.record(&b2, Offset(15), 3);
        assert_eq!(s.producers[&7].batches.len(), 1);
    }

    #[test]
    fn markers_need_no_sequence_and_fence_older_epochs() {
        let mut s = ProducerStates::default();
        let b0 = header(7, 0, 0, 2);
        s.record(&b0, Offset(0), 1);
        let mut marker = header(7, 1, -1, 1);
        marker.attributes = crate::batch::CONTROL_BIT | crate::batch::TRANSACTIONAL_BIT;
        assert!(matches!(s.check(&marker), SeqCheck::Append));
        s.record(&marker, Offset(2), 2);
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
    fn only_the_last_five_batches_are_remembered_and_idle_producers_expire() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            let h = header(1, 0, i, 1);
            assert!(matches!(s.check(&h), SeqCheck::Append));
            s.record(&h, Offset(i64::from(i)), 100);
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
