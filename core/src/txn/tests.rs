//! The coordinator against an in-memory metadata store and a recording marker writer.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::group::tests::store::MemStore;
use crate::group::{
    CommitRequest, CommittedOffset, GroupConfig, GroupCoordinator, GroupError, OffsetKey,
    TxnProducer,
};
use crate::ports::{ManualClock, MetadataStore};
use crate::types::{Offset, PartitionId};

#[derive(Default)]
struct Recorder {
    written: Mutex<Vec<Markers>>,
    failing: AtomicBool,
}

#[async_trait]
impl MarkerWriter for Recorder {
    async fn write_markers(&self, markers: &Markers) -> TxnResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TxnError::Markers("leader unreachable".into()));
        }
        self.written.lock().unwrap().push(markers.clone());
        Ok(())
    }
}

#[derive(Default)]
struct Counter(AtomicI64);

#[async_trait]
impl coordinator::ProducerIds for Counter {
    async fn allocate(&self) -> crate::Result<i64> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst) + 100)
    }
}

struct Fixture {
    clock: ManualClock,
    meta: Arc<MemStore>,
    groups: Arc<GroupCoordinator>,
    markers: Arc<Recorder>,
    c: TxnCoordinator,
}

impl Fixture {
    async fn new() -> Fixture {
        let clock = ManualClock::new(1_000_000);
        let meta = Arc::new(MemStore::default());
        Self::on(clock, meta).await
    }

    /// A coordinator on `meta` that claims every shard (a takeover of them all).
    async fn on(clock: ManualClock, meta: Arc<MemStore>) -> Fixture {
        let groups = GroupCoordinator::open(
            GroupConfig::default(),
            meta.clone() as Arc<dyn MetadataStore>,
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        let markers = Arc::new(Recorder::default());
        let c = TxnCoordinator::new(
            TxnConfig {
                max_timeout_ms: 60_000,
                ..TxnConfig::default()
            },
            meta.clone() as Arc<dyn MetadataStore>,
            Arc::new(clock.clone()),
            groups.clone(),
            markers.clone(),
            Arc::new(Counter::default()),
        );
        Fixture {
            clock,
            meta,
            groups,
            markers,
            c,
        }
    }

    fn markers(&self) -> Vec<Markers> {
        self.markers.written.lock().unwrap().clone()
    }
}

fn tp(topic: &str, partition: i32) -> TxnPartition {
    TxnPartition {
        topic: topic.into(),
        partition,
    }
}

#[tokio::test]
async fn commit_writes_markers_and_each_change_is_one_small_write() {
    let f = Fixture::new().await;
    let p = f.c.init_producer("app", 10_000, None).await.unwrap();
    assert_eq!((p.producer_id, p.epoch), (100, 0));
    let key = crate::schema::keys::txn("app");
    assert_eq!(f.meta.keys("kafscale/txns/"), vec![key.clone()]);
    f.c.add("app", p, &[tp("t", 0), tp("t", 1)], &[])
        .await
        .unwrap();
    f.c.add("app", p, &[], &["g".into()]).await.unwrap();
    f.c.end("app", p, true).await.unwrap();
    let written = f.markers();
    assert_eq!(written.len(), 1);
    assert!(written[0].commit);
    assert_eq!(written[0].partitions, vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(written[0].groups, vec!["g".to_owned()]);
    assert_eq!(written[0].coordinator_epoch, 1);
    let r = f.c.describe("app").await.unwrap().unwrap();
    assert_eq!(r.state, TxnState::CompleteCommit);
    assert_eq!(f.c.stats.commits.load(Ordering::SeqCst), 1);
    // A retried EndTxn writes no markers again.
    f.c.end("app", p, true).await.unwrap();
    assert_eq!(f.markers().len(), 1);
}

#[tokio::test]
async fn timeouts_outside_the_maximum_are_refused() {
    let f = Fixture::new().await;
    for bad in [0, -1, 60_001] {
        assert!(matches!(
            f.c.init_producer("app", bad, None).await,
            Err(TxnError::InvalidTimeout { .. })
        ));
    }
    assert!(f.meta.keys("kafscale/txns/").is_empty());
}

#[tokio::test]
async fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let f = Fixture::new().await;
    let first = f.c.init_producer("app", 10_000, None).await.unwrap();
    f.c.add("app", first, &[tp("t", 0)], &[]).await.unwrap();
    let second = f.c.init_producer("app", 10_000, None).await.unwrap();
    assert_eq!(second.producer_id, first.producer_id);
    assert!(second.epoch > first.epoch + 1);
    // The open transaction was aborted, with an epoch above the first producer's.
    let written = f.markers();
    assert_eq!(written.len(), 1);
    assert!(!written[0].commit);
    assert!(written[0].epoch > first.epoch);
    assert!(matches!(
        f.c.end("app", first, true).await,
        Err(TxnError::ProducerFenced { .. })
    ));
    assert!(matches!(
        f.c.add("app", first, &[tp("t", 1)], &[]).await,
        Err(TxnError::ProducerFenced { .. })
    ));
}

#[tokio::test]
async fn an_abandoned_transaction_is_aborted_after_its_timeout() {
    let f = Fixture::new().await;
    let p = f.c.init_producer("app", 5_000, None).await.unwrap();
    f.c.add("app", p, &[tp("t", 0)], &[]).await.unwrap();
    assert_eq!(f.c.stats.open.load(Ordering::SeqCst), 1);
    f.clock.advance(Duration::from_millis(4_000));
    f.c.tick().await;
    assert!(f.markers().is_empty());
    f.clock.advance(Duration::from_millis(1_500));
    f.c.tick().await;
    let written = f.markers();
    assert_eq!(written.len(), 1);
    assert!(!written[0].commit);
    let r = f.c.describe("app").await.unwrap().unwrap();
    assert_eq!(r.state, TxnState::CompleteAbort);
    assert_eq!(f.c.stats.timeouts.load(Ordering::SeqCst), 1);
    assert_eq!(f.c.stats.open.load(Ordering::SeqCst), 0);
    // The producer that left it is fenced.
    assert!(matches!(
        f.c.end("app", p, true).await,
        Err(TxnError::ProducerFenced { .. })
    ));
}

#[tokio::test]
async fn a_new_coordinator_completes_what_the_old_one_left_prepared() {
    let f = Fixture::new().await;
    let p = f.c.init_producer("app", 10_000, None).await.unwrap();
    f.c.add("app", p, &[tp("t", 0)], &[]).await.unwrap();
    // The markers cannot be written: EndTxn answers (the prepare is durable) and the
    // transaction stays prepared.
    f.markers.failing.store(true, Ordering::SeqCst);
    f.c.end("app", p, true).await.unwrap();
    let r = f.c.describe("app").await.unwrap().unwrap();
    assert_eq!(r.state, TxnState::PrepareCommit);
    // Another coordinator takes every shard over; the old one is fenced.
    let g = Fixture::on(f.clock.clone(), f.meta.clone()).await;
    assert!(f.c.add("app", p, &[tp("t", 1)], &[]).await.is_err());
    g.c.tick().await;
    let written = g.markers();
    assert_eq!(written.len(), 1);
    assert!(written[0].commit);
    assert_eq!(written[0].coordinator_epoch, 2);
    let r = g.c.describe("app").await.unwrap().unwrap();
    assert_eq!(r.state, TxnState::CompleteCommit);
    // The producer carries on with the new coordinator.
    g.c.add("app", p, &[tp("t", 2)], &[]).await.unwrap();
}

/// Producer 100 at `epoch`.
fn at(epoch: i16) -> TxnProducer {
    TxnProducer {
        producer_id: 100,
        epoch,
    }
}

#[tokio::test]
async fn staged_offsets_become_visible_only_on_commit() {
    let f = Fixture::new().await;
    let group = crate::group::GroupId("g".into());
    let key = OffsetKey {
        topic: "in".into(),
        partition: PartitionId(0),
    };
    let stage = |offset: i64| CommitRequest {
        group: group.clone(),
        member: None,
        instance: None,
        generation: None,
        offsets: vec![(
            key.clone(),
            CommittedOffset {
                offset: Offset(offset),
                leader_epoch: None,
                metadata: String::new(),
                commit_ms: 0,
                topic_id: None,
            },
        )],
    };
    let results = f.groups.stage_txn_offsets(stage(10), at(0)).await.unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    let visible = |groups: &GroupCoordinator| {
        groups
            .fetch_offsets(&group, Some(std::slice::from_ref(&key)))
            .unwrap()
            .into_iter()
            .find_map(|(_, v)| v.map(|c| c.offset))
    };
    assert_eq!(visible(&f.groups), None);
    // Abort drops them.
    f.groups
        .complete_txn_offsets(&group, at(0), false)
        .await
        .unwrap();
    f.groups
        .complete_txn_offsets(&group, at(0), true)
        .await
        .unwrap();
    assert_eq!(visible(&f.groups), None);
    // Commit moves them; a restarted coordinator reads them as committed.
    f.groups.stage_txn_offsets(stage(20), at(0)).await.unwrap();
    f.groups
        .complete_txn_offsets(&group, at(0), true)
        .await
        .unwrap();
    assert_eq!(visible(&f.groups), Some(Offset(20)));
    assert!(f.meta.keys("kafscale/groups/txn-offsets/").is_empty());
    let g = Fixture::on(f.clock.clone(), f.meta.clone()).await;
    assert_eq!(visible(&g.groups), Some(Offset(20)));
}

/// A request staging offset `offset` of each of the partitions `in-<p>` of group `g`.
fn staging(offsets: &[(i32, i64)]) -> CommitRequest {
    CommitRequest {
        group: crate::group::GroupId("g".into()),
        member: None,
        instance: None,
        generation: None,
        offsets: offsets
            .iter()
            .map(|(p, offset)| {
                let key = OffsetKey {
                    topic: "in".into(),
                    partition: PartitionId(*p),
                };
                let value = CommittedOffset {
                    offset: Offset(*offset),
                    leader_epoch: None,
                    metadata: String::new(),
                    commit_ms: 0,
                    topic_id: None,
                };
                (key, value)
            })
            .collect(),
    }
}

/// The committed offsets of group `g`, by partition of `in`.
fn committed(groups: &GroupCoordinator) -> Vec<(i32, i64)> {
    let group = crate::group::GroupId("g".into());
    let mut out: Vec<(i32, i64)> = groups
        .fetch_offsets(&group, None)
        .unwrap()
        .into_iter()
        .filter_map(|(k, v)| v.map(|c| (k.partition.0, c.offset.0)))
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn a_marker_commits_only_what_its_epoch_staged() {
    let f = Fixture::new().await;
    let shard = crate::group::keys::shard_of(&crate::group::GroupId("g".into()));
    // A zombie at epoch 0 stages partitions 0 and 1; the producer's next epoch stages 1 and 2.
    f.groups
        .stage_txn_offsets(staging(&[(0, 10), (1, 11)]), at(0))
        .await
        .unwrap();
    f.groups
        .stage_txn_offsets(staging(&[(1, 21), (2, 22)]), at(2))
        .await
        .unwrap();
    // A late marker of epoch 1 (an abort the coordinator sends again) drops epoch 0's and
    // leaves epoch 2's staged.
    f.groups
        .complete_shard_txn_offsets(shard, at(1), false)
        .await
        .unwrap();
    assert_eq!(committed(&f.groups), vec![]);
    assert_eq!(f.meta.keys("kafscale/groups/txn-offsets/").len(), 2);
    // Epoch 2's commit: its offsets only; nothing of the zombie's.
    f.groups
        .complete_shard_txn_offsets(shard, at(2), true)
        .await
        .unwrap();
    assert_eq!(committed(&f.groups), vec![(1, 21), (2, 22)]);
    assert!(f.meta.keys("kafscale/groups/txn-offsets/").is_empty());
}

#[tokio::test]
async fn a_commit_drops_offsets_staged_at_an_older_epoch() {
    let f = Fixture::new().await;
    f.groups
        .stage_txn_offsets(staging(&[(0, 10)]), at(3))
        .await
        .unwrap();
    // Staged before a takeover, then a newer epoch commits without staging anything here.
    let g = Fixture::on(f.clock.clone(), f.meta.clone()).await;
    let shard = crate::group::keys::shard_of(&crate::group::GroupId("g".into()));
    g.groups
        .complete_shard_txn_offsets(shard, at(5), true)
        .await
        .unwrap();
    assert_eq!(committed(&g.groups), vec![]);
    assert!(g.meta.keys("kafscale/groups/txn-offsets/").is_empty());
}

#[tokio::test]
async fn staging_from_a_fenced_epoch_is_refused() {
    let f = Fixture::new().await;
    let shard = crate::group::keys::shard_of(&crate::group::GroupId("g".into()));
    // Seen in a marker (the abort of a fenced producer's transaction, epoch bumped).
    f.groups
        .complete_shard_txn_offsets(shard, at(4), false)
        .await
        .unwrap();
    let refused = f.groups.stage_txn_offsets(staging(&[(0, 1)]), at(3)).await;
    assert!(
        matches!(
            refused,
            Err(GroupError::ProducerFenced {
                producer_id: 100,
                epoch: 3,
                current: 4
            })
        ),
        "{refused:?}"
    );
    // The current epoch and newer ones stage.
    f.groups
        .stage_txn_offsets(staging(&[(0, 2)]), at(4))
        .await
        .unwrap();
    f.groups
        .stage_txn_offsets(staging(&[(0, 3)]), at(6))
        .await
        .unwrap();
    // Seen in staged offsets: known again after a takeover.
    let g = Fixture::on(f.clock.clone(), f.meta.clone()).await;
    let refused = g.groups.stage_txn_offsets(staging(&[(0, 1)]), at(5)).await;
    assert!(matches!(
        refused,
        Err(GroupError::ProducerFenced { current: 6, .. })
    ));
    // Another producer id is not affected.
    let other = TxnProducer {
        producer_id: 101,
        epoch: 0,
    };
    g.groups
        .stage_txn_offsets(staging(&[(0, 1)]), other)
        .await
        .unwrap();
}
