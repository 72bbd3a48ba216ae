//! Record admin APIs through the wire against an in-process broker: DeleteRecords (every
//! advertised version) and OffsetForLeaderEpoch across restarts.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use common::admin::*;
use common::*;

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
