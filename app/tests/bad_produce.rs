//! Produce requests with invalid batches or settings, sent as produce v8 (the highest
//! non-flexible version): each gets its Kafka error, nothing of it is stored, and the broker
//! keeps serving.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafscale::broker::Broker;
use std::time::{Duration, Instant};

const V: i16 = 8;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_RECORD: i16 = 87;

/// Flips one bit in the last byte, inside the part the CRC covers; the framing stays valid.
fn corrupt_crc(batch: Bytes) -> Bytes {
    let mut bad = batch.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    Bytes::from(bad)
}

async fn broker_with_topic(topic: &str, extra: &[(&str, serde_json::Value)]) -> (Broker, Client) {
    let broker = start(extra).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, topic, 1).await, 0);
    (broker, c)
}

#[tokio::test]
async fn valid_hand_built_batches_are_accepted() {
    // The baseline of the cases below: the batches they start from are good.
    let (broker, mut c) = broker_with_topic("good", &[]).await;
    assert_eq!(
        produce(&mut c, V, "good", 0, sized_batch(3, 10)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, V, "good", 0, sized_batch(2, 10)).await,
        (0, 3)
    );
    assert_eq!(list_offset(&mut c, "good", -1).await, 5);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_crc_is_corrupt_message_and_nothing_is_stored() {
    let (broker, mut c) = broker_with_topic("crc", &[]).await;
    assert_eq!(produce(&mut c, V, "crc", 0, sized_batch(3, 10)).await.0, 0);
    let bad = corrupt_crc(sized_batch(4, 10));
    assert_eq!(produce(&mut c, V, "crc", 0, bad).await.0, CORRUPT_MESSAGE);
    // The connection stays usable, and nothing of the bad batch was stored.
    assert_eq!(
        produce(&mut c, V, "crc", 0, sized_batch(1, 10)).await,
        (0, 3)
    );
    assert_eq!(list_offset(&mut c, "crc", -1).await, 4);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn malformed_batches_are_rejected() {
    let good = sized_batch(3, 10).to_vec();
    let mut wrong_length = good.clone();
    let claimed = good.len() as i32 - 12 + 50;
    wrong_length[8..12].copy_from_slice(&claimed.to_be_bytes());
    let truncated = good[..good.len() - 5].to_vec();
    // Magic 1 with the v2 layout (the CRC does not cover the magic byte).
    let mut magic_1 = sized_batch(1, 1).to_vec();
    magic_1[16] = 1;
    for (how, bad) in [
        ("wrong length field", wrong_length),
        ("truncated records", truncated),
        ("magic 1", magic_1),
    ] {
        let (broker, mut c) = broker_with_topic("malformed", &[]).await;
        let (code, _) = produce(&mut c, V, "malformed", 0, Bytes::from(bad)).await;
        assert!(
            [CORRUPT_MESSAGE, INVALID_RECORD].contains(&code),
            "{how}: {code}"
        );
        assert_eq!(list_offset(&mut c, "malformed", -1).await, 0, "{how}");
        assert_healthy(&broker).await;
        broker.shutdown().await;
    }
}

#[tokio::test]
async fn invalid_acks_are_refused() {
    let (broker, mut c) = broker_with_topic("acks", &[]).await;
    let req = produce_request("acks", 0, 5, sized_batch(2, 10));
    let resp: ProduceResponse = c.call(ApiKey::Produce, V, &req).await;
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(code, INVALID_REQUIRED_ACKS);
    assert_eq!(list_offset(&mut c, "acks", -1).await, 0);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn acks_0_gets_no_response_and_a_bad_acks_0_batch_closes() {
    let (broker, mut c) = broker_with_topic("fire", &[]).await;
    let req = produce_request("fire", 0, 0, sized_batch(2, 10));
    c.send(ApiKey::Produce, V, &req).await;
    // The next frame answers the ApiVersions request: acks=0 produces get no response.
    let versions: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while list_offset(&mut c, "fire", -1).await != 2 {
        assert!(Instant::now() < deadline, "acks=0 batch not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut other = Client::connect(broker.kafka_addr).await;
    let bad = produce_request("fire", 0, 0, corrupt_crc(sized_batch(2, 10)));
    other.send(ApiKey::Produce, V, &bad).await;
    let answer = other.read_until_closed(Duration::from_secs(5)).await;
    assert_eq!(answer, Some(vec![]), "a failed acks=0 produce closes");
    assert_eq!(list_offset(&mut c, "fire", -1).await, 2);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn produce_to_an_unknown_partition() {
    let (broker, mut c) = broker_with_topic("one", &[]).await;
    let (code, _) = produce(&mut c, V, "one", 7, sized_batch(1, 10)).await;
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn batches_over_message_max_bytes_are_refused_whole() {
    const MAX_BYTES: usize = 10_000;
    let (broker, mut c) =
        broker_with_topic("limit", &[("message.max.bytes", MAX_BYTES.into())]).await;
    assert_eq!(
        produce(&mut c, V, "limit", 0, sized_batch(1, 1000)).await.0,
        0
    );
    let one_big = sized_batch(1, 2 * MAX_BYTES);
    assert_eq!(
        produce(&mut c, V, "limit", 0, one_big).await.0,
        MESSAGE_TOO_LARGE
    );
    // The limit applies to the whole batch.
    let many_small = sized_batch(20, 1000);
    assert!(many_small.len() > MAX_BYTES);
    assert_eq!(
        produce(&mut c, V, "limit", 0, many_small).await.0,
        MESSAGE_TOO_LARGE
    );
    assert_eq!(list_offset(&mut c, "limit", -1).await, 1);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

/// KIP-467: a record without a key in a batch for a compacted topic refuses the batch with
/// INVALID_RECORD and names the record in `record_errors`; keyed records (tombstones too) are
/// taken.
#[tokio::test]
async fn keyless_records_in_a_compacted_topic_are_refused_per_record() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let mut config = create_topics_request::CreatableTopicConfig::default();
    config.name = kafka_protocol::protocol::StrBytes::from_static_str("cleanup.policy");
    config.value = Some(kafka_protocol::protocol::StrBytes::from_static_str(
        "compact",
    ));
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("compacted");
    t.num_partitions = 1;
    t.replication_factor = -1;
    t.configs = vec![config];
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);

    let keyed: &[kafscale_core::batch::SimpleRecord] =
        &[(Some(b"a"), Some(b"1")), (Some(b"b"), None)];
    let keyed = kafscale_core::batch::build(keyed, 1_000);
    assert_eq!(produce(&mut c, V, "compacted", 0, keyed).await, (0, 0));
    let mixed: &[kafscale_core::batch::SimpleRecord] = &[
        (Some(b"a"), Some(b"2")),
        (Some(b"b"), Some(b"3")),
        (None, Some(b"4")),
    ];
    let req = produce_request(
        "compacted",
        0,
        -1,
        kafscale_core::batch::build(mixed, 1_000),
    );
    let resp: ProduceResponse = c.call(ApiKey::Produce, V, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 2);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap();
    assert!(message.contains("without key"), "{message}");
    assert_eq!(
        list_offset(&mut c, "compacted", -1).await,
        2,
        "nothing of the batch stored"
    );
    broker.shutdown().await;
}
