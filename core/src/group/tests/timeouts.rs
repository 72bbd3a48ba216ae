//! Session, rebalance, sync and initial-delay deadlines, driven by the manual clock.

use super::*;

#[tokio::test]
async fn initial_delay_gathers_members_and_is_extended_up_to_the_rebalance_timeout() {
    let f = Fixture::new(3_000).await;
    let mut a = f.c.begin_join(join_req("g", None));
    f.advance(2_000);
    pending(&mut a);
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
    let mut b = f.c.begin_join(join_req("g", None));
    // Both joined, but the delay is not cut short.
    f.advance(999);
    pending(&mut a);
    // At 3 s a member had arrived during the delay: one more delay.
    f.advance(1);
    pending(&mut a);
    f.advance(2_999);
    pending(&mut b);
    f.advance(1);
    let (ra, rb) = (done(&mut a).unwrap(), done(&mut b).unwrap());
    assert_eq!(ra.generation, GenerationId(1));
    assert_eq!(rb.generation, GenerationId(1));
    assert_eq!(ra.leader, ra.member);
    assert_eq!(ra.members.len(), 2);

    // Members arriving every 2.5 s cannot extend beyond the rebalance timeout (30 s).
    let mut first = f.c.begin_join(join_req("h", None));
    let mut others = Vec::new();
    let mut waited = 0;
    while first.try_outcome().is_none() {
        if waited % 2_500 == 0 {
            others.push(f.c.begin_join(join_req("h", None)));
        }
        f.advance(100);
        waited += 100;
        assert!(waited <= 30_000, "initial delay never ended");
    }
    assert_eq!(waited, 30_000, "the delay ends at the rebalance timeout");
    assert!(others.iter_mut().all(|s| s.try_outcome().is_some()));
}

#[tokio::test]
async fn session_expiry_removes_a_silent_member_and_rebalances() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut b = f.c.begin_join(join_req("g", None));
    let a2 = f.c.join(join_req("g", Some(&a.member))).await.unwrap();
    let b2 = done(&mut b).unwrap();
    let mut s = sync_req("g", &a.member, a2.generation);
    s.assignments = vec![(b2.member.clone(), Bytes::from_static(b"B"))];
    f.c.sync(s).await.unwrap();
    f.c.sync(sync_req("g", &b2.member, b2.generation))
        .await
        .unwrap();
    // a heartbeats, b stays silent.
    for _ in 0..3 {
        f.advance(3_000);
        heartbeat(&f.c, "g", &a.member, a2.generation).unwrap();
    }
    f.advance(1_000);
    assert_eq!(
        state(&f.c, "g"),
        GroupState::PreparingRebalance,
        "b expired after 10 s"
    );
    assert!(matches!(
        heartbeat(&f.c, "g", &b2.member, b2.generation),
        Err(GroupError::UnknownMember(_))
    ));
    let a3 = f.c.join(join_req("g", Some(&a.member))).await.unwrap();
    assert_eq!(a3.generation, GenerationId(3));
    assert_eq!(a3.members.len(), 1);
    // The last member expiring empties the group.
    f.c.sync(sync_req("g", &a.member, a3.generation))
        .await
        .unwrap();
    f.advance(u64::try_from(SESSION).unwrap());
    assert_eq!(state(&f.c, "g"), GroupState::Empty);
}

#[tokio::test]
async fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut b = f.c.begin_join(join_req("g", None));
    // a never rejoins; heartbeats keep its session but not its place.
    for _ in 0..9 {
        f.advance(3_000);
        let _ = heartbeat(&f.c, "g", &a.member, a.generation);
        pending(&mut b);
    }
    f.advance(3_000);
    let rb = done(&mut b).unwrap();
    assert_eq!(rb.generation, GenerationId(2));
    assert_eq!(rb.leader, rb.member);
    assert_eq!(rb.members.len(), 1);
    assert!(matches!(
        heartbeat(&f.c, "g", &a.member, a.generation),
        Err(GroupError::UnknownMember(_))
    ));
}

#[tokio::test]
async fn a_pending_member_id_holds_the_rebalance_until_it_expires() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut req = join_req("g", None);
    req.require_known_member_id = true;
    let Err(GroupError::MemberIdRequired(_)) = f.c.join(req).await else {
        panic!("expected MEMBER_ID_REQUIRED");
    };
    // A known member rejoins: the pending one is still awaited.
    let mut lead = f.c.begin_join(join_req("g", Some(&a.member)));
    pending(&mut lead);
    f.advance(u64::try_from(SESSION).unwrap());
    assert_eq!(done(&mut lead).unwrap().generation, GenerationId(2));
}

#[tokio::test]
async fn members_that_never_sync_are_removed_at_the_sync_deadline() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut b = f.c.begin_join(join_req("g", None));
    let a2 = f.c.join(join_req("g", Some(&a.member))).await.unwrap();
    let b2 = done(&mut b).unwrap();
    // Only the leader syncs; b heartbeats but never syncs.
    let mut s = sync_req("g", &a.member, a2.generation);
    s.assignments = vec![(a.member.clone(), Bytes::from_static(b"A"))];
    f.c.sync(s).await.unwrap();
    for _ in 0..9 {
        f.advance(3_000);
        heartbeat(&f.c, "g", &a.member, a2.generation).unwrap();
        heartbeat(&f.c, "g", &b2.member, b2.generation).unwrap();
    }
    f.advance(3_000);
    assert!(matches!(
        heartbeat(&f.c, "g", &b2.member, b2.generation),
        Err(GroupError::UnknownMember(_))
    ));
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
}

#[tokio::test]
async fn empty_groups_without_offsets_are_dropped_after_a_while() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    f.c.leave(
        &GroupId::from("g"),
        &[LeavingMember {
            member: Some(a.member),
            instance: None,
        }],
    )
    .unwrap();
    assert_eq!(state(&f.c, "g"), GroupState::Empty);
    f.advance(599_999);
    assert!(f.c.describe(&GroupId::from("g")).unwrap().is_some());
    f.advance(1);
    assert!(f.c.describe(&GroupId::from("g")).unwrap().is_none());
}

#[tokio::test]
async fn the_timer_task_completes_a_delayed_join() {
    let f = Fixture::new(3_000).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let timers = tokio::spawn(f.c.clone().run_timers(stop_rx));
    let c = f.c.clone();
    let join = tokio::spawn(async move { c.join(join_req("g", None)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!join.is_finished());
    f.clock.advance(Duration::from_millis(3_000));
    let r = tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .expect("join completed by the timer task")
        .unwrap()
        .unwrap();
    assert_eq!(r.generation, GenerationId(1));
    stop_tx.send(true).unwrap();
    timers.await.unwrap();
}
