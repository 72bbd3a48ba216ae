//! The partition log losing and regaining leadership: a fence change stops the broker writing
//! what it lost, a late fenced flush leaves a newer leadership alone, and a partition given to
//! a restarted broker before its log loaded is taken over.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::SystemClock;

use kafscale_core::log::{LeaderRecord, LogConfig, LogService, NoObserver};
use kafscale_core::ports::metadata::encode_json;
use kafscale_core::ports::{MetadataStore, MetadataStoreExt};
use kafscale_core::schema::{keys, FlushRecord};
use kafscale_core::{Error, Offset, PartitionKey};

use support::*;

/// The ends of `p` in every flush record of the store, in key order.
async fn flushed_ends(meta: &dyn MetadataStore, p: PartitionKey) -> Vec<i64> {
    let all = meta.range(&keys::flushes_prefix()).await.unwrap();
    all.kvs
        .iter()
        .filter(|kv| !kv.value.is_empty())
        .filter_map(|kv| FlushRecord::decode(&kv.value).unwrap().part(p))
        .map(|part| part.end.0)
        .collect()
}

/// Takes `p` from this broker as the controller takes a partition from a broker that is gone:
/// the leader record names another broker, and this broker's fence changes in the same
/// transaction.
async fn take_away(s: &Setup, p: PartitionKey, to: kafscale_core::BrokerId) -> i64 {
    let leader_key = keys::leader(p);
    let (mut record, kv): (LeaderRecord, _) = s.meta.get_json(&leader_key).await.unwrap().unwrap();
    record.leader = Some(to);
    record.leader_epoch = record.leader_epoch.next();
    let outcome = s
        .meta
        .txn(
            kafscale_core::ports::Txn::new()
                .when(kafscale_core::ports::Compare::ModRevision {
                    key: leader_key.clone(),
                    revision: kv.mod_revision,
                })
                .then(kafscale_core::ports::TxnOp::Put {
                    key: leader_key,
                    value: encode_json(&record),
                    lease: None,
                })
                .then(kafscale_core::ports::TxnOp::Put {
                    key: keys::fence(s.log.broker_id()),
                    value: Bytes::from_static(b"{}"),
                    lease: None,
                }),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded);
    outcome.revision
}

#[tokio::test]
async fn a_fence_change_stops_the_broker_writing_what_it_lost() {
    let s = memory().await;
    let p = topic(&s.log, "fence", 2).await;
    assert_eq!(append(&s.log, p[0], 1).await.unwrap(), Offset(0));
    assert_eq!(append(&s.log, p[1], 1).await.unwrap(), Offset(0));
    // Another broker is given partition 0 without a hand-over: the broker's fence changes.
    take_away(&s, p[0], kafscale_core::BrokerId(9)).await;
    // The next commit is fenced: NOT_LEADER, and nothing of it becomes visible.
    let err = append(&s.log, p[0], 1).await.unwrap_err();
    assert!(matches!(err, Error::NotLeader(_)), "{err}");
    // The broker has re-read the fence and the leader records: it no longer leads 0...
    assert!(matches!(
        append(&s.log, p[0], 1).await,
        Err(Error::NotLeader(_))
    ));
    assert_eq!(flushed_ends(s.meta.as_ref(), p[0]).await, vec![1]);
    // ...and goes on with partition 1, with no offset skipped or reused.
    assert_eq!(append(&s.log, p[1], 1).await.unwrap(), Offset(1));
    assert_eq!(read_all(&s.log, p[1]).await, vec![(0, 0), (1, 1)]);
}

/// Moves the leader record of `p` to `leader` with the next epoch, behind the log's back, and
/// tells the log (as the cluster's watch would).
async fn move_leader(s: &Setup, p: PartitionKey, leader: kafscale_core::BrokerId, ours: bool) {
    if !ours {
        let revision = take_away(s, p, leader).await;
        let (record, _): (LeaderRecord, _) =
            s.meta.get_json(&keys::leader(p)).await.unwrap().unwrap();
        s.log.observe_leadership(p, record, revision, false);
        return;
    }
    let key = keys::leader(p);
    let (mut record, kv): (LeaderRecord, _) = s.meta.get_json(&key).await.unwrap().unwrap();
    record.leader = Some(leader);
    record.incarnation = s.log.incarnation();
    record.leader_epoch = record.leader_epoch.next();
    let outcome = s
        .meta
        .compare_and_swap(&key, kv.mod_revision, encode_json(&record))
        .await
        .unwrap();
    assert!(outcome.succeeded);
    s.log.observe_leadership(p, record, outcome.revision, ours);
}

#[tokio::test]
async fn a_late_fenced_flush_leaves_a_newer_leadership_of_the_same_broker_alone() {
    // A paused broker's flush, planned under its old leadership, is fenced only after the
    // broker has been given the partition again: the fence must not drop the new leadership
    // (it did, and the partition then sat leaderless with an empty extent).
    let s = memory().await;
    let p = topic(&s.log, "again", 1).await[0];
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    let mut held = s.meta.hold_next_txn();
    let log = s.log.clone();
    let late = tokio::spawn(async move { append(&log, p, 1).await });
    held.reached().await;
    let me = s.log.broker_id();
    move_leader(&s, p, kafscale_core::BrokerId(9), false).await;
    move_leader(&s, p, me, true).await;
    assert!(
        s.log
            .wait_for_leaders(p.topic, Duration::from_secs(5))
            .await
    );
    held.release();
    let err = late.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::NotLeader(_)), "{err}");
    // Still the leader, with the committed extent: appends continue after offset 1.
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(2));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 2)]);
}

#[tokio::test]
async fn a_partition_given_before_the_log_loads_is_taken_over() {
    // A killed broker restarts and registers; the controller gives it its orphaned partitions
    // at once, before its log has read the leader records. That read must load them: taken
    // as a follower's, the watch's report of the same record changed nothing and the
    // partition sat unserved while its record named this broker.
    let s = memory().await;
    let p = topic(&s.log, "reborn", 1).await[0];
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    s.log.shutdown().await;
    let incarnation = 77;
    let key = keys::leader(p);
    let (mut record, kv): (LeaderRecord, _) = s.meta.get_json(&key).await.unwrap().unwrap();
    record.leader = Some(s.log.broker_id());
    record.incarnation = incarnation;
    record.leader_epoch = record.leader_epoch.next();
    let given = s
        .meta
        .compare_and_swap(&key, kv.mod_revision, encode_json(&record))
        .await
        .unwrap();
    assert!(given.succeeded);
    let config = LogConfig {
        incarnation,
        attempts: 2,
        ..LogConfig::default()
    };
    let log = LogService::open_clustered(
        config,
        s.store.clone(),
        s.meta.clone(),
        Arc::new(SystemClock::new()),
        Arc::new(NoObserver),
    )
    .await
    .unwrap();
    // The cluster's first sync then reports the same record.
    log.observe_leadership(p, record, given.revision, true);
    assert!(log.wait_for_leaders(p.topic, Duration::from_secs(5)).await);
    assert_eq!(append(&log, p, 1).await.unwrap(), Offset(2));
    assert_eq!(read_all(&log, p).await, vec![(0, 1), (2, 2)]);
}
