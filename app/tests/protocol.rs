//! Protocol-level tests: every supported version of every API, against an in-process broker,
//! with requests and responses encoded by the kafka-protocol crate as a client would.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use std::time::{Duration, Instant};

fn decode_records(bytes: &Bytes) -> Vec<kafka_protocol::records::Record> {
    let mut buf = bytes.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        out.extend(set.records);
    }
    out
}

#[tokio::test]
async fn api_versions_every_version_and_unsupported() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=4 {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req.client_software_name = StrBytes::from_static_str("test");
            req.client_software_version = StrBytes::from_static_str("1");
        }
        let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let produce = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 11));
        let fetch = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .unwrap();
        assert!(fetch.max_version >= 11);
    }
    // A version from the future: v0 body with UNSUPPORTED_VERSION and our range.
    let resp: ApiVersionsResponse = {
        // Header v2 (flexible): key, version 99, correlation 7, client id null, no tags.
        let body = [
            &18i16.to_be_bytes()[..],
            &99i16.to_be_bytes(),
            &7i32.to_be_bytes(),
            &[0xff, 0xff, 0],
        ]
        .concat();
        c.send_raw(&[&(body.len() as i32).to_be_bytes()[..], &body].concat())
            .await;
        let mut frame = c.read_frame().await.unwrap();
        let _ =
            <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap();
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap()
    };
    assert_eq!(resp.error_code, 35);
    assert!(!resp.api_keys.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn metadata_every_version_auto_creates_and_describes() {
    let broker = start(&[("num.partitions", 3.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=12i16 {
        let topic = format!("meta-v{v}");
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(&topic));
        let mut req = MetadataRequest::default();
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = true;
        let resp: MetadataResponse = c.call(ApiKey::Metadata, v, &req).await;
        assert_eq!(resp.brokers.len(), 1, "v{v}");
        assert_eq!(resp.brokers[0].port, i32::from(broker.kafka_addr.port()));
        if v >= 1 {
            assert_eq!(resp.controller_id, BrokerId(0), "v{v}");
        }
        let t = &resp.topics[0];
        assert_eq!(t.error_code, 0, "v{v}");
        assert_eq!(t.partitions.len(), 3, "v{v}");
        assert!(t
            .partitions
            .iter()
            .all(|p| p.leader_id == BrokerId(0) && p.error_code == 0));
        if v >= 10 {
            assert!(!t.topic_id.is_nil(), "v{v}");
        }
    }
    // Auto-creation refused by the client (v4+): unknown topic.
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(name("not-created"));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 9, &req).await;
    assert_eq!(resp.topics[0].error_code, 3);
    // null = all topics; [] = none.
    let mut all = MetadataRequest::default();
    all.topics = None;
    let all: MetadataResponse = c.call(ApiKey::Metadata, 9, &all).await;
    assert_eq!(all.topics.len(), 13);
    let mut none = MetadataRequest::default();
    none.topics = Some(vec![]);
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 9, &none).await;
    assert!(resp.topics.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn metadata_without_auto_create_and_invalid_names() {
    let broker = start(&[("auto.create.topics.enable", false.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for (topic, code) in [("missing", 3), ("bad name!", 3)] {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(topic));
        let mut req = MetadataRequest::default();
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = true;
        let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
        assert_eq!(resp.topics[0].error_code, code, "{topic}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn create_topics_every_version_and_errors() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 2..=7i16 {
        let mk = |topic: &str, partitions: i32| {
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = name(topic);
            t.num_partitions = partitions;
            t.replication_factor = 3;
            t
        };
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = 5000;
        req.topics = vec![
            mk(&format!("created-v{v}"), 4),
            mk(&format!("created-v{v}"), 4),
            mk("bad/name", 1),
            mk(&format!("zero-v{v}"), 0),
        ];
        let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, v, &req).await;
        let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, vec![0, 36, 17, 37], "v{v}");
        if v >= 5 {
            assert_eq!(resp.topics[0].num_partitions, 4);
        }
        if v >= 7 {
            assert!(!resp.topics[0].topic_id.is_nil());
        }
    }
    // validate_only creates nothing.
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name("only-validated");
    t.num_partitions = 2;
    t.replication_factor = -1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.validate_only = true;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert!(broker.ctx.log.topic("only-validated").is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn produce_and_fetch_every_version_and_codec() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "pf", 2).await, 0);
    let id = topic_id(&mut c, "pf").await;
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected_offset = 0i64;
    for v in 3..=11i16 {
        for codec in codecs {
            let (code, base) = produce(&mut c, v, "pf", 1, batch(10, 1_000, codec)).await;
            if codec == Compression::Zstd && v < 7 {
                assert_eq!(code, 76, "zstd needs produce v7 (v{v})");
                continue;
            }
            assert_eq!(code, 0, "v{v} {codec:?}");
            assert_eq!(base, expected_offset, "v{v} {codec:?}");
            expected_offset += 10;
        }
    }
    for v in 4..=16i16 {
        let req = fetch_request(v, "pf", id, 1, 0, 100);
        let resp: FetchResponse = c.call(ApiKey::Fetch, v, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.high_watermark, expected_offset, "v{v}");
        assert_eq!(p.last_stable_offset, expected_offset, "v{v}");
        let records = decode_records(p.records.as_ref().unwrap());
        assert_eq!(records.len() as i64, expected_offset, "v{v}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("key-{}", i % 10).as_bytes()));
            if i % 10 % 7 == 3 {
                assert!(r.value.is_none());
            }
        }
    }
    // Fetching from the middle of a batch returns that whole batch.
    let resp: FetchResponse = c
        .call(ApiKey::Fetch, 12, &fetch_request(12, "pf", id, 1, 15, 100))
        .await;
    let records = decode_records(resp.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(records[0].offset, 10);
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_errors_and_long_poll() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "lp", 1).await, 0);
    let id = topic_id(&mut c, "lp").await;
    produce(&mut c, 9, "lp", 0, batch(5, 0, Compression::None)).await;
    // Beyond the high watermark: OFFSET_OUT_OF_RANGE; unknown topic: 3; unknown id: 100.
    let resp: FetchResponse = c
        .call(ApiKey::Fetch, 12, &fetch_request(12, "lp", id, 0, 6, 0))
        .await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 1);
    let resp: FetchResponse = c
        .call(ApiKey::Fetch, 12, &fetch_request(12, "nope", id, 0, 0, 0))
        .await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 3);
    let resp: FetchResponse = c
        .call(
            ApiKey::Fetch,
            13,
            &fetch_request(13, "", uuid::Uuid::new_v4(), 0, 0, 0),
        )
        .await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 100);
    // Stale leader epoch: FENCED_LEADER_EPOCH; future epoch: UNKNOWN_LEADER_EPOCH.
    let mut req = fetch_request(12, "lp", id, 0, 0, 0);
    req.topics[0].partitions[0].current_leader_epoch = 5;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 75);
    // At the high watermark: waits max_wait_ms, then answers empty.
    let started = Instant::now();
    let resp: FetchResponse = c
        .call(ApiKey::Fetch, 12, &fetch_request(12, "lp", id, 0, 5, 400))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(resp.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    // A produce during the wait wakes the fetch early.
    let mut waiter = Client::connect(broker.kafka_addr).await;
    let started = Instant::now();
    let pending = tokio::spawn(async move {
        let resp: FetchResponse = waiter
            .call(
                ApiKey::Fetch,
                12,
                &fetch_request(12, "lp", id, 0, 5, 10_000),
            )
            .await;
        resp
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce(&mut c, 9, "lp", 0, batch(3, 0, Compression::None)).await;
    let resp = pending.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let records = decode_records(resp.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(records.first().map(|r| r.offset), Some(5));
    // Sessions are declined: an unknown session id is error 70.
    let mut req = fetch_request(12, "lp", id, 0, 0, 0);
    req.session_id = 1234;
    req.session_epoch = 1;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(resp.error_code, 70);
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_honours_max_bytes_with_whole_batches() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "mb", 1).await, 0);
    let id = topic_id(&mut c, "mb").await;
    let one = batch(20, 0, Compression::None);
    for _ in 0..5 {
        produce(&mut c, 9, "mb", 0, one.clone()).await;
    }
    let mut req = fetch_request(12, "mb", id, 0, 0, 0);
    req.topics[0].partitions[0].partition_max_bytes = (one.len() * 2 + 10) as i32;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let bytes = resp.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(bytes.len(), one.len() * 2);
    // Below one batch: the first batch still comes back whole (KIP-74).
    req.topics[0].partitions[0].partition_max_bytes = 10;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .len(),
        one.len()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_of_many_partitions_keeps_order_and_the_total_budget() {
    // Partitions are read at once; the response must still be what a reader going through
    // them in order gets: within max_bytes, whole batches, nothing skipped.
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "many", 6).await, 0);
    let id = topic_id(&mut c, "many").await;
    let one = batch(20, 0, Compression::None);
    for p in 0..6 {
        for _ in 0..3 {
            assert_eq!(produce(&mut c, 9, "many", p, one.clone()).await.0, 0);
        }
    }
    let mut req = fetch_request(12, "many", id, 0, 0, 0);
    let template = req.topics[0].partitions[0].clone();
    req.topics[0].partitions = (0..6)
        .map(|p| {
            let mut fp = template.clone();
            fp.partition = p;
            fp
        })
        .collect();
    // Room for seven and a half batches: partitions 0 and 1 whole, one batch of partition 2.
    req.max_bytes = (one.len() * 7 + one.len() / 2) as i32;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let sizes: Vec<usize> = resp.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            assert_eq!(p.high_watermark, 60);
            p.records.as_ref().map_or(0, |r| r.len())
        })
        .collect();
    let order: Vec<i32> = resp.responses[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
    let n = one.len();
    assert_eq!(sizes, vec![3 * n, 3 * n, n, 0, 0, 0]);
    let third = decode_records(resp.responses[0].partitions[2].records.as_ref().unwrap());
    assert_eq!(third.first().map(|r| r.offset), Some(0));
    assert_eq!(third.last().map(|r| r.offset), Some(19));
    broker.shutdown().await;
}

#[tokio::test]
async fn list_offsets_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "lo", 1).await, 0);
    // Timestamps 1000..1010, then 5000..5010 (gzip: the lookup decompresses).
    produce(&mut c, 9, "lo", 0, batch(10, 1_000, Compression::None)).await;
    produce(&mut c, 9, "lo", 0, batch(10, 5_000, Compression::Gzip)).await;
    for v in 1..=10i16 {
        let cases: &[(i64, i64)] = &[
            (-1, 20),
            (-2, 0),
            (1_005, 5),
            (4_000, 10),
            (5_003, 13),
            (9_999, -1),
            (0, 0),
        ];
        for (ts, expected) in cases {
            let req = list_offsets_request("lo", *ts);
            let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, v, &req).await;
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "v{v} ts {ts}");
            assert_eq!(p.offset, *expected, "v{v} ts {ts}");
        }
    }
    // Max timestamp (v7+): the record with the greatest timestamp.
    let req = list_offsets_request("lo", -3);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    assert_eq!(resp.topics[0].partitions[0].offset, 19);
    assert_eq!(resp.topics[0].partitions[0].timestamp, 5_009);
    broker.shutdown().await;
}

#[tokio::test]
async fn delete_topics_every_version_and_recreate_starts_empty() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 1..=6i16 {
        let topic = format!("del-v{v}");
        assert_eq!(create_topic(&mut c, &topic, 1).await, 0);
        produce(&mut c, 9, &topic, 0, batch(3, 0, Compression::None)).await;
        let mut req = DeleteTopicsRequest::default();
        req.timeout_ms = 5000;
        if v >= 6 {
            let mut t = delete_topics_request::DeleteTopicState::default();
            t.name = Some(name(&topic));
            let mut missing = delete_topics_request::DeleteTopicState::default();
            missing.topic_id = uuid::Uuid::new_v4();
            req.topics = vec![t, missing];
        } else {
            req.topic_names = vec![name(&topic), name("never-existed")];
        }
        let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, v, &req).await;
        assert_eq!(resp.responses[0].error_code, 0, "v{v}");
        assert_eq!(
            resp.responses[1].error_code,
            if v >= 6 { 100 } else { 3 },
            "v{v}"
        );
        assert_eq!(create_topic(&mut c, &topic, 1).await, 0);
        let (code, base) = produce(&mut c, 9, &topic, 0, batch(1, 0, Compression::None)).await;
        assert_eq!(
            (code, base),
            (0, 0),
            "a re-created topic starts empty (v{v})"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_produce_input_gets_kafka_errors() {
    let broker = start(&[("message.max.bytes", 2000.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "bad", 1).await, 0);
    // Bad CRC: CORRUPT_MESSAGE.
    let mut corrupt = batch(3, 0, Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(
        produce(&mut c, 9, "bad", 0, Bytes::from(corrupt)).await.0,
        2
    );
    // Over message.max.bytes: MESSAGE_TOO_LARGE.
    assert_eq!(
        produce(&mut c, 9, "bad", 0, batch(200, 0, Compression::None))
            .await
            .0,
        10
    );
    // Two batches in one partition's data: INVALID_RECORD.
    let mut two = batch(1, 0, Compression::None).to_vec();
    two.extend_from_slice(&batch(1, 0, Compression::None));
    assert_eq!(produce(&mut c, 9, "bad", 0, Bytes::from(two)).await.0, 87);
    // Unknown partition and topic: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(
        produce(&mut c, 9, "bad", 7, batch(1, 0, Compression::None))
            .await
            .0,
        3
    );
    assert_eq!(
        produce(&mut c, 9, "nope", 0, batch(1, 0, Compression::None))
            .await
            .0,
        3
    );
    // acks=5: INVALID_REQUIRED_ACKS.
    let req = produce_request("bad", 0, 5, batch(1, 0, Compression::None));
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 21);
    // Nothing of that was stored: the next good batch gets offset 0.
    assert_eq!(
        produce(&mut c, 9, "bad", 0, batch(1, 0, Compression::None)).await,
        (0, 0)
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_order_is_kept() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "a0", 1).await, 0);
    // Pipeline: acks=0, then a metadata request; the next frame must answer the metadata.
    c.send(
        ApiKey::Produce,
        9,
        &produce_request("a0", 0, 0, batch(4, 0, Compression::None)),
    )
    .await;
    let mut all = MetadataRequest::default();
    all.topics = None;
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 9, &all).await;
    assert_eq!(resp.topics.len(), 1);
    // Pipelined acks=1 produces come back in order with increasing offsets.
    let mut corrs = Vec::new();
    for _ in 0..20 {
        corrs.push(
            c.send(
                ApiKey::Produce,
                9,
                &produce_request("a0", 0, 1, batch(1, 0, Compression::None)),
            )
            .await,
        );
    }
    let mut last = -1;
    for corr in corrs {
        let mut frame = c.read_frame().await.unwrap();
        let header_version = ApiKey::Produce.response_header_version(9);
        let h = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
            &mut frame,
            header_version,
        )
        .unwrap();
        assert_eq!(h.correlation_id, corr);
        let r = <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 9)
            .unwrap();
        let base = r.responses[0].partition_responses[0].base_offset;
        assert!(base > last);
        last = base;
    }
    assert_eq!(last, 23);
    // An acks=0 produce that fails closes the connection.
    c.send(
        ApiKey::Produce,
        9,
        &produce_request("missing-topic", 0, 0, batch(1, 0, Compression::None)),
    )
    .await;
    assert!(c.is_closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let broker = start(&[]).await;
    let mut healthy = Client::connect(broker.kafka_addr).await;
    let bad_inputs: Vec<Vec<u8>> = vec![
        // A claimed frame of 2 GiB: refused before allocating.
        vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        // Negative length.
        vec![0xff, 0xff, 0xff, 0xfe],
        // Shorter than a header.
        vec![0, 0, 0, 3, 1, 2, 3],
        // Unknown API key 999.
        [
            &[0u8, 0, 0, 10][..],
            &999i16.to_be_bytes(),
            &[0, 0, 0, 0, 0, 1, 0, 0],
        ]
        .concat(),
        // Metadata v99.
        [
            &[0u8, 0, 0, 10][..],
            &3i16.to_be_bytes(),
            &99i16.to_be_bytes(),
            &[0, 0, 0, 1, 0, 0],
        ]
        .concat(),
        // Metadata v9 with a body of garbage.
        [
            &[0u8, 0, 0, 16][..],
            &3i16.to_be_bytes(),
            &9i16.to_be_bytes(),
            &[0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1, 2],
        ]
        .concat(),
        // Produce v2 (pre-v2 message format).
        [
            &[0u8, 0, 0, 10][..],
            &0i16.to_be_bytes(),
            &2i16.to_be_bytes(),
            &[0, 0, 0, 1, 0, 0],
        ]
        .concat(),
    ];
    for input in bad_inputs {
        let mut c = Client::connect(broker.kafka_addr).await;
        c.send_raw(&input).await;
        assert!(c.is_closed().await, "{input:?}");
    }
    // A truncated frame followed by a close.
    let mut c = Client::connect(broker.kafka_addr).await;
    c.send_raw(&[0, 0, 0, 100, 0, 3]).await;
    drop(c);
    let resp: MetadataResponse = healthy
        .call(ApiKey::Metadata, 9, &MetadataRequest::default())
        .await;
    assert_eq!(resp.brokers.len(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_the_work() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "m", 1).await, 0);
    produce(&mut c, 9, "m", 0, batch(10, 0, Compression::None)).await;
    let get = |path: &'static str| http_get(broker.http_addr, path);
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    let metrics = get("/metrics").await;
    for family in [
        "kafscale_requests_total{api=\"Produce\"} 1",
        "kafscale_flushes_total 1",
        "kafscale_flush_size_bytes_count 1",
        "kafscale_flush_commit_duration_seconds_count 1",
        "kafscale_object_store_requests_total{op=\"put\",result=\"ok\"}",
        "kafscale_object_store_request_duration_seconds_bucket",
        "kafscale_produced_batches_total 1",
        "kafscale_object_store_health 0",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn hundreds_of_pipelined_produces_share_one_flush() {
    // Each produce waits for the next flush; a connection must hold a flush's worth of them
    // in flight, or a producer with many small requests is throttled to a few per flush.
    let broker = start(&[("flush.ms", 1000.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "pipe", 1).await, 0);
    let started = Instant::now();
    let n = 600;
    for _ in 0..n {
        c.send(
            ApiKey::Produce,
            9,
            &produce_request("pipe", 0, 1, batch(1, 0, Compression::None)),
        )
        .await;
    }
    for _ in 0..n {
        assert!(c.read_frame().await.is_some());
    }
    // One or two flushes (1 s each), not one per 128 requests.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?} for {n} pipelined produces",
        started.elapsed()
    );
    broker.shutdown().await;
}
