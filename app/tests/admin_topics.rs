//! Topic and cluster admin APIs through the wire against an in-process broker: CreateTopics
//! validation, CreatePartitions, DescribeTopicPartitions and DescribeCluster.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use common::admin::*;
use common::*;

fn create_partitions_req(topics: &[(&str, i32)], validate_only: bool) -> CreatePartitionsRequest {
    let mut req = CreatePartitionsRequest::default();
    req.topics = topics
        .iter()
        .map(|(n, count)| {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = name(n);
            t.count = *count;
            t.assignments = None;
            t
        })
        .collect();
    req.timeout_ms = 5000;
    req.validate_only = validate_only;
    req
}

#[tokio::test]
async fn create_partitions_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=3i16 {
        let topic = format!("cp-v{v}");
        assert_eq!(create_topic(&mut c, &topic, 1).await, 0);
        // validate_only: nothing changes.
        let resp: CreatePartitionsResponse = c
            .call(
                ApiKey::CreatePartitions,
                v,
                &create_partitions_req(&[(&topic, 3)], true),
            )
            .await;
        assert_eq!(resp.results[0].error_code, 0);
        assert_eq!(broker.ctx.log.topic(&topic).unwrap().partitions, 1);
        let resp: CreatePartitionsResponse = c
            .call(
                ApiKey::CreatePartitions,
                v,
                &create_partitions_req(&[(&topic, 3), ("cp-missing", 2)], false),
            )
            .await;
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, 3], "v{v}");
        assert_eq!(broker.ctx.log.topic(&topic).unwrap().partitions, 3);
        // Not larger: INVALID_PARTITIONS with the current count in the message.
        for count in [3, 2] {
            let resp: CreatePartitionsResponse = c
                .call(
                    ApiKey::CreatePartitions,
                    v,
                    &create_partitions_req(&[(&topic, count)], false),
                )
                .await;
            assert_eq!(resp.results[0].error_code, 37, "v{v} count {count}");
            assert!(resp.results[0]
                .error_message
                .as_ref()
                .unwrap()
                .contains("has 3 partitions"));
        }
        // The new partition takes data and serves it back.
        led(&mut c, &topic, 3).await;
        let (code, base) = produce_led(&mut c, &topic, 2, batch(3, 0, Compression::None)).await;
        assert_eq!((code, base), (0, 0), "v{v}");
        let resp: FetchResponse = c
            .call(
                ApiKey::Fetch,
                12,
                &fetch_request(12, &topic, uuid::Uuid::nil(), 2, 0, 0),
            )
            .await;
        let (code, keys) = fetched(&resp);
        assert_eq!(code, 0);
        assert_eq!(
            keys,
            ["key-0", "key-1", "key-2"].map(|k| Bytes::from(k.as_bytes()))
        );
        // Metadata shows three partitions with a leader.
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(&topic));
        let mut mreq = MetadataRequest::default();
        mreq.topics = Some(vec![t]);
        let meta: MetadataResponse = c.call(ApiKey::Metadata, 12, &mreq).await;
        assert_eq!(meta.topics[0].partitions.len(), 3);
        assert!(meta.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == 0 && p.leader_id.0 == 0));
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn describe_cluster_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=2i16 {
        let mut req = DescribeClusterRequest::default();
        req.include_cluster_authorized_operations = false;
        let resp: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.controller_id.0, 0);
        assert_eq!(resp.cluster_id.as_str(), broker.ctx.cluster_id);
        assert_eq!(resp.cluster_authorized_operations, i32::MIN);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.brokers[0].broker_id.0, 0);
        assert_eq!(
            resp.brokers[0].port,
            i32::from(broker.ctx.endpoints[0].port)
        );
        assert_eq!(resp.brokers[0].host.as_str(), broker.ctx.endpoints[0].host);
        req.include_cluster_authorized_operations = true;
        let resp: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, v, &req).await;
        assert!(resp.cluster_authorized_operations > 0);
        if v >= 1 {
            req.endpoint_type = 2;
            let resp: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, v, &req).await;
            assert_eq!(
                resp.error_code, 115,
                "controllers endpoint: UNSUPPORTED_ENDPOINT_TYPE"
            );
        }
    }
    broker.shutdown().await;
}

fn dtp_req(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    let mut req = DescribeTopicPartitionsRequest::default();
    req.topics = topics
        .iter()
        .map(|t| {
            let mut r = describe_topic_partitions_request::TopicRequest::default();
            r.name = name(t);
            r
        })
        .collect();
    req.response_partition_limit = limit;
    req.cursor = cursor.map(|(t, p)| {
        let mut c = describe_topic_partitions_request::Cursor::default();
        c.topic_name = name(t);
        c.partition_index = p;
        c
    });
    req
}

#[tokio::test]
async fn describe_topic_partitions_pages_with_a_cursor() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "dtp-a", 3).await, 0);
    assert_eq!(create_topic(&mut c, "dtp-b", 2).await, 0);
    led(&mut c, "dtp-a", 3).await;
    led(&mut c, "dtp-b", 2).await;
    // Pages of two partitions, following the cursor, in name order.
    let mut seen = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    for _ in 0..5 {
        let req = dtp_req(
            &["dtp-b", "dtp-a"],
            2,
            cursor.as_ref().map(|(t, p)| (t.as_str(), *p)),
        );
        let resp: DescribeTopicPartitionsResponse =
            c.call(ApiKey::DescribeTopicPartitions, 0, &req).await;
        for t in &resp.topics {
            assert_eq!(t.error_code, 0);
            assert!(!t.topic_id.is_nil());
            for p in &t.partitions {
                assert_eq!((p.error_code, p.leader_id.0, p.leader_epoch), (0, 0, 0));
                assert_eq!(p.isr_nodes.len(), 1);
                seen.push((t.name.as_ref().unwrap().0.to_string(), p.partition_index));
            }
        }
        cursor = resp
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<(String, i32)> = [
        ("dtp-a", 0),
        ("dtp-a", 1),
        ("dtp-a", 2),
        ("dtp-b", 0),
        ("dtp-b", 1),
    ]
    .iter()
    .map(|(t, p)| (t.to_string(), *p))
    .collect();
    assert_eq!(seen, expected);
    // Unknown topics get an error; no list means every topic.
    let resp: DescribeTopicPartitionsResponse = c
        .call(
            ApiKey::DescribeTopicPartitions,
            0,
            &dtp_req(&["dtp-zzz"], 0, None),
        )
        .await;
    assert_eq!(resp.topics[0].error_code, 3);
    let resp: DescribeTopicPartitionsResponse = c
        .call(ApiKey::DescribeTopicPartitions, 0, &dtp_req(&[], 0, None))
        .await;
    assert_eq!(resp.topics.len(), 2);
    assert!(resp.next_cursor.is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn create_topics_validates_configs_and_assignments() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let (code, msg) =
        create_with_configs(&mut c, "ct-bad", 1, &[("cleanup.policy", "shred")]).await;
    assert_eq!(code, 40);
    assert!(msg.unwrap().contains("cleanup.policy"));
    let (code, msg) = create_with_configs(&mut c, "ct-bad", 1, &[("not.a.config", "1")]).await;
    assert_eq!(code, 40);
    assert!(msg.unwrap().contains("unknown topic config"));
    assert!(broker.ctx.log.topic("ct-bad").is_none());
    // The names of Kafka's internal topics are reserved: INVALID_TOPIC_EXCEPTION.
    for internal in ["__consumer_offsets", "__transaction_state"] {
        let (code, msg) = create_with_configs(&mut c, internal, 1, &[]).await;
        assert_eq!(code, 17, "{internal}");
        assert!(msg.unwrap().contains("reserved"));
    }
    // Null and duplicate config values.
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("ct-null");
    t.num_partitions = 1;
    t.replication_factor = -1;
    let mut cfg = create_topics_request::CreatableTopicConfig::default();
    cfg.name = s("retention.ms");
    cfg.value = None;
    t.configs = vec![cfg.clone()];
    let mut dup = t.clone();
    dup.name = name("ct-dup");
    cfg.value = Some(s("1"));
    dup.configs = vec![cfg.clone(), cfg];
    // Manual assignment of two partitions to this broker; and to an unknown one.
    let mut assigned = create_topics_request::CreatableTopic::default();
    assigned.name = name("ct-assigned");
    assigned.num_partitions = -1;
    assigned.replication_factor = -1;
    assigned.assignments = (0..2)
        .map(|i| {
            let mut a = create_topics_request::CreatableReplicaAssignment::default();
            a.partition_index = i;
            a.broker_ids = vec![BrokerId(0)];
            a
        })
        .collect();
    let mut elsewhere = assigned.clone();
    elsewhere.name = name("ct-elsewhere");
    elsewhere.assignments[1].broker_ids = vec![BrokerId(9)];
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t, dup, assigned, elsewhere];
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [40, 42, 0, 39]);
    assert_eq!(resp.topics[2].num_partitions, 2);
    assert_eq!(broker.ctx.log.topic("ct-assigned").unwrap().partitions, 2);
    // v5+: the created topic's configs, with sources.
    let (code, _) = create_with_configs(&mut c, "ct-ok", 1, &[("retention.ms", "5000")]).await;
    assert_eq!(code, 0);
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("ct-validated");
    t.num_partitions = 2;
    t.replication_factor = -1;
    let mut cfg = create_topics_request::CreatableTopicConfig::default();
    cfg.name = s("retention.ms");
    cfg.value = Some(s("5000"));
    t.configs = vec![cfg];
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.validate_only = true;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &req).await;
    let configs = resp.topics[0].configs.as_ref().unwrap();
    let r = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (r.value.as_ref().unwrap().as_str(), r.config_source),
        ("5000", 1)
    );
    let p = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(
        (p.value.as_ref().unwrap().as_str(), p.config_source),
        ("delete", 5)
    );
    assert!(broker.ctx.log.topic("ct-validated").is_none());
    broker.shutdown().await;
}
