//! Idempotent producers through the wire: InitProducerId in every version, sequence errors
//! and retries in Produce, DescribeProducers.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::*;
use kafscale_core::batch;

async fn init(
    c: &mut Client,
    v: i16,
    pid: i64,
    epoch: i16,
    txn: Option<&str>,
) -> InitProducerIdResponse {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = txn.map(|t| TransactionalId(StrBytes::from_string(t.to_owned())));
    req.transaction_timeout_ms = 60_000;
    if v >= 3 {
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
    }
    c.call(ApiKey::InitProducerId, v, &req).await
}

fn idempotent(pid: i64, epoch: i16, seq: i32, n: usize) -> bytes::Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("v{}", seq as usize + i)).collect();
    let recs: Vec<batch::SimpleRecord<'_>> =
        values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    batch::build_idempotent(&recs, 1_000, pid, epoch, seq)
}

#[tokio::test]
async fn init_producer_id_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let mut seen = std::collections::BTreeSet::new();
    for v in 0..=4i16 {
        let r = init(&mut c, v, -1, -1, None).await;
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
        assert!(
            r.producer_id.0 >= 0 && seen.insert(r.producer_id.0),
            "v{v}: ids are unique"
        );
    }
    // KIP-360: a producer bumps its own epoch.
    let first = *seen.iter().next().unwrap();
    let r = init(&mut c, 4, first, 3, None).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, first, 4)
    );
    // A transactional id: its own producer id; again: the next epoch. A producer of an
    // unknown epoch asking to bump (KIP-360) is fenced: PRODUCER_FENCED from v4,
    // INVALID_PRODUCER_EPOCH before.
    let r = init(&mut c, 4, -1, -1, Some("tx")).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    let tx = r.producer_id.0;
    assert!(!seen.contains(&tx));
    let r = init(&mut c, 4, -1, -1, Some("tx")).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, tx, 1)
    );
    assert_eq!(init(&mut c, 4, tx, 7, Some("tx")).await.error_code, 90);
    assert_eq!(init(&mut c, 3, tx, 7, Some("tx")).await.error_code, 47);
    // The epoch before the last bump: a retry whose answer was lost gets the same answer.
    let r = init(&mut c, 4, tx, 0, Some("tx")).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 1));
    let r = init(&mut c, 4, tx, 1, Some("tx")).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 2));
}

#[tokio::test]
async fn sequences_retries_and_describe_producers() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "idem", 1).await, 0);
    let pid = init(&mut c, 4, -1, -1, None).await.producer_id.0;
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid, 0, 0, 3)).await,
        (0, 0)
    );
    // The retry of a committed batch: its first offset, nothing appended.
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid, 0, 3, 1)).await,
        (0, 3)
    );
    // A gap, a stale epoch, an unknown producer.
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid, 0, 9, 1))
            .await
            .0,
        45
    );
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid, -1, 4, 1))
            .await
            .0,
        47
    );
    assert_eq!(
        produce(&mut c, 9, "idem", 0, idempotent(pid + 1, 0, 4, 1))
            .await
            .0,
        59
    );
    let mut t = describe_producers_request::TopicRequest::default();
    t.name = name("idem");
    t.partition_indexes = vec![0, 7];
    let mut req = DescribeProducersRequest::default();
    req.topics = vec![t];
    let resp: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &req).await;
    let parts = &resp.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    let p = &parts[0].active_producers;
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].producer_id.0, p[0].producer_epoch, p[0].last_sequence),
        (pid, 0, 3)
    );
    assert_eq!(parts[1].error_code, 3, "unknown partition");
}
