//! Joining, protocol selection, syncing and leaving.

use super::*;

#[tokio::test]
async fn first_join_v4_requires_a_member_id_then_completes() {
    let f = Fixture::new(0).await;
    let mut req = join_req("g", None);
    req.require_known_member_id = true;
    let id = match f.c.join(req.clone()).await {
        Err(GroupError::MemberIdRequired(id)) => id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    };
    assert!(id.0.starts_with("client-"));
    req.member = Some(id.clone());
    let j = f.c.join(req).await.unwrap();
    assert_eq!(j.member, id);
    assert_eq!(j.generation, GenerationId(1));
    assert_eq!(j.leader, id);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(j.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, Bytes::from_static(b"meta-range"));
    assert_eq!(state(&f.c, "g"), GroupState::CompletingRebalance);
    let mut s = sync_req("g", &id, j.generation);
    s.assignments = vec![(id.clone(), Bytes::from_static(b"mine"))];
    assert_eq!(
        f.c.sync(s).await.unwrap().assignment,
        Bytes::from_static(b"mine")
    );
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
}

#[tokio::test]
async fn bad_joins_are_refused() {
    let f = Fixture::new(0).await;
    let mut req = join_req("g", None);
    req.session_timeout_ms = 5_999;
    assert!(matches!(
        f.c.join(req.clone()).await,
        Err(GroupError::InvalidSessionTimeout(5_999))
    ));
    req.session_timeout_ms = 1_800_001;
    assert!(matches!(
        f.c.join(req).await,
        Err(GroupError::InvalidSessionTimeout(_))
    ));
    let mut req = join_req("", None);
    assert!(matches!(
        f.c.join(req.clone()).await,
        Err(GroupError::InvalidGroupId(_))
    ));
    req.group = GroupId::from("g");
    req.protocol_type = String::new();
    assert!(matches!(
        f.c.join(req.clone()).await,
        Err(GroupError::InconsistentProtocol)
    ));
    req.protocol_type = "consumer".into();
    req.protocols.clear();
    assert!(matches!(
        f.c.join(req).await,
        Err(GroupError::InconsistentProtocol)
    ));
    // A member of another protocol type, or with no protocol in common.
    stable_single(&f, "g").await;
    let mut other = join_req("g", None);
    other.protocol_type = "connect".into();
    assert!(matches!(
        f.c.join(other).await,
        Err(GroupError::InconsistentProtocol)
    ));
    let mut other = join_req("g", None);
    other.protocols = protocols(&["sticky"]);
    assert!(matches!(
        f.c.join(other).await,
        Err(GroupError::InconsistentProtocol)
    ));
    // An unknown member id.
    let ghost = MemberId::from("ghost");
    assert!(matches!(
        f.c.join(join_req("g", Some(&ghost))).await,
        Err(GroupError::UnknownMember(_))
    ));
    assert!(matches!(
        f.c.join(join_req("nope", Some(&ghost))).await,
        Err(GroupError::UnknownMember(_))
    ));
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
}

#[tokio::test]
async fn a_second_member_rebalances_and_the_leader_assigns() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut b_join = f.c.begin_join(join_req("g", None));
    pending(&mut b_join);
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
    // The existing member learns of the rebalance from its heartbeat, then rejoins.
    assert!(matches!(
        heartbeat(&f.c, "g", &a.member, a.generation),
        Err(GroupError::RebalanceInProgress)
    ));
    let mut a_join = f.c.begin_join(join_req("g", Some(&a.member)));
    let a2 = done(&mut a_join).unwrap();
    let b2 = done(&mut b_join).unwrap();
    assert_eq!(a2.generation, GenerationId(2));
    assert_eq!(b2.generation, GenerationId(2));
    assert_eq!(a2.leader, a.member);
    assert_eq!(b2.leader, a.member);
    assert_eq!(a2.members.len(), 2, "the leader sees every member");
    assert_eq!(a2.members[0].member, a.member, "in join order");
    assert!(b2.members.is_empty());
    // The follower waits for the leader's assignment, which is handed out as sent.
    let mut b_sync = f.c.begin_sync(sync_req("g", &b2.member, b2.generation));
    pending(&mut b_sync);
    assert!(heartbeat(&f.c, "g", &b2.member, b2.generation).is_ok());
    let mut s = sync_req("g", &a.member, a2.generation);
    s.assignments = vec![
        (a.member.clone(), Bytes::from_static(b"A")),
        (b2.member.clone(), Bytes::from_static(b"B")),
        (MemberId::from("stranger"), Bytes::from_static(b"X")),
    ];
    assert_eq!(
        f.c.sync(s).await.unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(
        done(&mut b_sync).unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
    // A follower rejoining with the same metadata changes nothing.
    let again = f.c.join(join_req("g", Some(&b2.member))).await.unwrap();
    assert_eq!(again.generation, GenerationId(2));
    assert_eq!(state(&f.c, "g"), GroupState::Stable);
    // The leader rejoining forces a rebalance.
    let mut lead = f.c.begin_join(join_req("g", Some(&a.member)));
    pending(&mut lead);
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
}

#[tokio::test]
async fn protocol_is_chosen_by_the_members_preference() {
    let f = Fixture::new(0).await;
    let mut reqs = Vec::new();
    for prefs in [&["a", "b"][..], &["b", "a"], &["b", "a", "c"]] {
        let mut r = join_req("g", None);
        r.protocols = protocols(prefs);
        reqs.push(r);
    }
    let mut steps: Vec<_> = Vec::new();
    // With no initial delay the first join completes alone; the others join generation 2.
    let first = f.c.join(reqs[0].clone()).await.unwrap();
    assert_eq!(first.protocol_name.as_deref(), Some("a"));
    for r in &reqs[1..] {
        steps.push(f.c.begin_join(r.clone()));
    }
    let mut again = reqs[0].clone();
    again.member = Some(first.member.clone());
    steps.push(f.c.begin_join(again));
    let results: Vec<_> = steps.iter_mut().map(|s| done(s).unwrap()).collect();
    assert!(results.iter().all(|r| r.generation == GenerationId(2)));
    assert!(results
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("b")));
    let leader = results.iter().find(|r| !r.members.is_empty()).unwrap();
    assert!(leader
        .members
        .iter()
        .all(|m| m.metadata == Bytes::from_static(b"meta-b")));
}

#[tokio::test]
async fn sync_and_heartbeat_check_member_generation_and_state() {
    let f = Fixture::new(0).await;
    let ghost = MemberId::from("ghost");
    assert!(matches!(
        heartbeat(&f.c, "g", &ghost, GenerationId(1)),
        Err(GroupError::UnknownMember(_))
    ));
    assert!(matches!(
        f.c.sync(sync_req("g", &ghost, GenerationId(1))).await,
        Err(GroupError::UnknownMember(_))
    ));
    let a = stable_single(&f, "g").await;
    assert!(matches!(
        heartbeat(&f.c, "g", &a.member, GenerationId(7)),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        f.c.sync(sync_req("g", &a.member, GenerationId(0))).await,
        Err(GroupError::IllegalGeneration { .. })
    ));
    let mut wrong = sync_req("g", &a.member, a.generation);
    wrong.protocol_name = Some("roundrobin".into());
    assert!(matches!(
        f.c.sync(wrong).await,
        Err(GroupError::InconsistentProtocol)
    ));
    // Stable: the current assignment again.
    let again =
        f.c.sync(sync_req("g", &a.member, a.generation))
            .await
            .unwrap();
    assert_eq!(again.assignment, Bytes::from_static(b"a1"));
    // PreparingRebalance: sync is refused.
    let _b = f.c.begin_join(join_req("g", None));
    assert!(matches!(
        f.c.sync(sync_req("g", &a.member, a.generation)).await,
        Err(GroupError::RebalanceInProgress)
    ));
}

#[tokio::test]
async fn a_member_leaving_while_others_wait_for_sync_restarts_the_rebalance() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let mut b = f.c.begin_join(join_req("g", None));
    let a2 = f.c.join(join_req("g", Some(&a.member))).await.unwrap();
    let b2 = done(&mut b).unwrap();
    let mut b_sync = f.c.begin_sync(sync_req("g", &b2.member, b2.generation));
    pending(&mut b_sync);
    let left =
        f.c.leave(
            &GroupId::from("g"),
            &[LeavingMember {
                member: Some(a2.member.clone()),
                instance: None,
            }],
        )
        .unwrap();
    assert!(left[0].is_ok());
    assert!(matches!(
        done(&mut b_sync),
        Err(GroupError::RebalanceInProgress)
    ));
    assert_eq!(state(&f.c, "g"), GroupState::PreparingRebalance);
    let b3 = f.c.join(join_req("g", Some(&b2.member))).await.unwrap();
    assert_eq!(b3.generation, GenerationId(3));
    assert_eq!(b3.leader, b2.member, "the remaining member leads");
}

#[tokio::test]
async fn leave_single_batched_and_by_instance() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "g").await;
    let g = GroupId::from("g");
    let out =
        f.c.leave(
            &g,
            &[
                LeavingMember {
                    member: Some(MemberId::from("ghost")),
                    instance: None,
                },
                LeavingMember {
                    member: Some(a.member.clone()),
                    instance: None,
                },
                LeavingMember {
                    member: None,
                    instance: Some(InstanceId::from("nobody")),
                },
            ],
        )
        .unwrap();
    assert!(matches!(out[0], Err(GroupError::UnknownMember(_))));
    assert!(out[1].is_ok());
    assert!(matches!(out[2], Err(GroupError::UnknownMember(_))));
    // The last member left: the group is empty and its generation moved on.
    assert_eq!(state(&f.c, "g"), GroupState::Empty);
    assert!(matches!(
        heartbeat(&f.c, "g", &a.member, a.generation),
        Err(GroupError::UnknownMember(_))
    ));
    let unknown_group =
        f.c.leave(
            &GroupId::from("none"),
            &[LeavingMember {
                member: Some(a.member.clone()),
                instance: None,
            }],
        )
        .unwrap();
    assert!(matches!(
        unknown_group[0],
        Err(GroupError::UnknownMember(_))
    ));
}

#[tokio::test]
async fn describe_and_list_with_state_filter() {
    let f = Fixture::new(0).await;
    let a = stable_single(&f, "stable").await;
    let _p = f.c.begin_join(join_req("preparing", None));
    let d = f.c.describe(&GroupId::from("stable")).unwrap().unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol, "range");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member, a.member);
    assert_eq!(d.members[0].assignment, Bytes::from_static(b"a1"));
    assert_eq!(d.members[0].metadata, Bytes::from_static(b"meta-range"));
    assert!(f.c.describe(&GroupId::from("missing")).unwrap().is_none());
    let all = f.c.list(&[]);
    assert_eq!(all.len(), 2);
    let stable = f.c.list(&[GroupState::Stable]);
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].group, GroupId::from("stable"));
    assert_eq!(
        GroupState::parse("completingrebalance"),
        Some(GroupState::CompletingRebalance)
    );
    assert_eq!(GroupState::parse("bogus"), None);
}
