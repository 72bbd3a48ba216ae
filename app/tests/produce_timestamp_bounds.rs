//! `message.timestamp.before.max.ms` / `after.max.ms`: every CreateTime record of a batch
//! is checked against the broker's clock, and the produce response names each one outside
//! (INVALID_TIMESTAMP with record errors, as Kafka), compressed or not.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use common::admin::*;
use common::*;

const HOUR: i64 = 3_600_000;

/// (error code, indexes named in record errors) of producing `records` to partition 0.
async fn produce_to(c: &mut Client, topic: &str, records: bytes::Bytes) -> (i16, Vec<i32>) {
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, 9, &produce_request(topic, 0, -1, records))
        .await;
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code != 0 {
        assert!(
            p.error_message
                .as_ref()
                .is_some_and(|m| m.contains("message.timestamp")),
            "{:?}",
            p.error_message
        );
    }
    for e in &p.record_errors {
        let m = e.batch_index_error_message.as_ref().unwrap();
        assert!(m.contains("is out of range"), "{m}");
    }
    (
        p.error_code,
        p.record_errors.iter().map(|e| e.batch_index).collect(),
    )
}

#[tokio::test]
async fn every_record_is_checked() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let now = broker.ctx.log.now_ms();
    for (topic, configs) in [
        (
            "before",
            vec![("message.timestamp.before.max.ms", "3600000")],
        ),
        ("after", vec![("message.timestamp.after.max.ms", "3600000")]),
        (
            "both",
            vec![("message.timestamp.difference.max.ms", "3600000")],
        ),
    ] {
        assert_eq!(create_with_configs(&mut c, topic, 1, &configs).await.0, 0);
        led(&mut c, topic, 1).await;
    }
    for compression in [Compression::None, Compression::Lz4] {
        let at = |ts: &[i64]| batch_at(ts, compression);
        // The header's first and max timestamps are in range; the middle record is not.
        let old_inside = at(&[now, now - 2 * HOUR, now - 5, now]);
        assert_eq!(
            produce_to(&mut c, "before", old_inside.clone()).await,
            (32, vec![1])
        );
        assert_eq!(
            produce_to(&mut c, "both", old_inside.clone()).await,
            (32, vec![1])
        );
        assert_eq!(produce_to(&mut c, "after", old_inside).await, (0, vec![]));
        // Too new: only the max timestamp can be, and every such record is named.
        let new = at(&[now, now + 2 * HOUR, now + 3 * HOUR]);
        assert_eq!(
            produce_to(&mut c, "after", new.clone()).await,
            (32, vec![1, 2])
        );
        assert_eq!(
            produce_to(&mut c, "both", new.clone()).await,
            (32, vec![1, 2])
        );
        assert_eq!(produce_to(&mut c, "before", new).await, (0, vec![]));
        // In range, and records without a timestamp (-1), go in.
        for topic in ["before", "after", "both"] {
            let fine = at(&[now - HOUR + 60_000, now, now + HOUR - 60_000]);
            assert_eq!(
                produce_to(&mut c, topic, fine).await,
                (0, vec![]),
                "{topic}"
            );
            assert_eq!(produce_to(&mut c, topic, at(&[-1, -1])).await, (0, vec![]));
        }
    }
    broker.shutdown().await;
}
