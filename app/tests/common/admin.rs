//! Helpers the admin API tests (`admin_*.rs`) share: topics with configs, waiting for leaders,
//! producing to a partition just led, the keys of a fetched partition.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::{name, produce, Client};

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub async fn create_with_configs(
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
pub async fn led(c: &mut Client, topic: &str, partitions: usize) {
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
pub async fn produce_led(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    for _ in 0..200 {
        let out = produce(c, 9, topic, partition, records.clone()).await;
        if out.0 != 6 {
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{topic}-{partition}: not the leader after 10 s");
}

pub fn fetched(resp: &FetchResponse) -> (i16, Vec<Bytes>) {
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

/// DescribeConfigs of one resource.
pub fn describe_req(
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

/// The config `name` of a described resource.
pub fn config<'a>(
    r: &'a describe_configs_response::DescribeConfigsResult,
    name: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    r.configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("no config {name}"))
}
