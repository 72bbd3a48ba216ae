//! Transactions through the wire: FindCoordinator key type 1, InitProducerId with a
//! transactional id, AddPartitionsToTxn, EndTxn (the marker in the log), the error codes of
//! each version, DescribeTransactions and ListTransactions.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::*;
use kafscale_core::batch;

fn tid(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_owned()))
}

async fn init(c: &mut Client, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(tid(id));
    req.transaction_timeout_ms = timeout_ms;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    c.call(ApiKey::InitProducerId, 4, &req).await
}

async fn add_partitions(
    c: &mut Client,
    v: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<i16> {
    let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    t.name = name(topic);
    t.partitions = partitions;
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = tid(id);
    req.v3_and_below_producer_id = ProducerId(pid);
    req.v3_and_below_producer_epoch = epoch;
    req.v3_and_below_topics = vec![t];
    let resp: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, v, &req).await;
    resp.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end(c: &mut Client, v: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let mut req = EndTxnRequest::default();
    req.transactional_id = tid(id);
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.committed = commit;
    let resp: EndTxnResponse = c.call(ApiKey::EndTxn, v, &req).await;
    resp.error_code
}

#[tokio::test]
async fn a_transaction_over_the_wire() {
    let broker = start(&[("transaction.max.timeout.ms", 120_000.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "tx-out", 2).await, 0);

    // FindCoordinator for a transactional id: this broker.
    let mut req = FindCoordinatorRequest::default();
    req.key_type = 1;
    req.coordinator_keys = vec![StrBytes::from_static_str("app")];
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req).await;
    assert_eq!(resp.coordinators[0].error_code, 0);
    assert_eq!(
        resp.coordinators[0].port,
        i32::from(broker.kafka_addr.port())
    );

    assert_eq!(init(&mut c, "app", 120_001).await.error_code, 50);
    let r = init(&mut c, "app", 60_000).await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);

    // An unknown partition is refused and the others are not attempted.
    assert_eq!(
        add_partitions(&mut c, 3, "app", pid, epoch, "tx-out", vec![0, 9]).await,
        vec![55, 3]
    );
    // EndTxn with nothing added: no transaction to end.
    assert_eq!(end(&mut c, 3, "app", pid, epoch, true).await, 48);
    assert_eq!(
        add_partitions(&mut c, 3, "app", pid, epoch, "tx-out", vec![0, 1]).await,
        vec![0, 0]
    );
    let data = batch::build_idempotent(&[(None, Some(b"in-txn"))], 1_000, pid, epoch, 0);
    assert_eq!(produce(&mut c, 9, "tx-out", 0, data).await, (0, 0));
    // A stale epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED from it.
    assert_eq!(end(&mut c, 1, "app", pid, epoch - 1, true).await, 47);
    assert_eq!(end(&mut c, 2, "app", pid, epoch - 1, true).await, 90);
    assert_eq!(end(&mut c, 3, "app", pid + 1, epoch, true).await, 49);
    assert_eq!(end(&mut c, 3, "app", pid, epoch, true).await, 0);
    // Retried: success again; the other outcome: an invalid state.
    assert_eq!(end(&mut c, 3, "app", pid, epoch, true).await, 0);
    assert_eq!(end(&mut c, 3, "app", pid, epoch, false).await, 48);

    // Each partition holds its commit marker after what the transaction wrote.
    let id = topic_id(&mut c, "tx-out").await;
    for (partition, marker_at) in [(0, 1), (1, 0)] {
        let req = fetch_request(12, "tx-out", id, partition, 0, 0);
        let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = p.records.clone().unwrap();
        let batches: Vec<_> = batch::iter(&records).map(|b| b.unwrap()).collect();
        let (h, marker) = batches.last().unwrap();
        assert!(h.is_control());
        assert_eq!(
            (h.base_offset, h.producer_id, h.producer_epoch),
            (marker_at, pid, epoch)
        );
        assert_eq!(batch::marker_commits(marker), Some(true));
    }

    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![tid("app"), tid("nobody")];
    let resp: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req).await;
    let s = &resp.transaction_states;
    assert_eq!(
        (s[0].error_code, s[0].transaction_state.as_str()),
        (0, "CompleteCommit")
    );
    assert_eq!(s[0].producer_id.0, pid);
    assert_eq!(s[1].error_code, 105);
    let mut req = ListTransactionsRequest::default();
    req.duration_filter = -1;
    req.state_filters = vec![StrBytes::from_static_str("CompleteCommit")];
    let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 1, &req).await;
    let ids: Vec<&str> = resp
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.as_str())
        .collect();
    assert_eq!(ids, vec!["app"]);
}
