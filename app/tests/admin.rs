//! The admin APIs through the wire, every advertised version, against an in-process broker:
//! configs, partitions, record deletion, cluster and topic descriptions, leader epochs.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use common::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

async fn create_with_configs(
    c: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = partitions;
    t.replication_factor = -1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut cfg = create_topics_request::CreatableTopicConfig::default();
            cfg.name = s(k);
            cfg.value = Some(s(v));
            cfg
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    let t = &resp.topics[0];
    (
        t.error_code,
        t.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Waits until every partition of `topic` has a leader: in a cluster the controller assigns
/// new partitions (and partitions after a restart) shortly after the request that made them.
async fn led(c: &mut Client, topic: &str, partitions: usize) {
    for _ in 0..200 {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(topic));
        let mut req = MetadataRequest::default();
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = false;
        let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
        let parts = &resp.topics[0].partitions;
        if parts.len() == partitions
            && parts
                .iter()
                .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{topic}: partitions without a leader after 10 s");
}

/// Produces, retrying NOT_LEADER_OR_FOLLOWER as clients do while the broker takes up the
/// leadership that Metadata already shows.
async fn produce_led(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    for _ in 0..200 {
        let out = produce(c, 9, topic, partition, records.clone()).await;
        if out.0 != 6 {
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{topic}-{partition}: not the leader after 10 s");
}

fn describe_req(
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsRequest {
    let mut r = describe_configs_request::DescribeConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = s(name);
    r.configuration_keys = keys.map(|k| k.iter().map(|x| s(x)).collect());
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![r];
    req.include_synonyms = synonyms;
    req.include_documentation = docs;
    req
}

fn config<'a>(
    r: &'a describe_configs_response::DescribeConfigsResult,
    name: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    r.configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("no config {name}"))
}

async fn topic_configs(c: &mut Client, topic: &str) -> Vec<(String, String, i8)> {
    let resp: DescribeConfigsResponse = c
        .call(
            ApiKey::DescribeConfigs,
            4,
            &describe_req(2, topic, None, false, false),
        )
        .await;
    assert_eq!(resp.results[0].error_code, 0);
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().unwrap().to_string(),
                c.config_source,
            )
        })
        .collect()
}

fn value_of(configs: &[(String, String, i8)], name: &str) -> (String, i8) {
    let (_, v, src) = configs.iter().find(|(n, _, _)| n == name).unwrap();
    (v.clone(), *src)
}

#[tokio::test]
async fn describe_configs_every_version() {
    let broker = start(&[("log.retention.bytes", 123_456.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(
        create_with_configs(&mut c, "dc", 1, &[("retention.ms", "1000")])
            .await
            .0,
        0
    );
    for v in 1..=4i16 {
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(2, "dc", None, true, v >= 3),
            )
            .await;
        let r = &resp.results[0];
        assert_eq!(
            (r.error_code, r.resource_type, r.resource_name.as_str()),
            (0, 2, "dc"),
            "v{v}"
        );
        let retention = config(r, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG (v{v})");
        assert!(!retention.read_only);
        let names: Vec<&str> = retention.synonyms.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["retention.ms", "log.retention.ms"], "v{v}");
        let policy = config(r, "cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("delete"));
        assert_eq!(policy.config_source, 5, "DEFAULT_CONFIG (v{v})");
        // The broker's log.retention.bytes provides the topic default.
        let bytes = config(r, "retention.bytes");
        assert_eq!(bytes.value.as_deref(), Some("123456"));
        assert_eq!(bytes.config_source, 4, "STATIC_BROKER_CONFIG (v{v})");
        assert_eq!(
            config(r, "max.message.bytes").value.as_deref(),
            Some("1048588")
        );
        if v >= 3 {
            assert_eq!(retention.config_type, 5, "LONG");
            assert_eq!(policy.config_type, 7, "LIST");
            assert!(retention
                .documentation
                .as_ref()
                .is_some_and(|d| !d.is_empty()));
        }
        // An empty key list means every config.
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(2, "dc", Some(&[]), false, false),
            )
            .await;
        assert!(resp.results[0].configs.len() > 20, "v{v}");
        // Only the asked-for keys, no synonyms unless asked.
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(
                    2,
                    "dc",
                    Some(&["retention.ms", "segment.bytes"]),
                    false,
                    false,
                ),
            )
            .await;
        let got: Vec<&str> = resp.results[0]
            .configs
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(got, ["retention.ms", "segment.bytes"], "v{v}");
        assert!(resp.results[0]
            .configs
            .iter()
            .all(|c| c.synonyms.is_empty()));
        if v >= 3 {
            assert!(resp.results[0]
                .configs
                .iter()
                .all(|c| c.documentation.is_none()));
        }
        // The broker: read-only values of the running configuration.
        for id in ["0", ""] {
            let resp: DescribeConfigsResponse = c
                .call(
                    ApiKey::DescribeConfigs,
                    v,
                    &describe_req(4, id, None, false, false),
                )
                .await;
            let r = &resp.results[0];
            assert_eq!(r.error_code, 0, "v{v}");
            let m = config(r, "message.max.bytes");
            assert_eq!(m.value.as_deref(), Some("1048588"));
            assert!(m.read_only);
            assert_eq!(m.config_source, 5);
            let lrb = config(r, "log.retention.bytes");
            assert_eq!(lrb.value.as_deref(), Some("123456"));
            assert_eq!(lrb.config_source, 4);
            // Every described setting of the registry, and Kafka's fixed ones.
            let settings = kafscale_core::settings::SETTINGS
                .iter()
                .filter(|s| s.described);
            for name in settings.map(|s| s.name).chain(
                kafscale_core::settings::FIXED_CONFIGS
                    .iter()
                    .map(|f| f.name),
            ) {
                config(r, name);
            }
        }
        // Errors per resource.
        let mut req = describe_req(2, "missing", None, false, false);
        req.resources
            .push(describe_req(4, "7", None, false, false).resources.remove(0));
        req.resources.push(
            describe_req(99, "x", None, false, false)
                .resources
                .remove(0),
        );
        let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, v, &req).await;
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [3, 42, 42], "v{v}");
        assert!(resp.results.iter().all(|r| r.error_message.is_some()));
    }
    broker.shutdown().await;
}

fn alter_req(
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> AlterConfigsRequest {
    let mut r = alter_configs_request::AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = s(name);
    r.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut cfg = alter_configs_request::AlterableConfig::default();
            cfg.name = s(k);
            cfg.value = v.map(s);
            cfg
        })
        .collect();
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    req
}

#[tokio::test]
async fn alter_configs_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=2i16 {
        let topic = format!("ac-v{v}");
        assert_eq!(
            create_with_configs(&mut c, &topic, 1, &[("segment.ms", "5000")])
                .await
                .0,
            0
        );
        // Replace: segment.ms goes back to its default, retention.ms is set.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(
                    2,
                    &topic,
                    &[
                        ("retention.ms", Some("60000")),
                        ("max.message.bytes", Some("2000")),
                    ],
                    false,
                ),
            )
            .await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "v{v}: {:?}",
            resp.responses[0].error_message
        );
        assert_eq!(resp.responses[0].resource_name.as_str(), topic);
        let record = broker.ctx.log.topic(&topic).unwrap();
        assert_eq!(
            record.configs.get("retention.ms").map(String::as_str),
            Some("60000")
        );
        assert!(!record.configs.contains_key("segment.ms"));
        let described = topic_configs(&mut c, &topic).await;
        assert_eq!(value_of(&described, "retention.ms"), ("60000".into(), 1));
        assert_eq!(value_of(&described, "segment.ms"), ("604800000".into(), 5));
        // validate_only changes nothing; invalid values and names are INVALID_CONFIG.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(2, &topic, &[("retention.ms", Some("1"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(
            broker
                .ctx
                .log
                .topic(&topic)
                .unwrap()
                .configs
                .get("retention.ms")
                .map(String::as_str),
            Some("60000")
        );
        for (k, val, needle) in [
            ("retention.ms", "-5", "retention.ms"),
            ("cleanup.policy", "compact", "compaction is not supported"),
            ("no.such.thing", "1", "unknown topic config"),
        ] {
            let resp: AlterConfigsResponse = c
                .call(
                    ApiKey::AlterConfigs,
                    v,
                    &alter_req(2, &topic, &[(k, Some(val))], false),
                )
                .await;
            let r = &resp.responses[0];
            assert_eq!(r.error_code, 40, "v{v} {k}={val}");
            let msg = r.error_message.as_ref().unwrap().to_string();
            assert!(msg.contains(needle), "{msg}");
        }
        assert_eq!(broker.ctx.log.topic(&topic).unwrap().configs.len(), 2);
        // Broker configs are read-only; unknown topics are unknown.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(4, "0", &[("message.max.bytes", Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 42);
        assert!(resp.responses[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("read-only"));
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(2, "nope", &[("retention.ms", Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 3);
    }
    broker.shutdown().await;
}

fn incremental_req(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let mut r = incremental_alter_configs_request::AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = s(name);
    r.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
            cfg.name = s(k);
            cfg.config_operation = *op;
            cfg.value = v.map(s);
            cfg
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    req
}

#[tokio::test]
async fn incremental_alter_configs_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=1i16 {
        let topic = format!("iac-v{v}");
        assert_eq!(
            create_with_configs(
                &mut c,
                &topic,
                1,
                &[("segment.ms", "5000"), ("retention.bytes", "1000")]
            )
            .await
            .0,
            0
        );
        let call = |ops: Vec<(&'static str, i8, Option<&'static str>)>, validate_only: bool| {
            incremental_req(2, &topic, &ops, validate_only)
        };
        // SET and DELETE together; other configs stay.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(
                    vec![("retention.ms", 0, Some("120000")), ("segment.ms", 1, None)],
                    false,
                ),
            )
            .await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "{:?}",
            resp.responses[0].error_message
        );
        let configs = broker.ctx.log.topic(&topic).unwrap().configs;
        assert_eq!(
            configs.get("retention.ms").map(String::as_str),
            Some("120000")
        );
        assert_eq!(
            configs.get("retention.bytes").map(String::as_str),
            Some("1000")
        );
        assert!(!configs.contains_key("segment.ms"));
        // APPEND to a list config (already there: kept once).
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("cleanup.policy", 2, Some("delete"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(
            broker
                .ctx
                .log
                .topic(&topic)
                .unwrap()
                .configs
                .get("cleanup.policy")
                .map(String::as_str),
            Some("delete")
        );
        // Errors: APPEND on a non-list, compact, unknown name, bad op, duplicate, null SET.
        for (ops, code, needle) in [
            (
                vec![("retention.ms", 2, Some("5"))],
                40,
                "only to list configs",
            ),
            (
                vec![("cleanup.policy", 2, Some("compact"))],
                40,
                "compaction is not supported",
            ),
            (
                vec![("cleanup.policy", 3, Some("delete"))],
                40,
                "at least one value",
            ),
            (
                vec![("bogus.config", 0, Some("1"))],
                40,
                "unknown topic config",
            ),
            (
                vec![("retention.ms", 9, Some("1"))],
                42,
                "unknown operation",
            ),
            (
                vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
                42,
                "more than once",
            ),
            (vec![("retention.ms", 0, None)], 42, "null"),
        ] {
            let resp: IncrementalAlterConfigsResponse = c
                .call(
                    ApiKey::IncrementalAlterConfigs,
                    v,
                    &call(ops.clone(), false),
                )
                .await;
            let r = &resp.responses[0];
            assert_eq!(r.error_code, code, "v{v} {ops:?}");
            let msg = r.error_message.as_ref().unwrap().to_string();
            assert!(msg.contains(needle), "{ops:?}: {msg}");
        }
        // validate_only: checked, not applied.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("retention.ms", 0, Some("1"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 0);
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("retention.ms", 0, Some("x"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 40);
        assert_eq!(
            broker
                .ctx
                .log
                .topic(&topic)
                .unwrap()
                .configs
                .get("retention.ms")
                .map(String::as_str),
            Some("120000")
        );
        // Broker configs: read-only.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &incremental_req(4, "0", &[("log.retention.ms", 0, Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 42);
        assert_eq!(resp.responses[0].resource_type, 4);
    }
    broker.shutdown().await;
}

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

fn fetched(resp: &FetchResponse) -> (i16, Vec<Bytes>) {
    let p = &resp.responses[0].partitions[0];
    let mut records = p.records.clone().unwrap_or_default();
    let values = if records.is_empty() {
        Vec::new()
    } else {
        RecordBatchDecoder::decode(&mut records)
            .unwrap()
            .records
            .into_iter()
            .filter_map(|r| r.key)
            .collect()
    };
    (p.error_code, values)
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

fn delete_records_req(topic: &str, parts: &[(i32, i64)]) -> DeleteRecordsRequest {
    let mut t = delete_records_request::DeleteRecordsTopic::default();
    t.name = name(topic);
    t.partitions = parts
        .iter()
        .map(|(p, o)| {
            let mut d = delete_records_request::DeleteRecordsPartition::default();
            d.partition_index = *p;
            d.offset = *o;
            d
        })
        .collect();
    let mut req = DeleteRecordsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    req
}

#[tokio::test]
async fn delete_records_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=2i16 {
        let topic = format!("dr-v{v}");
        assert_eq!(create_topic(&mut c, &topic, 1).await, 0);
        led(&mut c, &topic, 1).await;
        for _ in 0..3 {
            produce_led(&mut c, &topic, 0, batch(5, 0, Compression::None)).await;
        }
        // Mid-batch, a missing partition, a negative offset, beyond the high watermark.
        let resp: DeleteRecordsResponse = c
            .call(
                ApiKey::DeleteRecords,
                v,
                &delete_records_req(&topic, &[(0, 7), (5, 1)]),
            )
            .await;
        let p = &resp.topics[0].partitions;
        assert_eq!((p[0].error_code, p[0].low_watermark), (0, 7), "v{v}");
        assert_eq!((p[1].error_code, p[1].low_watermark), (3, -1));
        assert_eq!(list_offset(&mut c, &topic, -2).await, 7);
        assert_eq!(list_offset(&mut c, &topic, -1).await, 15);
        for bad in [16, -2] {
            let resp: DeleteRecordsResponse = c
                .call(
                    ApiKey::DeleteRecords,
                    v,
                    &delete_records_req(&topic, &[(0, bad)]),
                )
                .await;
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 1,
                "v{v} offset {bad}"
            );
        }
        // Lower than the log start: nothing moves.
        let resp: DeleteRecordsResponse = c
            .call(
                ApiKey::DeleteRecords,
                v,
                &delete_records_req(&topic, &[(0, 3)]),
            )
            .await;
        assert_eq!(resp.topics[0].partitions[0].low_watermark, 7);
        // Fetch below the log start is out of range; at it, the batch holding it comes back.
        let resp: FetchResponse = c
            .call(
                ApiKey::Fetch,
                12,
                &fetch_request(12, &topic, uuid::Uuid::nil(), 0, 2, 0),
            )
            .await;
        assert_eq!(fetched(&resp).0, 1);
        let resp: FetchResponse = c
            .call(
                ApiKey::Fetch,
                12,
                &fetch_request(12, &topic, uuid::Uuid::nil(), 0, 7, 0),
            )
            .await;
        let (code, keys) = fetched(&resp);
        assert_eq!(code, 0);
        assert_eq!(resp.responses[0].partitions[0].log_start_offset, 7);
        assert!(
            keys.contains(&Bytes::from_static(b"key-2")),
            "offset 7 is key-2 of the second batch"
        );
        // -1: up to the high watermark.
        let resp: DeleteRecordsResponse = c
            .call(
                ApiKey::DeleteRecords,
                v,
                &delete_records_req(&topic, &[(0, -1)]),
            )
            .await;
        assert_eq!(
            (
                resp.topics[0].partitions[0].error_code,
                resp.topics[0].partitions[0].low_watermark
            ),
            (0, 15)
        );
        assert_eq!(list_offset(&mut c, &topic, -2).await, 15);
        // Appends continue after it.
        let (code, base) = produce_led(&mut c, &topic, 0, batch(2, 0, Compression::None)).await;
        assert_eq!((code, base), (0, 15));
        let resp: DeleteRecordsResponse = c
            .call(
                ApiKey::DeleteRecords,
                v,
                &delete_records_req("dr-none", &[(0, 1)]),
            )
            .await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 3);
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
        assert_eq!(resp.brokers[0].port, i32::from(broker.ctx.advertised.1));
        assert_eq!(resp.brokers[0].host.as_str(), broker.ctx.advertised.0);
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

fn epoch_req(topic: &str, current: i32, epoch: i32) -> OffsetForLeaderEpochRequest {
    let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
    p.partition = 0;
    p.current_leader_epoch = current;
    p.leader_epoch = epoch;
    let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    req
}

async fn epoch_end(
    c: &mut Client,
    v: i16,
    topic: &str,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let resp: OffsetForLeaderEpochResponse = c
        .call(
            ApiKey::OffsetForLeaderEpoch,
            v,
            &epoch_req(topic, current, epoch),
        )
        .await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[tokio::test]
async fn offset_for_leader_epoch_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        ("ephemeral", serde_json::Value::from(false)),
        ("data.dir", dir.path().to_str().unwrap().into()),
    ];
    // Epoch 0: offsets 0..5.
    let broker = start(&flags).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "ole", 1).await, 0);
    led(&mut c, "ole", 1).await;
    assert_eq!(
        produce_led(&mut c, "ole", 0, batch(5, 0, Compression::None)).await,
        (0, 0)
    );
    for v in 2..=4i16 {
        assert_eq!(epoch_end(&mut c, v, "ole", -1, 0).await, (0, 0, 5));
        assert_eq!(epoch_end(&mut c, v, "ole", 0, 0).await, (0, 0, 5));
        assert_eq!(
            epoch_end(&mut c, v, "ole", -1, 3).await,
            (0, -1, -1),
            "a future epoch is undefined"
        );
        assert_eq!(
            epoch_end(&mut c, v, "ole", 1, 0).await.0,
            75,
            "UNKNOWN_LEADER_EPOCH"
        );
        assert_eq!(epoch_end(&mut c, v, "missing", -1, 0).await.0, 3);
    }
    // Connections hold the broker's state (and its metadata file) until they close.
    drop(c);
    broker.shutdown().await;
    // Epoch 1 writes nothing; epoch 2 writes offsets 5..8 and 8..10.
    let broker = start(&flags).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    led(&mut c, "ole", 1).await;
    drop(c);
    broker.shutdown().await;
    let broker = start(&flags).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    led(&mut c, "ole", 1).await;
    assert_eq!(
        produce_led(&mut c, "ole", 0, batch(3, 0, Compression::None)).await,
        (0, 5)
    );
    assert_eq!(
        produce_led(&mut c, "ole", 0, batch(2, 0, Compression::None)).await,
        (0, 8)
    );
    for v in 2..=4i16 {
        assert_eq!(epoch_end(&mut c, v, "ole", -1, 0).await, (0, 0, 5), "v{v}");
        assert_eq!(epoch_end(&mut c, v, "ole", -1, 1).await, (0, 1, 5), "v{v}");
        assert_eq!(epoch_end(&mut c, v, "ole", 2, 2).await, (0, 2, 10), "v{v}");
        assert_eq!(
            epoch_end(&mut c, v, "ole", 1, 0).await.0,
            74,
            "FENCED_LEADER_EPOCH"
        );
    }
    // After deleting records, epochs before the log start end at it at the earliest.
    let resp: DeleteRecordsResponse = c
        .call(
            ApiKey::DeleteRecords,
            2,
            &delete_records_req("ole", &[(0, 6)]),
        )
        .await;
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 6);
    assert_eq!(epoch_end(&mut c, 4, "ole", -1, 0).await, (0, 0, 6));
    broker.shutdown().await;
}

#[tokio::test]
async fn create_topics_validates_configs_and_assignments() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let (code, msg) =
        create_with_configs(&mut c, "ct-bad", 1, &[("cleanup.policy", "compact")]).await;
    assert_eq!(code, 40);
    assert!(msg.unwrap().contains("compaction is not supported"));
    let (code, msg) = create_with_configs(&mut c, "ct-bad", 1, &[("not.a.config", "1")]).await;
    assert_eq!(code, 40);
    assert!(msg.unwrap().contains("unknown topic config"));
    assert!(broker.ctx.log.topic("ct-bad").is_none());
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

#[tokio::test]
async fn topic_max_message_bytes_is_enforced_and_can_change() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(
        create_with_configs(&mut c, "mmb", 1, &[("max.message.bytes", "200")])
            .await
            .0,
        0
    );
    led(&mut c, "mmb", 1).await;
    let big = batch(20, 0, Compression::None);
    let small = batch(1, 0, Compression::None);
    assert!(big.len() > 200 && small.len() <= 200);
    let req = produce_request("mmb", 0, -1, big.clone());
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 10, "MESSAGE_TOO_LARGE");
    assert!(p
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("max.message.bytes")));
    assert_eq!(produce_led(&mut c, "mmb", 0, small).await, (0, 0));
    // Raised: the big batch goes in.
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &incremental_req(2, "mmb", &[("max.message.bytes", 0, Some("100000"))], false),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(produce_led(&mut c, "mmb", 0, big).await, (0, 1));
    broker.shutdown().await;
}
