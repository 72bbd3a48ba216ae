//! What a clean makes of transactions, as Kafka's cleaner does (`CleanedTransactionMetadata`,
//! KIP-98): it only takes segments below the partition's last stable offset, so every
//! transaction it sees is decided. The records of aborted transactions are not mapped
//! (pass 1) and are dropped (pass 2); committed transactional records are mapped and judged
//! like any others. A marker stays while any record of its transaction may remain before it:
//! a clean that sees records of its transaction keeps it, even if they all go in that clean.
//! In a later clean that sees none, it goes like a tombstone, once its segment's clean part
//! is older than `delete.retention.ms`. An abort marker takes its aborted-index entry with
//! it: a read_committed consumer told of an aborted transaction skips its producer's batches
//! until it meets the marker.

use std::collections::HashMap;

use crate::batch::BatchHeader;
use crate::log::producers::AbortedTxn;

/// A partition's aborted transactions, by producer, for lookups by offset.
#[derive(Debug, Default)]
pub struct AbortedIndex {
    /// Per producer, its aborted ranges (first record, marker), by first offset.
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedIndex {
    pub fn new(aborted: &[AbortedTxn]) -> AbortedIndex {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for a in aborted {
            by_producer
                .entry(a.producer_id)
                .or_default()
                .push((a.first_offset.0, a.last_offset.0));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedIndex { by_producer }
    }

    /// Whether a batch holds records of an aborted transaction: a transactional data batch
    /// inside one of its producer's aborted ranges.
    pub fn aborts(&self, h: &BatchHeader) -> bool {
        if h.is_control() || !h.is_transactional() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&h.producer_id) else {
            return false;
        };
        // The last range starting at or before the batch: a producer's transactions do not
        // overlap.
        let i = ranges.partition_point(|(first, _)| *first <= h.base_offset);
        i > 0 && ranges[i - 1].1 >= h.base_offset
    }

    /// Whether a marker at `offset` of `producer_id` ends an aborted transaction (its entry
    /// goes with it).
    pub fn ends(&self, producer_id: i64, offset: i64) -> bool {
        self.by_producer
            .get(&producer_id)
            .is_some_and(|r| r.iter().any(|(_, last)| *last == offset))
    }
}

/// Pass 1: whether the records of a batch go into the key map. Markers do not (they have no
/// key of the topic's), nor do aborted records: an aborted write never supersedes a value.
pub fn maps(h: &BatchHeader, aborted: &AbortedIndex) -> bool {
    !h.is_control() && !aborted.aborts(h)
}

/// What pass 2 does with a data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFate {
    /// Records of an aborted transaction: the batch goes.
    Drop,
    /// Its records are judged one by one (`clean_plan::keeps`).
    Filter,
}

/// What pass 2 does with a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerFate {
    /// Kept, with nothing to note: records of its transaction remain, or the map does not
    /// reach it and nothing of its transaction went in this clean.
    Keep,
    /// Kept for now; its segment must say it holds something a later clean removes, as for
    /// tombstones (its transaction's last records went in this clean, or its time has not
    /// come).
    KeepUntilDue,
    /// No record of its transaction remains and its time has come.
    Remove,
}

/// Pass 2's view of transactions, fed every batch of the clean in offset order from the
/// partition's first segment (so that all records a marker closes were seen before it).
#[derive(Debug)]
pub struct TxnPass<'a> {
    aborted: &'a AbortedIndex,
    /// The last offset the key map covers: markers after it are not judged.
    covered: i64,
    /// Per producer with transactional records seen since its last marker: whether any of
    /// them is kept.
    seen: HashMap<i64, bool>,
}

impl<'a> TxnPass<'a> {
    pub fn new(aborted: &'a AbortedIndex, covered: i64) -> TxnPass<'a> {
        TxnPass {
            aborted,
            covered,
            seen: HashMap::new(),
        }
    }

    /// A data batch: dropped if its transaction aborted; otherwise judged record by record
    /// (then [`Self::kept`] says what remained).
    pub fn data(&mut self, h: &BatchHeader) -> DataFate {
        if h.is_transactional() {
            self.seen.entry(h.producer_id).or_insert(false);
        }
        if self.aborted.aborts(h) {
            DataFate::Drop
        } else {
            DataFate::Filter
        }
    }

    /// What remained of a batch [`Self::data`] let through.
    pub fn kept(&mut self, h: &BatchHeader, any: bool) {
        if h.is_transactional() {
            if let Some(kept) = self.seen.get_mut(&h.producer_id) {
                *kept |= any;
            }
        }
    }

    /// A marker. `due`: it lies in the part of its segment whose tombstones go in this clean.
    pub fn marker(&mut self, h: &BatchHeader, due: bool) -> MarkerFate {
        let seen = self.seen.remove(&h.producer_id);
        match seen {
            Some(true) => MarkerFate::Keep,
            Some(false) => MarkerFate::KeepUntilDue,
            None if h.last_offset() > self.covered => MarkerFate::Keep,
            None if due => MarkerFate::Remove,
            None => MarkerFate::KeepUntilDue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{CONTROL_BIT, TRANSACTIONAL_BIT};
    use crate::types::Offset;

    fn batch(pid: i64, base: i64, count: i32, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            size: 100,
            partition_leader_epoch: 0,
            attributes,
            last_offset_delta: count - 1,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: if attributes & CONTROL_BIT != 0 { -1 } else { 0 },
            record_count: count,
        }
    }
    fn txn(pid: i64, base: i64, count: i32) -> BatchHeader {
        batch(pid, base, count, TRANSACTIONAL_BIT)
    }
    fn marker(pid: i64, at: i64) -> BatchHeader {
        batch(pid, at, 1, TRANSACTIONAL_BIT | CONTROL_BIT)
    }
    fn aborted(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: Offset(first),
            last_offset: Offset(last),
        }
    }

    #[test]
    fn aborted_records_are_found_by_producer_and_range() {
        // Producer 1 aborted 10..=20 and 40..=45; producer 2 aborted 15..=30.
        let index =
            AbortedIndex::new(&[aborted(1, 10, 20), aborted(2, 15, 30), aborted(1, 40, 45)]);
        assert!(index.aborts(&txn(1, 10, 2)));
        assert!(index.aborts(&txn(1, 19, 1)));
        assert!(index.aborts(&txn(1, 42, 3)));
        assert!(index.aborts(&txn(2, 25, 1)));
        // Committed transactions of the same producers, before, between and after.
        assert!(!index.aborts(&txn(1, 5, 3)));
        assert!(!index.aborts(&txn(1, 25, 1)));
        assert!(!index.aborts(&txn(1, 50, 1)));
        assert!(!index.aborts(&txn(2, 31, 1)));
        // Another producer's records in the range, non-transactional records of the same
        // producer id, and the markers themselves are not aborted records.
        assert!(!index.aborts(&txn(3, 12, 1)));
        assert!(!index.aborts(&batch(1, 12, 1, 0)));
        assert!(!index.aborts(&marker(1, 20)));
        assert!(index.ends(1, 20) && index.ends(1, 45) && index.ends(2, 30));
        assert!(!index.ends(1, 30) && !index.ends(3, 20));
        // Pass 1 maps neither markers nor aborted records, and maps committed ones.
        assert!(!maps(&marker(1, 20), &index));
        assert!(!maps(&txn(1, 12, 1), &index));
        assert!(maps(&txn(1, 25, 1), &index));
        assert!(maps(&batch(-1, 12, 5, 0), &index));
    }

    #[test]
    fn a_marker_stays_while_records_of_its_transaction_remain() {
        let index = AbortedIndex::new(&[aborted(2, 3, 6)]);
        let mut pass = TxnPass::new(&index, 100);
        // Producer 1 commits 0..=1 at 2; producer 2 aborts 3..=5 at 6; producer 3 commits
        // 7 at 8 but its record is superseded.
        let h = txn(1, 0, 2);
        assert_eq!(pass.data(&h), DataFate::Filter);
        pass.kept(&h, true);
        assert_eq!(pass.marker(&marker(1, 2), true), MarkerFate::Keep);
        assert_eq!(pass.data(&txn(2, 3, 2)), DataFate::Drop);
        assert_eq!(pass.data(&txn(2, 5, 1)), DataFate::Drop);
        // Its records went in this clean: the marker stays for a later clean, even where
        // tombstones are due.
        assert_eq!(pass.marker(&marker(2, 6), true), MarkerFate::KeepUntilDue);
        let h = txn(3, 7, 1);
        assert_eq!(pass.data(&h), DataFate::Filter);
        pass.kept(&h, false);
        assert_eq!(pass.marker(&marker(3, 8), false), MarkerFate::KeepUntilDue);
        // A non-transactional batch says nothing about transactions.
        let plain = batch(-1, 9, 1, 0);
        assert_eq!(pass.data(&plain), DataFate::Filter);
        pass.kept(&plain, false);
    }

    #[test]
    fn a_marker_with_nothing_before_it_goes_when_due_and_only_within_the_map() {
        let index = AbortedIndex::new(&[aborted(2, 3, 6)]);
        let mut pass = TxnPass::new(&index, 10);
        // A later clean: the records went before it, only the markers are left.
        assert_eq!(pass.marker(&marker(1, 2), true), MarkerFate::Remove);
        assert_eq!(pass.marker(&marker(2, 6), false), MarkerFate::KeepUntilDue);
        // Beyond the map's range a marker is not judged...
        assert_eq!(pass.marker(&marker(1, 11), true), MarkerFate::Keep);
        // ...and one whose transaction's records went in this clean (aborted ones go
        // wherever the pass reads them) waits for a later clean.
        let index = AbortedIndex::new(&[aborted(2, 12, 14)]);
        let mut pass = TxnPass::new(&index, 10);
        assert_eq!(pass.data(&txn(2, 12, 1)), DataFate::Drop);
        assert_eq!(pass.marker(&marker(2, 14), true), MarkerFate::KeepUntilDue);
        // A second transaction of the same producer starts afresh after its marker.
        let h = txn(2, 15, 1);
        assert_eq!(pass.data(&h), DataFate::Filter);
        pass.kept(&h, true);
        assert_eq!(pass.marker(&marker(2, 16), true), MarkerFate::Keep);
    }
}
