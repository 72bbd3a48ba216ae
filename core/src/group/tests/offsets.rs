//! Committed offsets: who may commit, durability, fencing, deletes.

use std::sync::atomic::Ordering;

use super::*;
use crate::ports::Clock;
use crate::types::{LeaderEpoch, Offset, PartitionId};

fn key(topic: &str, p: i32) -> OffsetKey {
    OffsetKey {
        topic: topic.into(),
        partition: PartitionId(p),
    }
}

fn value(offset: i64, metadata: &str) -> CommittedOffset {
    CommittedOffset {
        offset: Offset(offset),
        leader_epoch: Some(LeaderEpoch(3)),
        metadata: metadata.into(),
        commit_ms: 0,
        topic_id: None,
    }
}

fn simple(group: &str, offsets: Vec<(OffsetKey, CommittedOffset)>) -> CommitRequest {
    CommitRequest {
        group: GroupId::from(group),
        member: None,
        instance: None,
        generation: None,
        offsets,
    }
}

fn by_member(
    group: &str,
    j: &JoinResponse,
    offsets: Vec<(OffsetKey, CommittedOffset)>,
) -> CommitRequest {
    CommitRequest {
        group: GroupId::from(group),
        member: Some(j.member.clone()),
        instance: None,
        generation: Some(j.generation),
        offsets,
    }
}

fn fetched(c: &GroupCoordinator, group: &str, k: &OffsetKey) -> Option<CommittedOffset> {
    let out = c
        .fetch_offsets(&GroupId::from(group), Some(std::slice::from_ref(k)))
        .unwrap();
    out[0].1.clone()
}

#[tokio::test]
async fn simple_commits_round_trip_and_survive_a_restart() {
    let f = Fixture::new(0).await;
    let g = GroupId::from("g/with%odd");
    assert_eq!(fetched(&f.c, "g/with%odd", &key("t", 0)), None);
    let results =
        f.c.commit(simple(
            &g.0,
            vec![
                (key("t", 0), value(42, "meta ✓")),
                (key("t", 1), value(7, "")),
            ],
        ))
        .await
        .unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    let got = fetched(&f.c, &g.0, &key("t", 0)).unwrap();
    assert_eq!(got.offset, Offset(42));
    assert_eq!(got.metadata, "meta ✓");
    assert_eq!(got.leader_epoch, Some(LeaderEpoch(3)));
    assert_eq!(got.commit_ms, f.clock.now_ms());
    assert_eq!(fetched(&f.c, &g.0, &key("t", 2)), None);
    assert_eq!(f.c.fetch_offsets(&g, None).unwrap().len(), 2);
    assert_eq!(state(&f.c, &g.0), GroupState::Empty);
    // A new coordinator on the same store sees them.
    let again = f.restart().await;
    assert_eq!(
        fetched(&again, &g.0, &key("t", 0)).unwrap().metadata,
        "meta ✓"
    );
    assert_eq!(
        again.describe(&g).unwrap().unwrap().state,
        GroupState::Empty
    );
    assert_eq!(again.list(&[]).len(), 1);
}

#[tokio::test]
async fn commits_follow_membership_generation_and_state() {
    let f = Fixture::new(0).await;
    // A generation for a group that does not exist.
    let err =
        f.c.commit(CommitRequest {
            generation: Some(GenerationId(4)),
            member: Some(MemberId::from("m")),
            ..simple("g", vec![(key("t", 0), value(1, ""))])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, GroupError::IllegalGeneration { .. }),
        "{err:?}"
    );
    let a = stable_single(&f, "g").await;
    // Simple commits are refused while the group has members.
    let err =
        f.c.commit(simple("g", vec![(key("t", 0), value(1, ""))]))
            .await
            .unwrap_err();
    assert!(matches!(err, GroupError::UnknownMember(_)), "{err:?}");
    f.c.commit(by_member("g", &a, vec![(key("t", 0), value(5, ""))]))
        .await
        .unwrap();
    let stale = JoinResponse {
        generation: GenerationId(0),
        ..a.clone()
    };
    let err =
        f.c.commit(by_member("g", &stale, vec![(key("t", 0), value(6, ""))]))
            .await
            .unwrap_err();
    assert!(
        matches!(err, GroupError::IllegalGeneration { .. }),
        "{err:?}"
    );
    // PreparingRebalance: still accepted from the current generation.
    let mut b = f.c.begin_join(join_req("g", None));
    f.c.commit(by_member("g", &a, vec![(key("t", 0), value(7, ""))]))
        .await
        .unwrap();
    // CompletingRebalance: refused.
    let a2 = f.c.join(join_req("g", Some(&a.member))).await.unwrap();
    let _ = done(&mut b).unwrap();
    let err =
        f.c.commit(by_member("g", &a2, vec![(key("t", 0), value(8, ""))]))
            .await
            .unwrap_err();
    assert!(matches!(err, GroupError::RebalanceInProgress), "{err:?}");
    assert_eq!(fetched(&f.c, "g", &key("t", 0)).unwrap().offset, Offset(7));
}

#[tokio::test]
async fn oversized_metadata_fails_only_its_partition() {
    let f = Fixture::new(0).await;
    let big = "x".repeat(4097);
    let results =
        f.c.commit(simple(
            "g",
            vec![
                (key("t", 0), value(1, &big)),
                (key("t", 1), value(2, &"y".repeat(4096))),
            ],
        ))
        .await
        .unwrap();
    assert!(matches!(
        results[0].1,
        Err(GroupError::MetadataTooLarge {
            size: 4097,
            max: 4096
        })
    ));
    assert!(results[1].1.is_ok());
    assert_eq!(fetched(&f.c, "g", &key("t", 0)), None);
}

#[tokio::test]
async fn large_commits_are_split_into_transactions() {
    let f = Fixture::new(0).await;
    let offsets: Vec<_> = (0..300)
        .map(|p| (key("wide", p), value(i64::from(p), "")))
        .collect();
    let results = f.c.commit(simple("g", offsets)).await.unwrap();
    assert_eq!(results.len(), 300);
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    let again = f.restart().await;
    assert_eq!(
        again
            .fetch_offsets(&GroupId::from("g"), None)
            .unwrap()
            .len(),
        300
    );
}

#[tokio::test]
async fn a_failing_store_fails_the_commit_and_keeps_the_old_offset() {
    let f = Fixture::new(0).await;
    f.c.commit(simple("g", vec![(key("t", 0), value(1, ""))]))
        .await
        .unwrap();
    f.meta.down.store(true, Ordering::SeqCst);
    let results =
        f.c.commit(simple("g", vec![(key("t", 0), value(2, ""))]))
            .await
            .unwrap();
    assert!(matches!(
        results[0].1,
        Err(GroupError::CoordinatorNotAvailable(_))
    ));
    f.meta.down.store(false, Ordering::SeqCst);
    assert_eq!(fetched(&f.c, "g", &key("t", 0)).unwrap().offset, Offset(1));
}

#[tokio::test]
async fn a_coordinator_that_lost_its_shard_cannot_write() {
    let f = Fixture::new(0).await;
    f.c.commit(simple("g", vec![(key("t", 0), value(1, ""))]))
        .await
        .unwrap();
    // Another coordinator takes every shard over (bumping their epochs).
    let other = f.restart().await;
    let results =
        f.c.commit(simple("g", vec![(key("t", 0), value(2, ""))]))
            .await
            .unwrap();
    assert!(matches!(results[0].1, Err(GroupError::NotCoordinator(_))));
    assert!(matches!(
        f.c.check_coordinator(&GroupId::from("g")),
        Err(GroupError::NotCoordinator(_))
    ));
    assert!(matches!(
        f.c.join(join_req("g", None)).await,
        Err(GroupError::NotCoordinator(_))
    ));
    assert_eq!(
        fetched(&other, "g", &key("t", 0)).unwrap().offset,
        Offset(1)
    );
    let shard = keys::shard(keys::shard_of(&GroupId::from("g")));
    let kv = f.meta.get(&shard).await.unwrap().unwrap();
    let record: ShardRecord = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(record.epoch, 2);
}

#[tokio::test]
async fn delete_groups_only_when_empty() {
    let f = Fixture::new(0).await;
    let g = GroupId::from("g");
    assert!(matches!(
        f.c.delete_group(&g).await,
        Err(GroupError::GroupNotFound(_))
    ));
    let a = stable_single(&f, "g").await;
    f.c.commit(by_member("g", &a, vec![(key("t", 0), value(1, ""))]))
        .await
        .unwrap();
    assert!(matches!(
        f.c.delete_group(&g).await,
        Err(GroupError::NonEmptyGroup(_))
    ));
    f.c.leave(
        &g,
        &[LeavingMember {
            member: Some(a.member),
            instance: None,
        }],
    )
    .unwrap();
    f.c.delete_group(&g).await.unwrap();
    assert!(f.c.describe(&g).unwrap().is_none());
    assert!(f.meta.keys("kafscale/groups/offsets/").is_empty());
    assert_eq!(fetched(&f.c, "g", &key("t", 0)), None);
    assert!(f.restart().await.list(&[]).is_empty());
}

#[tokio::test]
async fn offset_delete_protects_subscribed_topics() {
    let f = Fixture::new(0).await;
    let g = GroupId::from("g");
    let read = |m: &[u8]| -> Option<Vec<String>> {
        // The test protocols' metadata is "meta-<protocol>"; pretend it subscribes to "t".
        m.starts_with(b"meta-").then(|| vec!["t".to_owned()])
    };
    assert!(matches!(
        f.c.delete_offsets(&g, vec![key("t", 0)], &read).await,
        Err(GroupError::GroupNotFound(_))
    ));
    let a = stable_single(&f, "g").await;
    f.c.commit(by_member(
        "g",
        &a,
        vec![(key("t", 0), value(1, "")), (key("u", 0), value(2, ""))],
    ))
    .await
    .unwrap();
    let out =
        f.c.delete_offsets(&g, vec![key("t", 0), key("u", 0)], &read)
            .await
            .unwrap();
    let t = out.iter().find(|(k, _)| k.topic == "t").unwrap();
    let u = out.iter().find(|(k, _)| k.topic == "u").unwrap();
    assert!(matches!(t.1, Err(GroupError::SubscribedToTopic(_))));
    assert!(u.1.is_ok());
    assert!(fetched(&f.c, "g", &key("t", 0)).is_some());
    assert_eq!(fetched(&f.c, "g", &key("u", 0)), None);
    // Once empty, anything may go.
    f.c.leave(
        &g,
        &[LeavingMember {
            member: Some(a.member),
            instance: None,
        }],
    )
    .unwrap();
    let out =
        f.c.delete_offsets(&g, vec![key("t", 0)], &read)
            .await
            .unwrap();
    assert!(out[0].1.is_ok());
    assert!(f
        .restart()
        .await
        .fetch_offsets(&g, None)
        .unwrap()
        .is_empty());
}
