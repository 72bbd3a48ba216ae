//! Micro-benchmarks of request decoding: every frame a client sends goes through
//! `decode_frame` before any handler runs. Run with
//! `cargo bench -p kafscale --bench request_decode`; figures are kept in
//! docs/benchmarks.md, never asserted.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use kafscale::server::dispatch::decode_frame;
use kafscale::wire;
use kafscale_core::batch;

/// A request frame as the connection hands it to dispatch: header and body, no size prefix.
fn frame<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("rdkafka"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    buf.freeze()
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

/// Produce v9 (the first flexible version) with one 16 KiB batch of 1 KiB records.
fn produce_v9() -> Bytes {
    let value = vec![0x5au8; 1000];
    let records: Vec<batch::SimpleRecord<'_>> =
        (0..16).map(|_| (None, Some(value.as_slice()))).collect();
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(batch::build(&records, 1_700_000_000_000));
    let mut topic = TopicProduceData::default();
    topic.name = topic_name();
    topic.partition_data = vec![partition];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data = vec![topic];
    frame(ApiKey::Produce, 9, &req)
}

/// Fetch v12 as librdkafka sends it to one broker: one topic, 50 partitions.
fn fetch_v12() -> Bytes {
    let partitions = (0..50)
        .map(|p| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.current_leader_epoch = 3;
            fp.fetch_offset = 1_000_000;
            fp.last_fetched_epoch = -1;
            fp.log_start_offset = -1;
            fp.partition_max_bytes = 1_048_576;
            fp
        })
        .collect();
    let mut topic = FetchTopic::default();
    topic.topic = topic_name();
    topic.partitions = partitions;
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 500;
    req.min_bytes = 1;
    req.max_bytes = 52_428_800;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = vec![topic];
    frame(ApiKey::Fetch, 12, &req)
}

fn decode(c: &mut Criterion) {
    let produce = produce_v9();
    let fetch = fetch_v12();
    assert!(
        decode_frame(produce.clone()).is_ok(),
        "produce frame decodes"
    );
    assert!(decode_frame(fetch.clone()).is_ok(), "fetch frame decodes");
    let mut g = c.benchmark_group("decode_frame");
    g.throughput(Throughput::Bytes(produce.len() as u64));
    g.bench_function("produce_v9_16k", |b| {
        // Bytes::clone is a reference count bump: the decoder gets the frame as it would
        // from the connection, without a copy.
        b.iter(|| decode_frame(black_box(produce.clone())))
    });
    g.throughput(Throughput::Bytes(fetch.len() as u64));
    g.bench_function("fetch_v12_50_partitions", |b| {
        b.iter(|| decode_frame(black_box(fetch.clone())))
    });
    g.finish();
    // The bounds check alone (part of decode_frame above): what refusing hostile lengths
    // costs a valid request.
    let mut g = c.benchmark_group("wire_check");
    for (name, key, version, frame) in [
        ("produce_v9_16k", ApiKey::Produce, 9, &produce),
        ("fetch_v12_50_partitions", ApiKey::Fetch, 12, &fetch),
    ] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        let header = key.request_header_version(version);
        g.bench_function(name, |b| {
            b.iter(|| wire::check_request(black_box(frame), key as i16, version, header))
        });
    }
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
