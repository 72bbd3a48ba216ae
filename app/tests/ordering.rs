//! Requests on one connection take effect in the order they were sent, though the broker
//! handles them concurrently: thousands of OffsetCommits and Produces pipelined on one raw
//! connection (no request waits for the answer to the one before) leave the last commit as
//! the committed offset and the records in send order (librdkafka's test 0030 found 48 or 49
//! committed instead of 50 before, with async commits sent back to back).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const COMMITS: i64 = 2000;

fn commit(topic: &str, offset: i64) -> OffsetCommitRequest {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("ordered"));
    r.generation_id_or_member_epoch = -1;
    r.member_id = StrBytes::from_static_str("");
    r.topics = vec![t];
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_commits_and_produces_take_effect_in_send_order() {
    // On the embedded store, whose writes take real time (on memory they finish at once and
    // hide reordering).
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&[
        ("ephemeral", false.into()),
        ("data.dir", dir.path().to_str().unwrap().into()),
    ])
    .await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(create_topic(&mut c, "ordered", 1).await, 0);
    let mut sent = Vec::new();
    for offset in 1..=COMMITS {
        sent.push((
            ApiKey::OffsetCommit,
            c.send(ApiKey::OffsetCommit, 8, &commit("ordered", offset))
                .await,
        ));
        if offset % 10 == 0 {
            // A one-record batch whose value is its place in the sequence.
            let value = (offset / 10).to_string();
            let records: &[kafscale_core::batch::SimpleRecord] = &[(None, Some(value.as_bytes()))];
            let req = produce_request(
                "ordered",
                0,
                -1,
                kafscale_core::batch::build(records, 1_000),
            );
            sent.push((ApiKey::Produce, c.send(ApiKey::Produce, 8, &req).await));
        }
    }
    for (key, correlation) in sent {
        match key {
            ApiKey::OffsetCommit => {
                let r: OffsetCommitResponse = c.receive(key, 8, correlation).await;
                assert_eq!(r.topics[0].partitions[0].error_code, 0);
            }
            _ => {
                let r: ProduceResponse = c.receive(key, 8, correlation).await;
                assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            }
        }
    }
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name("ordered");
    t.partition_indexes = vec![0];
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("ordered"));
    r.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 5, &r).await;
    assert_eq!(resp.topics[0].partitions[0].committed_offset, COMMITS);

    // The records: offset i holds the (i+1)-th batch sent.
    let id = topic_id(&mut c, "ordered").await;
    let mut values = Vec::new();
    let mut next = 0;
    while next < COMMITS / 10 {
        let fetched: FetchResponse = c
            .call(
                ApiKey::Fetch,
                13,
                &fetch_request(13, "ordered", id, 0, next, 100),
            )
            .await;
        let records = fetched.responses[0].partitions[0].records.clone().unwrap();
        for b in kafscale_core::batch::iter(&records) {
            let (_, b) = b.unwrap();
            let (header, unpacked) = kafscale_core::unpack::read_batch(&b).unwrap();
            assert_eq!(header.base_offset, next);
            for r in unpacked {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                next += 1;
            }
        }
    }
    let expected: Vec<String> = (1..=COMMITS / 10).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
    broker.shutdown().await;
}

/// A produce sent right behind the CreateTopics of its topic, without waiting for the answer,
/// finds the topic: produces are staged only after the requests in the connection's sequence
/// sent before them have finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_produce_pipelined_behind_create_topics_finds_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&[
        ("ephemeral", false.into()),
        ("data.dir", dir.path().to_str().unwrap().into()),
        ("auto.create.topics.enable", false.into()),
    ])
    .await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for round in 0..20 {
        let topic = format!("created-{round}");
        let mut t = create_topics_request::CreatableTopic::default();
        t.name = name(&topic);
        t.num_partitions = 1;
        t.replication_factor = -1;
        let mut create = CreateTopicsRequest::default();
        create.topics = vec![t];
        create.timeout_ms = 5000;
        let created = c.send(ApiKey::CreateTopics, 5, &create).await;
        let records: &[kafscale_core::batch::SimpleRecord] = &[(None, Some(b"first"))];
        let req = produce_request(&topic, 0, -1, kafscale_core::batch::build(records, 1_000));
        let produced = c.send(ApiKey::Produce, 8, &req).await;
        let r: CreateTopicsResponse = c.receive(ApiKey::CreateTopics, 5, created).await;
        assert_eq!(r.topics[0].error_code, 0, "round {round}");
        let r: ProduceResponse = c.receive(ApiKey::Produce, 8, produced).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, 0), "round {round}");
    }
    broker.shutdown().await;
}
