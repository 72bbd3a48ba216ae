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

/// One record, `value`, in a transactional batch of the producer (first sequence 0).
fn txn_batch(pid: i64, epoch: i16, value: &[u8]) -> bytes::Bytes {
    batch::build_with(
        &[(None, Some(value))],
        1_000,
        (pid, epoch, 0),
        batch::TRANSACTIONAL_BIT,
    )
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

/// The error code of a transactional producer's produce to partition 0.
async fn produce_txn(c: &mut Client, id: &str, topic: &str, records: bytes::Bytes) -> i16 {
    let mut req = produce_request(topic, 0, -1, records);
    req.transactional_id = Some(tid(id));
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
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
    // A transactional batch for a partition not added (verified here, the coordinator),
    // and a marker forged by a client: refused.
    let early = txn_batch(pid, epoch, b"early");
    assert_eq!(produce_txn(&mut c, "app", "tx-out", early).await, 48);
    let forged = batch::build_marker(pid, epoch, true, 0, 1_000);
    assert_eq!(produce(&mut c, 9, "tx-out", 0, forged).await.0, 87);
    assert_eq!(
        add_partitions(&mut c, 3, "app", pid, epoch, "tx-out", vec![0, 1]).await,
        vec![0, 0]
    );
    let data = txn_batch(pid, epoch, b"in-txn");
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

async fn latest(c: &mut Client, topic: &str, isolation: i8) -> i64 {
    let mut req = list_offsets_request(topic, -1);
    req.isolation_level = isolation;
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &req).await;
    resp.topics[0].partitions[0].offset
}

/// (records' base offsets, last stable offset, aborted transactions) of a read_committed
/// (isolation 1) or read_uncommitted fetch of partition 0 from offset 0.
async fn fetch(c: &mut Client, topic: &str, isolation: i8) -> (Vec<i64>, i64, Vec<(i64, i64)>) {
    let id = topic_id(c, topic).await;
    let mut req = fetch_request(12, topic, id, 0, 0, 0);
    req.isolation_level = isolation;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = p.records.clone().unwrap_or_default();
    let bases = batch::iter(&records)
        .map(|b| b.unwrap().0.base_offset)
        .collect();
    // Kafka sends none for read_uncommitted; an empty list reads the same to clients.
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    (bases, p.last_stable_offset, aborted)
}

#[tokio::test]
async fn read_committed_stops_at_the_open_transaction_and_names_the_aborted() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "lso", 1).await, 0);
    let r = init(&mut c, "lso-app", 60_000).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let plain = batch::build(&[(None, Some(b"before"))], 1_000);
    assert_eq!(produce(&mut c, 9, "lso", 0, plain).await, (0, 0));
    assert_eq!(
        add_partitions(&mut c, 3, "lso-app", pid, epoch, "lso", vec![0]).await,
        vec![0]
    );
    let data = txn_batch(pid, epoch, b"open");
    assert_eq!(produce(&mut c, 9, "lso", 0, data).await, (0, 1));
    // The open transaction holds the last stable offset at its first record.
    assert_eq!(latest(&mut c, "lso", 0).await, 2);
    assert_eq!(latest(&mut c, "lso", 1).await, 1);
    assert_eq!(fetch(&mut c, "lso", 1).await, (vec![0], 1, vec![]));
    assert_eq!(fetch(&mut c, "lso", 0).await, (vec![0, 1], 1, vec![]));
    // Aborted: everything is stable; read_committed readers are told to drop its records.
    assert_eq!(end(&mut c, 3, "lso-app", pid, epoch, false).await, 0);
    assert_eq!(latest(&mut c, "lso", 1).await, 3);
    assert_eq!(
        fetch(&mut c, "lso", 1).await,
        (vec![0, 1, 2], 3, vec![(pid, 1)])
    );
}

/// OffsetFetch v7 of partition 0 of `topic` in group `txn-group`: (error code, offset).
async fn fetch_offset(c: &mut Client, topic: &str, require_stable: bool) -> (i16, i64) {
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name(topic);
    t.partition_indexes = vec![0];
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(StrBytes::from_static_str("txn-group"));
    req.topics = Some(vec![t]);
    req.require_stable = require_stable;
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// KIP-447: while a transaction's offsets wait for its marker, a read_committed consumer
/// (require_stable) is told UNSTABLE_OFFSET_COMMIT instead of the older committed offset,
/// from which it would process again what the transaction wrote.
#[tokio::test]
async fn offsets_a_transaction_has_pending_are_unstable_until_it_ends() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "tx-stable", 1).await, 0);
    let r = init(&mut c, "stable-app", 60_000).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let mut add = AddOffsetsToTxnRequest::default();
    add.transactional_id = tid("stable-app");
    add.producer_id = ProducerId(pid);
    add.producer_epoch = epoch;
    add.group_id = GroupId(StrBytes::from_static_str("txn-group"));
    for commit in [true, false] {
        let resp: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &add).await;
        assert_eq!(resp.error_code, 0);
        // Stages offset 7 of partition 0.
        assert_eq!(
            txn_offset_commit(&mut c, 3, "stable-app", pid, epoch, "tx-stable").await,
            0
        );
        let before = if commit { -1 } else { 7 };
        assert_eq!(fetch_offset(&mut c, "tx-stable", true).await, (88, -1));
        assert_eq!(fetch_offset(&mut c, "tx-stable", false).await, (0, before));
        assert_eq!(end(&mut c, 3, "stable-app", pid, epoch, commit).await, 0);
        assert_eq!(fetch_offset(&mut c, "tx-stable", true).await, (0, 7));
    }
}

async fn write_markers(c: &mut Client, pid: i64, epoch: i16, topics: &[(&str, i32)]) -> Vec<i16> {
    let mut marker = write_txn_markers_request::WritableTxnMarker::default();
    marker.producer_id = ProducerId(pid);
    marker.producer_epoch = epoch;
    marker.transaction_result = true;
    marker.coordinator_epoch = 1;
    marker.topics = topics
        .iter()
        .map(|(topic, partition)| {
            let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
            t.name = name(topic);
            t.partition_indexes = vec![*partition];
            t
        })
        .collect();
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![marker];
    let resp: WriteTxnMarkersResponse = c.call(ApiKey::WriteTxnMarkers, 1, &req).await;
    resp.markers[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

#[tokio::test]
async fn write_txn_markers_from_another_coordinator_end_the_transaction_here() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "wm", 1).await, 0);
    let r = init(&mut c, "wm-app", 60_000).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(
        add_partitions(&mut c, 3, "wm-app", pid, epoch, "wm", vec![0]).await,
        vec![0]
    );
    let data = txn_batch(pid, epoch, b"in-txn");
    assert_eq!(produce(&mut c, 9, "wm", 0, data).await, (0, 0));
    assert_eq!(
        latest(&mut c, "wm", 1).await,
        0,
        "held by the open transaction"
    );
    // The commit marker as another broker's coordinator sends it, with a group coordinator
    // shard (coordinated here: nothing staged to settle); an unknown topic, partition and
    // shard are answered UNKNOWN_TOPIC_OR_PARTITION.
    let markers = [
        ("wm", 0),
        ("__consumer_offsets", 3),
        ("nope", 0),
        ("wm", 7),
        ("__consumer_offsets", 9999),
    ];
    assert_eq!(
        write_markers(&mut c, pid, epoch, &markers).await,
        vec![0, 0, 3, 3, 3]
    );
    assert_eq!(
        latest(&mut c, "wm", 1).await,
        2,
        "committed: data and marker"
    );
    assert_eq!(fetch(&mut c, "wm", 1).await.0, vec![0, 1]);
}

#[tokio::test]
async fn write_txn_markers_need_cluster_action() {
    let broker = start(&[("authorizer.class.name", "acl".into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(write_markers(&mut c, 1, 0, &[("any", 0)]).await, vec![31]);
}

/// The code TxnOffsetCommit (version `v`) answers for offset 7 of partition 0 of `topic`.
async fn txn_offset_commit(
    c: &mut Client,
    v: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
) -> i16 {
    let producer = (id, pid, epoch);
    txn_offset_commit_at(c, v, producer, topic, (0, 7)).await
}

/// The code TxnOffsetCommit answers for (partition, offset) of `topic` in group `txn-group`,
/// from `producer` (transactional id, producer id, epoch).
async fn txn_offset_commit_at(
    c: &mut Client,
    v: i16,
    (id, pid, epoch): (&str, i64, i16),
    topic: &str,
    (partition, offset): (i32, i64),
) -> i16 {
    let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = tid(id);
    req.group_id = GroupId(StrBytes::from_static_str("txn-group"));
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.topics = vec![t];
    let resp: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, v, &req).await;
    resp.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn txn_offset_commit_checks_the_producer_id_and_epoch() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "tx-offsets", 1).await, 0);
    let r = init(&mut c, "offsets-app", 60_000).await;
    assert_eq!(r.error_code, 0);
    let (pid, old) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add_offsets(&mut c, "offsets-app", pid, old).await, 0);
    for v in 0..=4 {
        assert_eq!(
            txn_offset_commit(&mut c, v, "offsets-app", pid, old, "tx-offsets").await,
            0
        );
    }
    // Another producer id for the transactional id: INVALID_PRODUCER_ID_MAPPING.
    for v in 0..=4 {
        let code = txn_offset_commit(&mut c, v, "offsets-app", pid + 1, old, "tx-offsets").await;
        assert_eq!(code, 49, "v{v}");
    }
    // A second InitProducerId fences the first producer: its epoch is refused,
    // INVALID_PRODUCER_EPOCH before v4, PRODUCER_FENCED from v4.
    let r = init(&mut c, "offsets-app", 60_000).await;
    assert_eq!((r.error_code, r.producer_id.0), (0, pid));
    assert!(r.producer_epoch > old);
    for v in 0..=3 {
        let code = txn_offset_commit(&mut c, v, "offsets-app", pid, old, "tx-offsets").await;
        assert_eq!(code, 47, "v{v}");
    }
    assert_eq!(
        txn_offset_commit(&mut c, 4, "offsets-app", pid, old, "tx-offsets").await,
        90
    );
    // A transactional id nobody initialised: INVALID_PRODUCER_ID_MAPPING.
    assert_eq!(
        txn_offset_commit(&mut c, 3, "nobody", pid, old, "tx-offsets").await,
        49
    );
}

async fn add_offsets(c: &mut Client, id: &str, pid: i64, epoch: i16) -> i16 {
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = tid(id);
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.group_id = GroupId(StrBytes::from_static_str("txn-group"));
    let resp: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &req).await;
    resp.error_code
}

/// The committed offset of `partition` of `topic` in group `txn-group` (-1: none).
async fn committed_offset(c: &mut Client, topic: &str, partition: i32) -> i64 {
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name(topic);
    t.partition_indexes = vec![partition];
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("txn-group"));
    r.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 5, &r).await;
    assert_eq!(resp.error_code, 0);
    resp.topics[0].partitions[0].committed_offset
}

#[tokio::test]
async fn a_commit_never_makes_offsets_staged_by_an_older_epoch_visible() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "tx-zombie", 2).await, 0);
    let r = init(&mut c, "zombie-app", 60_000).await;
    let (pid, old) = (r.producer_id.0, r.producer_epoch);
    // The first producer stages partition 0's offset without adding the group to a
    // transaction (so no marker of its epoch reaches the group), and is then replaced.
    let first = ("zombie-app", pid, old);
    assert_eq!(
        txn_offset_commit_at(&mut c, 3, first, "tx-zombie", (0, 70)).await,
        0
    );
    let r = init(&mut c, "zombie-app", 60_000).await;
    let new = r.producer_epoch;
    assert_eq!((r.error_code, r.producer_id.0), (0, pid));
    // The new producer commits partition 1's offset in a transaction.
    assert_eq!(add_offsets(&mut c, "zombie-app", pid, new).await, 0);
    let second = ("zombie-app", pid, new);
    assert_eq!(
        txn_offset_commit_at(&mut c, 3, second, "tx-zombie", (1, 90)).await,
        0
    );
    assert_eq!(end(&mut c, 3, "zombie-app", pid, new, true).await, 0);
    assert_eq!(committed_offset(&mut c, "tx-zombie", 1).await, 90);
    assert_eq!(committed_offset(&mut c, "tx-zombie", 0).await, -1);
}
