//! Static membership (group.instance.id): restarts without rebalance, fencing.

use super::*;

fn static_join(group: &str, instance: &str, member: Option<&MemberId>) -> JoinRequest {
    let mut r = join_req(group, member);
    r.instance = Some(InstanceId::from(instance));
    // Static members are never asked for MEMBER_ID_REQUIRED.
    r.require_known_member_id = true;
    r
}

/// Two static members, Stable at generation `gen`, with assignments "A" and "B".
async fn stable_pair(f: &Fixture) -> (JoinResponse, JoinResponse) {
    let mut a = f.c.begin_join(static_join("g", "ia", None));
    let mut b = f.c.begin_join(static_join("g", "ib", None));
    f.advance(0);
    let ra = done(&mut a).unwrap();
    // With no delay, a completed alone; b waits for a to rejoin.
    let mut a2 = f.c.begin_join(static_join("g", "ia", Some(&ra.member)));
    let (ra, rb) = (done(&mut a2).unwrap(), done(&mut b).unwrap());
    assert_eq!(ra.generation, rb.generation);
    let mut s = sync_req("g", &ra.member, ra.generation);
    s.instance = Some(InstanceId::from("ia"));
    s.assignments = vec![
        (ra.member.clone(), Bytes::from_static(b"A")),
        (rb.member.clone(), Bytes::from_static(b"B")),
    ];
    f.c.sync(s).await.unwrap();
    let mut s = sync_req("g", &rb.member, rb.generation);
    s.instance = Some(InstanceId::from("ib"));
    assert_eq!(
        f.c.sync(s).await.unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
    (ra, rb)
}

#[tokio::test]
async fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
    let f = Fixture::new(0).await;
    let (ra, rb) = stable_pair(&f).await;
    assert!(ra.member.0.starts_with("ia-"));
    // b restarts: a new JoinGroup with its instance id and no member id.
    let rb2 = f.c.join(static_join("g", "ib", None)).await.unwrap();
    assert_ne!(rb2.member, rb.member);
    assert_eq!(rb2.generation, rb.generation);
    assert_eq!(rb2.leader, ra.member);
    assert!(rb2.members.is_empty());
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
    let mut s = sync_req("g", &rb2.member, rb2.generation);
    s.instance = Some(InstanceId::from("ib"));
    assert_eq!(
        f.c.sync(s).await.unwrap().assignment,
        Bytes::from_static(b"B")
    );
    // The old incarnation is fenced.
    let err =
        f.c.heartbeat(&HeartbeatRequest {
            group: GroupId::from("g"),
            member: rb.member.clone(),
            instance: Some(InstanceId::from("ib")),
            generation: rb.generation,
        })
        .unwrap_err();
    assert!(matches!(err, GroupError::FencedInstance { .. }), "{err:?}");
    let err =
        f.c.join(static_join("g", "ib", Some(&rb.member)))
            .await
            .unwrap_err();
    assert!(matches!(err, GroupError::FencedInstance { .. }), "{err:?}");
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
}

#[tokio::test]
async fn the_leader_restarting_stays_leader_and_nothing_rebalances() {
    let f = Fixture::new(0).await;
    let (ra, _rb) = stable_pair(&f).await;
    let ra2 = f.c.join(static_join("g", "ia", None)).await.unwrap();
    // The answer names the old leader id, so the new incarnation does not assign.
    assert_eq!(ra2.leader, ra.member);
    assert_ne!(ra2.member, ra.member);
    let d = f.c.describe(&GroupId::from("g")).unwrap().unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert!(d.members.iter().any(|m| m.member == ra2.member));
}

#[tokio::test]
async fn a_static_member_with_new_protocols_or_during_sync_rebalances() {
    let f = Fixture::new(0).await;
    let (_ra, _rb) = stable_pair(&f).await;
    let mut changed = static_join("g", "ib", None);
    changed.protocols = protocols(&["roundrobin", "range"]);
    changed.client_id = "other".into();
    // One vote each: the tie keeps "range" (the first member's preference), no rebalance.
    let r = f.c.join(changed.clone()).await.unwrap();
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
    // Now a also prefers roundrobin: the selection changes, so the group rebalances.
    let mut a_changed = static_join("g", "ia", None);
    a_changed.protocols = protocols(&["roundrobin"]);
    let mut step = f.c.begin_join(a_changed);
    pending(&mut step);
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
    let mut rejoin = changed;
    rejoin.member = Some(r.member);
    let rb = f.c.join(rejoin).await.unwrap();
    assert_eq!(rb.protocol_name.as_deref(), Some("roundrobin"));
    let ra = done(&mut step).unwrap();
    assert_eq!(ra.generation, rb.generation);
    // During CompletingRebalance a restart rebalances again (the leader may be
    // assigning to the old id).
    assert_eq!(state(&f.c, "g"), GroupState::CompletingRebalance);
    let mut again = f.c.begin_join(static_join("g", "ib", None));
    pending(&mut again);
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
}

#[tokio::test]
async fn static_members_leave_by_instance_id() {
    let f = Fixture::new(0).await;
    let (_ra, rb) = stable_pair(&f).await;
    let out =
        f.c.leave(
            &GroupId::from("g"),
            &[LeavingMember {
                member: None,
                instance: Some(InstanceId::from("ib")),
            }],
        )
        .unwrap();
    assert!(out[0].is_ok());
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
    assert!(matches!(
        heartbeat(&f.c, "g", &rb.member, rb.generation),
        Err(GroupError::UnknownMember(_))
    ));
}
