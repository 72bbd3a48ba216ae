#![allow(clippy::unwrap_used)]
use super::*;
use crate::types::{PartitionId, TopicId};

/// A chunk of `[base, end)` written by `broker` under `epoch`, the `n`th object overall
/// (object keys sort by `n`).
fn chunk(n: u32, broker: i32, epoch: i32, base: i64, end: i64) -> Found {
    chunk_of(n, broker, (epoch, epoch), base, end, n)
}

fn chunk_of(n: u32, broker: i32, epochs: (i32, i32), base: i64, end: i64, crc: u32) -> Found {
    Found {
        object: format!("data/{broker}/{n:08}.ksf"),
        broker: BrokerId(broker),
        created_ms: i64::from(n),
        index: (0, 0),
        entry: ChunkEntry {
            topic: TopicId(uuid::Uuid::nil()),
            partition: PartitionId(0),
            position: 32,
            length: 100,
            base_offset: Offset(base),
            last_offset: Offset(end - 1),
            max_timestamp: 0,
            batch_count: 1,
            crc,
        },
        first_epoch: LeaderEpoch(epochs.0),
        last_epoch: LeaderEpoch(epochs.1),
        batches: (base..end)
            .map(|o| BatchMark {
                base_offset: Offset(o),
                epoch: LeaderEpoch(if o == end - 1 { epochs.1 } else { epochs.0 }),
                crc: crc + o as u32,
            })
            .collect(),
        producers: Vec::new(),
    }
}

fn restored(end: i64, epoch: i32) -> Restored {
    Restored {
        end: Offset(end),
        epoch: Some(LeaderEpoch(epoch)),
    }
}

fn taken(d: &Decision) -> Vec<(i64, i64)> {
    d.taken
        .iter()
        .map(|c| (c.entry.base_offset.0, c.entry.last_offset.0 + 1))
        .collect()
}

fn left(d: &Decision) -> Vec<(i64, Reason)> {
    let mut l: Vec<_> = d
        .left
        .iter()
        .map(|(c, r)| (c.entry.base_offset.0, *r))
        .collect();
    l.sort_by_key(|(b, _)| *b);
    l
}

#[test]
fn a_contiguous_run_of_one_leader_is_taken_in_order_and_unconfirmed() {
    let d = decide(
        restored(100, 3),
        vec![
            chunk(3, 1, 3, 120, 130),
            chunk(1, 1, 3, 100, 110),
            chunk(2, 1, 3, 110, 120),
        ],
    );
    assert_eq!(taken(&d), vec![(100, 110), (110, 120), (120, 130)]);
    assert!(d.left.is_empty());
    assert_eq!(d.end(restored(100, 3)), Offset(130));
    // No later leader proves any of it committed.
    assert_eq!(d.confirmed_end, Offset(100));
}

#[test]
fn nothing_after_a_gap_is_taken() {
    let d = decide(
        restored(100, 3),
        vec![
            chunk(1, 1, 3, 100, 110),
            chunk(2, 1, 3, 115, 120),
            chunk(3, 1, 3, 120, 130),
        ],
    );
    assert_eq!(taken(&d), vec![(100, 110)]);
    assert_eq!(left(&d), vec![(115, Reason::Gap), (120, Reason::Gap)]);
    let none = decide(restored(100, 3), vec![chunk(1, 1, 3, 101, 110)]);
    assert!(none.taken.is_empty());
    assert_eq!(none.end(restored(100, 3)), Offset(100));
}

#[test]
fn a_fenced_leaders_uncommitted_flush_loses_to_the_new_leaders() {
    // Broker 1 (epoch 3) uploaded 100..120 but was fenced; broker 2 (epoch 4) took over at
    // 110 and wrote on: broker 1's chunk runs past 110, so it never committed.
    let d = decide(
        restored(100, 3),
        vec![
            chunk(1, 1, 3, 100, 110),
            chunk(2, 1, 3, 110, 120),
            chunk(3, 2, 4, 110, 125),
            chunk(4, 2, 4, 125, 140),
        ],
    );
    assert_eq!(taken(&d), vec![(100, 110), (110, 125), (125, 140)]);
    assert_eq!(left(&d), vec![(110, Reason::Fenced)]);
    // Epoch 4 loaded the committed state at 110: 100..110 is proven.
    assert_eq!(d.confirmed_end, Offset(110));
}

#[test]
fn a_lower_epoch_than_the_restored_checkpoints_never_committed_after_it() {
    let d = decide(
        restored(100, 5),
        vec![chunk(1, 1, 4, 100, 110), chunk(2, 2, 5, 100, 105)],
    );
    assert_eq!(taken(&d), vec![(100, 105)]);
    assert_eq!(left(&d), vec![(100, Reason::Fenced)]);
    // A lower epoch after a higher one is fenced even where the higher one wrote nothing.
    let d = decide(
        restored(100, 3),
        vec![chunk(1, 2, 5, 100, 110), chunk(2, 1, 4, 110, 120)],
    );
    assert_eq!(taken(&d), vec![(100, 110)]);
    assert_eq!(left(&d), vec![(110, Reason::Fenced)]);
}

#[test]
fn of_one_leaders_flushes_at_one_offset_the_newest_is_the_retry() {
    // The flush of 100..110 failed; the leader built the next one on 100 again.
    let d = decide(
        restored(100, 3),
        vec![
            chunk(1, 1, 3, 100, 110),
            chunk(2, 1, 3, 100, 112),
            chunk(3, 1, 3, 112, 120),
        ],
    );
    assert_eq!(taken(&d), vec![(100, 112), (112, 120)]);
    assert_eq!(left(&d), vec![(100, Reason::Replaced)]);
}

#[test]
fn two_brokers_with_different_records_at_one_offset_are_reported_not_guessed() {
    let d = decide(
        restored(100, 3),
        vec![
            chunk(1, 1, 4, 100, 110),
            chunk(2, 2, 4, 100, 110),
            chunk(3, 2, 4, 110, 120),
        ],
    );
    assert!(d.taken.is_empty());
    assert_eq!(
        left(&d),
        vec![
            (100, Reason::Undecided),
            (100, Reason::Undecided),
            (110, Reason::Gap)
        ]
    );
}

#[test]
fn a_coalesced_copy_stands_for_its_originals_and_proves_them_committed() {
    // Originals 100..110 and 110..120 (epoch 3), 120..130 (epoch 4); a coalesced copy of
    // all three made later by broker 2.
    let originals = [
        chunk(1, 1, 3, 100, 110),
        chunk(2, 1, 3, 110, 120),
        chunk(3, 2, 4, 120, 130),
    ];
    let mut copy = chunk_of(9, 2, (3, 4), 100, 130, 77);
    copy.batches = originals.iter().flat_map(|c| c.batches.clone()).collect();
    let mut found = originals.to_vec();
    found.extend([copy, chunk(10, 2, 4, 130, 135)]);
    let d = decide(restored(100, 3), found);
    assert_eq!(taken(&d), vec![(100, 130), (130, 135)]);
    assert_eq!(d.confirmed_end, Offset(130));
    assert_eq!(
        left(&d),
        vec![
            (100, Reason::Duplicate),
            (110, Reason::Duplicate),
            (120, Reason::Duplicate)
        ]
    );
    // The same records twice (a copy of one chunk) are a duplicate, whoever wrote them.
    let d = decide(
        restored(100, 3),
        vec![
            chunk_of(1, 1, (3, 3), 100, 110, 5),
            chunk_of(2, 2, (3, 3), 100, 110, 5),
        ],
    );
    assert_eq!(taken(&d), vec![(100, 110)]);
    assert_eq!(left(&d), vec![(100, Reason::Duplicate)]);
}

#[test]
fn chunks_below_or_across_the_restored_end_are_not_attached() {
    let d = decide(
        restored(100, 3),
        vec![
            chunk(1, 1, 3, 80, 90),
            chunk(2, 1, 3, 90, 105),
            chunk(3, 1, 3, 105, 110),
        ],
    );
    assert!(d.taken.is_empty());
    assert_eq!(d.below, 1);
    assert_eq!(left(&d), vec![(90, Reason::Overlaps), (105, Reason::Gap)]);
}

#[test]
fn a_partition_without_a_checkpoint_takes_the_chain_from_zero() {
    let r = Restored {
        end: Offset(0),
        epoch: None,
    };
    let d = decide(r, vec![chunk(1, 1, 0, 0, 10), chunk(2, 1, 0, 10, 20)]);
    assert_eq!(taken(&d), vec![(0, 10), (10, 20)]);
}
