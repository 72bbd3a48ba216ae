//! Protocol-level tests of the consumer group APIs: every supported version, the group
//! protocol's error codes and committed offsets that survive a restart.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

async fn broker() -> kafscale::broker::Broker {
    start(&[("group.initial.rebalance.delay.ms", 0.into())]).await
}

fn join_request(version: i16, group: &str, member: &str) -> JoinGroupRequest {
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(b"\x00\x01subscription");
    let mut r = JoinGroupRequest::default();
    r.group_id = gid(group);
    r.session_timeout_ms = 10_000;
    if version >= 1 {
        r.rebalance_timeout_ms = 10_000;
    }
    r.member_id = s(member);
    r.protocol_type = s("consumer");
    r.protocols = vec![p];
    r
}

/// Joins a fresh member (answering MEMBER_ID_REQUIRED on v4+): (member id, generation).
async fn join(c: &mut Client, version: i16, group: &str) -> (String, i32, JoinGroupResponse) {
    let mut resp: JoinGroupResponse = c
        .call(
            ApiKey::JoinGroup,
            version,
            &join_request(version, group, ""),
        )
        .await;
    if version >= 4 {
        assert_eq!(resp.error_code, 79, "v{version}: MEMBER_ID_REQUIRED");
        assert!(!resp.member_id.is_empty());
        let req = join_request(version, group, &resp.member_id);
        resp = c.call(ApiKey::JoinGroup, version, &req).await;
    }
    assert_eq!(resp.error_code, 0, "v{version}");
    (resp.member_id.to_string(), resp.generation_id, resp)
}

fn sync_request(group: &str, member: &str, generation: i32, assignment: &[u8]) -> SyncGroupRequest {
    let mut a = sync_group_request::SyncGroupRequestAssignment::default();
    a.member_id = s(member);
    a.assignment = Bytes::copy_from_slice(assignment);
    let mut r = SyncGroupRequest::default();
    r.group_id = gid(group);
    r.generation_id = generation;
    r.member_id = s(member);
    r.assignments = vec![a];
    r
}

fn heartbeat_request(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    let mut r = HeartbeatRequest::default();
    r.group_id = gid(group);
    r.member_id = s(member);
    r.generation_id = generation;
    r
}

fn commit_request(
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = offsets
        .iter()
        .map(|(p, o, m)| {
            let mut out = offset_commit_request::OffsetCommitRequestPartition::default();
            out.partition_index = *p;
            out.committed_offset = *o;
            out.committed_metadata = m.map(s);
            out
        })
        .collect();
    let mut r = OffsetCommitRequest::default();
    r.group_id = gid(group);
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member);
    r.topics = vec![t];
    r
}

/// (offset, metadata, error) of one partition via OffsetFetch v1-7.
async fn fetch_one(
    c: &mut Client,
    version: i16,
    group: &str,
    topic: &str,
    p: i32,
) -> (i64, String, i16) {
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name(topic);
    t.partition_indexes = vec![p];
    let mut r = OffsetFetchRequest::default();
    r.group_id = gid(group);
    r.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, version, &r).await;
    let part = &resp.topics[0].partitions[0];
    let meta = part
        .metadata
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (
        part.committed_offset,
        meta,
        part.error_code.max(resp.error_code),
    )
}

#[tokio::test]
async fn find_coordinator_single_and_batched() {
    let broker = broker().await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let port = i32::from(broker.kafka_addr.port());
    for v in 0..=3 {
        let mut r = FindCoordinatorRequest::default();
        r.key = s("g");
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &r).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.node_id, BrokerId(0));
        assert_eq!(resp.port, port);
        if v >= 1 {
            r.key_type = 1;
            let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &r).await;
            assert_eq!(
                (resp.error_code, resp.port),
                (0, port),
                "v{v}: the transaction coordinator"
            );
        }
    }
    for v in 4..=6 {
        let mut r = FindCoordinatorRequest::default();
        r.coordinator_keys = vec![s("a"), s("b"), s("")];
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &r).await;
        assert_eq!(resp.coordinators.len(), 3);
        for k in &resp.coordinators[..2] {
            assert_eq!(
                (k.error_code, k.node_id, k.port),
                (0, BrokerId(0), port),
                "v{v}"
            );
        }
        assert_eq!(
            resp.coordinators[2].error_code, 42,
            "v{v}: empty key is invalid"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn group_lifecycle_every_version() {
    let broker = broker().await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=9i16 {
        let group = format!("life-v{v}");
        let (member, generation, joined) = join(&mut c, v, &group).await;
        assert_eq!(generation, 1, "v{v}");
        assert_eq!(joined.leader.to_string(), member, "v{v}");
        assert_eq!(joined.members.len(), 1);
        assert_eq!(
            joined.members[0].metadata,
            Bytes::from_static(b"\x00\x01subscription")
        );
        assert_eq!(
            joined
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .as_deref(),
            Some("range")
        );
        if v >= 7 {
            assert_eq!(
                joined
                    .protocol_type
                    .as_ref()
                    .map(|p| p.to_string())
                    .as_deref(),
                Some("consumer")
            );
        }
        let sv = v.min(5);
        let mut sreq = sync_request(&group, &member, generation, b"assignment");
        if sv >= 5 {
            sreq.protocol_type = Some(s("consumer"));
            sreq.protocol_name = Some(s("range"));
        }
        let synced: SyncGroupResponse = c.call(ApiKey::SyncGroup, sv, &sreq).await;
        assert_eq!(synced.error_code, 0, "sync v{sv}");
        assert_eq!(synced.assignment, Bytes::from_static(b"assignment"));
        let hv = v.min(4);
        let hb: HeartbeatResponse = c
            .call(
                ApiKey::Heartbeat,
                hv,
                &heartbeat_request(&group, &member, generation),
            )
            .await;
        assert_eq!(hb.error_code, 0, "heartbeat v{hv}");
        let stale: HeartbeatResponse = c
            .call(
                ApiKey::Heartbeat,
                hv,
                &heartbeat_request(&group, &member, generation + 5),
            )
            .await;
        assert_eq!(stale.error_code, 22, "heartbeat v{hv}: ILLEGAL_GENERATION");
        let unknown: HeartbeatResponse = c
            .call(
                ApiKey::Heartbeat,
                hv,
                &heartbeat_request(&group, "nobody", generation),
            )
            .await;
        assert_eq!(unknown.error_code, 25, "heartbeat v{hv}: UNKNOWN_MEMBER_ID");
        let lv = v.min(5);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = gid(&group);
        if lv < 3 {
            leave.member_id = s(&member);
            let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, lv, &leave).await;
            assert_eq!(resp.error_code, 0, "leave v{lv}");
        } else {
            let mut m = leave_group_request::MemberIdentity::default();
            m.member_id = s(&member);
            let mut ghost = leave_group_request::MemberIdentity::default();
            ghost.member_id = s("ghost");
            leave.members = vec![m, ghost];
            let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, lv, &leave).await;
            assert_eq!(resp.error_code, 0, "leave v{lv}");
            let codes: Vec<i16> = resp.members.iter().map(|m| m.error_code).collect();
            assert_eq!(codes, vec![0, 25], "leave v{lv}");
        }
        let after: HeartbeatResponse = c
            .call(
                ApiKey::Heartbeat,
                hv,
                &heartbeat_request(&group, &member, generation),
            )
            .await;
        assert_eq!(after.error_code, 25, "v{v}: gone after leaving");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn two_members_rebalance_and_the_follower_waits_for_the_leader() {
    let broker = broker().await;
    let mut a = Client::connect(broker.kafka_addr).await;
    let mut b = Client::connect(broker.kafka_addr).await;
    let (ma, g1, _) = join(&mut a, 5, "pair").await;
    let synced: SyncGroupResponse = a
        .call(ApiKey::SyncGroup, 3, &sync_request("pair", &ma, g1, b"all"))
        .await;
    assert_eq!(synced.error_code, 0);
    // b joins: its JoinGroup waits until a rejoins, which a learns from its heartbeat.
    let first: JoinGroupResponse = b
        .call(ApiKey::JoinGroup, 5, &join_request(5, "pair", ""))
        .await;
    assert_eq!(first.error_code, 79);
    let b_join = b
        .send(
            ApiKey::JoinGroup,
            5,
            &join_request(5, "pair", &first.member_id),
        )
        .await;
    let mut hb: HeartbeatResponse = a
        .call(ApiKey::Heartbeat, 3, &heartbeat_request("pair", &ma, g1))
        .await;
    for _ in 0..50 {
        if hb.error_code == 27 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        hb = a
            .call(ApiKey::Heartbeat, 3, &heartbeat_request("pair", &ma, g1))
            .await;
    }
    assert_eq!(hb.error_code, 27, "REBALANCE_IN_PROGRESS");
    let a2: JoinGroupResponse = a
        .call(ApiKey::JoinGroup, 5, &join_request(5, "pair", &ma))
        .await;
    assert_eq!(
        (a2.error_code, a2.generation_id, a2.members.len()),
        (0, 2, 2)
    );
    let mut frame = b.read_frame().await.unwrap();
    let header =
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, b_join);
    let b2 =
        <JoinGroupResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 5).unwrap();
    assert_eq!(
        (b2.error_code, b2.generation_id, b2.members.len()),
        (0, 2, 0)
    );
    assert_eq!(b2.leader, a2.member_id);
    // b's sync waits for a's assignment.
    let mb = b2.member_id.to_string();
    let b_sync = b
        .send(ApiKey::SyncGroup, 3, &sync_request("pair", &mb, 2, b""))
        .await;
    let mut lead = sync_request("pair", &ma, 2, b"for-a");
    let mut for_b = sync_group_request::SyncGroupRequestAssignment::default();
    for_b.member_id = s(&mb);
    for_b.assignment = Bytes::from_static(b"for-b");
    lead.assignments.push(for_b);
    let sa: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &lead).await;
    assert_eq!(sa.assignment, Bytes::from_static(b"for-a"));
    let mut frame = b.read_frame().await.unwrap();
    let header =
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, b_sync);
    let sb =
        <SyncGroupResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 3).unwrap();
    assert_eq!(
        (sb.error_code, sb.assignment),
        (0, Bytes::from_static(b"for-b"))
    );
    // Stale generation in SyncGroup and OffsetCommit.
    let stale: SyncGroupResponse = b
        .call(ApiKey::SyncGroup, 3, &sync_request("pair", &mb, 1, b""))
        .await;
    assert_eq!(stale.error_code, 22);
    create_topic(&mut a, "pair-topic", 2).await;
    let resp: OffsetCommitResponse = b
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("pair", &mb, 1, "pair-topic", &[(0, 5, None)]),
        )
        .await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 22);
    let resp: OffsetCommitResponse = b
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("pair", &mb, 2, "pair-topic", &[(0, 5, None)]),
        )
        .await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    // A simple commit into a group with members is refused.
    let resp: OffsetCommitResponse = b
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("pair", "", -1, "pair-topic", &[(0, 6, None)]),
        )
        .await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 25);
    // DescribeGroups shows both members with their assignments.
    let mut d = DescribeGroupsRequest::default();
    d.groups = vec![gid("pair")];
    let desc: DescribeGroupsResponse = a.call(ApiKey::DescribeGroups, 5, &d).await;
    let g = &desc.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.protocol_data.as_str()
        ),
        (0, "Stable", "range")
    );
    assert_eq!(g.members.len(), 2);
    assert!(g
        .members
        .iter()
        .all(|m| m.client_id.as_str() == "protocol-test"));
    assert!(g
        .members
        .iter()
        .any(|m| m.member_assignment == Bytes::from_static(b"for-b")));
    broker.shutdown().await;
}

#[tokio::test]
async fn join_group_bad_input() {
    let broker = broker().await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for (timeout, code) in [(5_999, 26), (1_800_001, 26), (6_000, 79)] {
        let mut r = join_request(5, "bad", "");
        r.session_timeout_ms = timeout;
        let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &r).await;
        assert_eq!(resp.error_code, code, "session timeout {timeout}");
    }
    let mut r = join_request(5, "bad", "");
    r.protocol_type = s("");
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &r).await;
    assert_eq!(resp.error_code, 23, "empty protocol type");
    let mut r = join_request(5, "bad", "");
    r.protocols.clear();
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &r).await;
    assert_eq!(resp.error_code, 23, "no protocols");
    let mut r = join_request(5, "", "");
    r.group_id = gid("");
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &r).await;
    assert_eq!(resp.error_code, 24, "empty group id");
    // A group of consumers refuses a member of another protocol type.
    join(&mut c, 5, "typed").await;
    let mut r = join_request(5, "typed", "");
    r.protocol_type = s("unknown-type");
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &r).await;
    assert_eq!(resp.error_code, 23, "unknown protocol type");
    let resp: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 5, &join_request(5, "typed", "stranger"))
        .await;
    assert_eq!(resp.error_code, 25, "unknown member id");
    broker.shutdown().await;
}

#[tokio::test]
async fn offset_commit_and_fetch_every_version() {
    let broker = broker().await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "offsets", 3).await, 0);
    for v in 2..=9i16 {
        let group = format!("simple-v{v}");
        let req = commit_request(
            &group,
            "",
            -1,
            "offsets",
            &[(0, 10 + i64::from(v), Some("meta")), (1, 3, None)],
        );
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, v, &req).await;
        let codes: Vec<i16> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, 0], "commit v{v}");
        for fv in 1..=7i16 {
            assert_eq!(
                fetch_one(&mut c, fv, &group, "offsets", 0).await,
                (10 + i64::from(v), "meta".to_owned(), 0),
                "commit v{v} fetch v{fv}"
            );
            assert_eq!(
                fetch_one(&mut c, fv, &group, "offsets", 1).await,
                (3, String::new(), 0)
            );
            // Nothing committed: -1 and no error.
            assert_eq!(fetch_one(&mut c, fv, &group, "offsets", 2).await.0, -1);
        }
    }
    // Unknown topics and partitions are refused per partition; oversized metadata too.
    let big = "m".repeat(4097);
    let ok = "m".repeat(4096);
    let req = commit_request(
        "mixed",
        "",
        -1,
        "offsets",
        &[(0, 1, Some(&big)), (1, 2, Some(&ok)), (9, 1, None)],
    );
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    let codes: Vec<i16> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![12, 0, 3]);
    assert_eq!(fetch_one(&mut c, 7, "mixed", "offsets", 1).await.1, ok);
    assert_eq!(fetch_one(&mut c, 7, "mixed", "offsets", 0).await.0, -1);
    let req = commit_request("mixed", "", -1, "no-such-topic", &[(0, 1, None)]);
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 3);
    // A generation for a group that does not exist.
    let req = commit_request("nobody", "m", 3, "offsets", &[(0, 1, None)]);
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 22);

    // v8+: several groups, all topics (null) or some, unknown group.
    for v in 8..=9i16 {
        let mut g1 = offset_fetch_request::OffsetFetchRequestGroup::default();
        g1.group_id = gid("simple-v2");
        g1.topics = None;
        let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
        t.name = name("offsets");
        t.partition_indexes = vec![0, 2];
        let mut g2 = offset_fetch_request::OffsetFetchRequestGroup::default();
        g2.group_id = gid("never-committed");
        g2.topics = Some(vec![t]);
        if v >= 9 {
            g2.member_epoch = -1;
        }
        let mut r = OffsetFetchRequest::default();
        r.groups = vec![g1, g2];
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &r).await;
        assert_eq!(resp.groups.len(), 2);
        let all = &resp.groups[0];
        assert_eq!(all.error_code, 0);
        let parts: Vec<(i32, i64)> = all.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        assert_eq!(parts, vec![(0, 12), (1, 3)], "v{v}");
        let none = &resp.groups[1];
        let parts: Vec<(i32, i64, i16)> = none.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset, p.error_code))
            .collect();
        assert_eq!(parts, vec![(0, -1, 0), (2, -1, 0)], "v{v}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn list_describe_delete_groups_and_offsets() {
    let broker = broker().await;
    let mut c = Client::connect(broker.kafka_addr).await;
    create_topic(&mut c, "t1", 1).await;
    create_topic(&mut c, "t2", 1).await;
    let (member, generation, _) = join(&mut c, 5, "active").await;
    let _: SyncGroupResponse = c
        .call(
            ApiKey::SyncGroup,
            3,
            &sync_request("active", &member, generation, b""),
        )
        .await;
    let req = commit_request("idle", "", -1, "t1", &[(0, 4, None)]);
    let _: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    for v in 0..=5i16 {
        let mut r = ListGroupsRequest::default();
        let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &r).await;
        let mut names: Vec<String> = resp
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec!["active", "idle"], "v{v}");
        if v >= 4 {
            r.states_filter = vec![s("stable")];
            let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &r).await;
            assert_eq!(resp.groups.len(), 1, "v{v}");
            assert_eq!(resp.groups[0].group_id.0.as_str(), "active");
            assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
            assert_eq!(resp.groups[0].protocol_type.as_str(), "consumer");
        }
        if v >= 5 {
            r.states_filter = vec![];
            r.types_filter = vec![s("consumer")];
            let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &r).await;
            assert!(resp.groups.is_empty(), "no groups of the new protocol");
        }
    }
    for v in 0..=6i16 {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![gid("idle"), gid("missing")];
        r.include_authorized_operations = v >= 3;
        let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, v, &r).await;
        assert_eq!(resp.groups[0].group_state.as_str(), "Empty", "v{v}");
        assert_eq!(resp.groups[1].group_state.as_str(), "Dead", "v{v}");
        assert_eq!(
            resp.groups[1].error_code,
            if v >= 6 { 69 } else { 0 },
            "v{v}"
        );
    }
    // OffsetDelete: a group with members keeps the offsets of topics it subscribes to.
    let subscription = {
        let mut sub = ConsumerProtocolSubscription::default();
        sub.topics = vec![s("t1")];
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        kafka_protocol::protocol::Encodable::encode(&sub, &mut buf, 1).unwrap();
        buf.freeze()
    };
    let mut rejoin = join_request(5, "active", &member);
    rejoin.protocols[0].metadata = subscription;
    let rejoined: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &rejoin).await;
    assert_eq!(rejoined.error_code, 0);
    let g2 = rejoined.generation_id;
    let _: SyncGroupResponse = c
        .call(
            ApiKey::SyncGroup,
            3,
            &sync_request("active", &member, g2, b""),
        )
        .await;
    for topic in ["t1", "t2"] {
        let req = commit_request("active", &member, g2, topic, &[(0, 9, None)]);
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    }
    let offset_delete = |group: &str, topics: &[&str]| {
        let mut r = OffsetDeleteRequest::default();
        r.group_id = gid(group);
        r.topics = topics
            .iter()
            .map(|t| {
                let mut out = offset_delete_request::OffsetDeleteRequestTopic::default();
                out.name = name(t);
                let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
                p.partition_index = 0;
                out.partitions = vec![p];
                out
            })
            .collect();
        r
    };
    let resp: OffsetDeleteResponse = c
        .call(
            ApiKey::OffsetDelete,
            0,
            &offset_delete("active", &["t1", "t2", "zz"]),
        )
        .await;
    assert_eq!(resp.error_code, 0);
    let codes: Vec<i16> = resp
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![86, 0, 3]);
    assert_eq!(fetch_one(&mut c, 7, "active", "t1", 0).await.0, 9);
    assert_eq!(fetch_one(&mut c, 7, "active", "t2", 0).await.0, -1);
    let resp: OffsetDeleteResponse = c
        .call(ApiKey::OffsetDelete, 0, &offset_delete("missing", &["t1"]))
        .await;
    assert_eq!(resp.error_code, 69);
    // DeleteGroups: only empty groups.
    for v in 0..=2i16 {
        let mut r = DeleteGroupsRequest::default();
        r.groups_names = vec![gid("active"), gid("missing"), gid("")];
        let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, v, &r).await;
        let codes: Vec<i16> = resp.results.iter().map(|g| g.error_code).collect();
        assert_eq!(codes, vec![68, 69, 24], "v{v}");
    }
    let mut r = DeleteGroupsRequest::default();
    r.groups_names = vec![gid("idle")];
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &r).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(fetch_one(&mut c, 7, "idle", "t1", 0).await.0, -1);
    broker.shutdown().await;
}

#[tokio::test]
async fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let config = || {
        let mut flags = std::collections::BTreeMap::new();
        flags.insert("data.dir".to_owned(), serde_json::Value::from(data.clone()));
        flags.insert("listen".to_owned(), "127.0.0.1:0".into());
        flags.insert("http.listen".to_owned(), "127.0.0.1:0".into());
        let env = figment::providers::Env::prefixed("KAFSCALE_GROUPS_TEST_UNUSED_");
        kafscale::config::load(None, env, flags).unwrap()
    };
    let broker = kafscale::broker::start(config()).await.unwrap();
    let mut c = Client::connect(broker.kafka_addr).await;
    create_topic(&mut c, "durable", 2).await;
    let req = commit_request(
        "keeper",
        "",
        -1,
        "durable",
        &[(0, 41, Some("before restart")), (1, 7, None)],
    );
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
    assert!(resp.topics[0].partitions.iter().all(|p| p.error_code == 0));
    drop(c);
    broker.shutdown().await;
    let broker = kafscale::broker::start(config()).await.unwrap();
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(
        fetch_one(&mut c, 7, "keeper", "durable", 0).await,
        (41, "before restart".to_owned(), 0)
    );
    assert_eq!(fetch_one(&mut c, 7, "keeper", "durable", 1).await.0, 7);
    let resp: ListGroupsResponse = c
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert_eq!(resp.groups.len(), 1);
    assert_eq!(resp.groups[0].group_state.as_str(), "Empty");
    broker.shutdown().await;
}
