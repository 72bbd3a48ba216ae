//! The audit trail's counters: every change API writes one event per resource with its
//! outcome, and allowed authorization checks are audited only with `audit.log.allows`.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;

use common::{create_topic, name, Client};
use kafscale::broker::Broker;

async fn audited(b: &Broker, event: &str, outcome: &str) -> u64 {
    let text = common::http_get(b.http_addr, "/metrics").await;
    let sample = format!(r#"kafscale_audit_events_total{{event="{event}",outcome="{outcome}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&sample))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn each_change_api_audits_each_resource_with_its_outcome() {
    let b = common::start(&[]).await;
    let mut c = Client::connect(b.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "audited", 1).await, 0);
    assert_ne!(create_topic(&mut c, "audited", 1).await, 0);
    assert_eq!(audited(&b, "change", "success").await, 1);
    assert_eq!(audited(&b, "change", "TOPIC_ALREADY_EXISTS").await, 1);

    let mut t = create_partitions_request::CreatePartitionsTopic::default();
    t.name = name("audited");
    t.count = 3;
    t.assignments = None;
    let mut req = CreatePartitionsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 1, &req).await;
    assert_eq!(resp.results[0].error_code, 0);
    // validate_only changes nothing and is not audited.
    req.validate_only = true;
    req.topics[0].count = 4;
    let _: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 1, &req).await;
    assert_eq!(audited(&b, "change", "success").await, 2);

    let mut r = incremental_alter_configs_request::AlterConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = "audited".into();
    let mut entry = incremental_alter_configs_request::AlterableConfig::default();
    entry.name = "retention.ms".into();
    entry.value = Some("3600000".into());
    r.configs = vec![entry];
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    let resp: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(audited(&b, "change", "success").await, 3);

    // Three partitions: three DeleteRecords events.
    let mut t = delete_records_request::DeleteRecordsTopic::default();
    t.name = name("audited");
    t.partitions = (0..3)
        .map(|i| {
            let mut p = delete_records_request::DeleteRecordsPartition::default();
            p.partition_index = i;
            p.offset = 0;
            p
        })
        .collect();
    let mut req = DeleteRecordsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let _: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 1, &req).await;
    assert_eq!(audited(&b, "change", "success").await, 6);

    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(
        kafka_protocol::protocol::StrBytes::from_static_str("no-such-group"),
    )];
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req).await;
    assert_ne!(resp.results[0].error_code, 0);
    assert_eq!(audited(&b, "change", "GROUP_ID_NOT_FOUND").await, 1);

    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![name("audited")];
    req.timeout_ms = 5000;
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 4, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(audited(&b, "change", "success").await, 7);
    // No authorizer: nothing is denied, nothing allowed is audited.
    assert_eq!(audited(&b, "authorization", "allowed").await, 0);
}

#[tokio::test]
async fn allowed_checks_are_audited_only_when_asked_for() {
    for allows in [false, true] {
        let b = common::start(&[
            ("authorizer.class.name", "acl".into()),
            ("super.users", "User:ANONYMOUS".into()),
            ("audit.log.allows", allows.into()),
        ])
        .await;
        let mut c = Client::connect(b.kafka_addr).await;
        assert_eq!(create_topic(&mut c, "checked", 1).await, 0);
        let mut topic = metadata_request::MetadataRequestTopic::default();
        topic.name = Some(name("checked"));
        let mut req = MetadataRequest::default();
        req.topics = Some(vec![topic]);
        let resp: MetadataResponse = c.call(ApiKey::Metadata, 9, &req).await;
        assert_eq!(resp.topics[0].error_code, 0);
        let allowed = audited(&b, "authorization", "allowed").await;
        assert_eq!(allowed > 0, allows, "{allowed} allowed checks audited");
        assert_eq!(audited(&b, "authorization", "denied").await, 0);
    }
}
