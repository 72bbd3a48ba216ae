//! An in-process broker on ephemeral ports and a raw Kafka protocol client for tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod pki;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kafscale::broker::Broker;

pub mod admin;

/// Starts a broker with memory storage (`--ephemeral`) plus the given config keys.
/// `listeners` among them replaces the default `listen`.
pub async fn start(extra: &[(&str, serde_json::Value)]) -> Broker {
    let mut flags: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    flags.insert("ephemeral".into(), true.into());
    if !extra.iter().any(|(k, _)| *k == "listeners") {
        flags.insert("listen".into(), "127.0.0.1:0".into());
    }
    flags.insert("http.listen".into(), "127.0.0.1:0".into());
    for (k, v) in extra {
        flags.insert((*k).into(), v.clone());
    }
    // A prefix nothing sets, so the test does not pick up the caller's environment.
    let env = figment::providers::Env::prefixed("KAFSCALE_PROTOCOL_TEST_UNUSED_");
    let config = kafscale::config::load(None, env, flags).unwrap();
    kafscale::broker::start(config).await.unwrap()
}

pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation: 0,
        }
    }

    /// Sends a request and returns the decoded response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let corr = self.send(key, version, req).await;
        self.receive(key, version, corr).await
    }

    /// Reads the next response, checks that it answers `correlation`, and decodes it.
    pub async fn receive<Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation: i32,
    ) -> Resp {
        let mut frame = self.read_frame().await.expect("connection closed");
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
        assert_eq!(header.correlation_id, correlation);
        Resp::decode(&mut frame, version).unwrap()
    }

    pub async fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> i32 {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(StrBytes::from_static_str("protocol-test"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await.unwrap();
        self.correlation
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The broker may already have closed; tests look at what it does next.
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next response frame, or None if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        let read =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut len)).await;
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response within 10 s"),
        }
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub async fn is_closed(&mut self) -> bool {
        self.read_frame().await.is_none()
    }

    /// Everything the broker sends until it closes the connection, or None if it keeps
    /// the connection open for `wait`.
    pub async fn read_until_closed(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        let read_all = async {
            let mut chunk = [0u8; 65536];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => data.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(wait, read_all).await.ok()?;
        Some(data)
    }
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A v2 batch of `n` records `key-i` / `value-i` with timestamps `ts0 + i`.
pub fn batch(n: usize, ts0: i64, compression: Compression) -> Bytes {
    let records = (0..n).map(|i| {
        let value = (i % 7 != 3).then(|| Bytes::from(format!("value-{i}")));
        record(i, ts0 + i as i64, Bytes::from(format!("key-{i}")), value)
    });
    encode_batch(records.collect(), compression)
}

/// A v2 batch of one record per timestamp, in that order (a producer may send them out of
/// order: the header's first timestamp is then not the smallest).
pub fn batch_at(timestamps: &[i64], compression: Compression) -> Bytes {
    let records = timestamps.iter().enumerate().map(|(i, ts)| {
        record(
            i,
            *ts,
            Bytes::from(format!("key-{i}")),
            Some(Bytes::from(format!("value-{i}"))),
        )
    });
    encode_batch(records.collect(), compression)
}

/// An uncompressed v2 batch of `n` records `k<i>` with `value_size`-byte values and one
/// header each, for tests that need a batch of a known size.
pub fn sized_batch(n: usize, value_size: usize) -> Bytes {
    let records = (0..n).map(|i| {
        let mut r = record(
            i,
            1_700_000_000_000,
            Bytes::from(format!("k{i}")),
            Some(Bytes::from(vec![b'A' + (i % 26) as u8; value_size])),
        );
        r.headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from_static(b"v")),
        );
        r
    });
    encode_batch(records.collect(), Compression::None)
}

fn record(i: usize, timestamp: i64, key: Bytes, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder keeps records in one batch while offset - sequence is constant;
        // this yields base sequence -1, as non-idempotent producers send.
        sequence: i as i32 - 1,
        timestamp,
        key: Some(key),
        value,
        headers: Default::default(),
    }
}

fn encode_batch(records: Vec<Record>, compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub async fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> i16 {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = partitions;
    t.replication_factor = -1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &req).await;
    resp.topics[0].error_code
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    let mut p = produce_request::PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records);
    let mut t = produce_request::TopicProduceData::default();
    t.name = name(topic);
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 10_000;
    req.topic_data = vec![t];
    req
}

/// (error code, base offset) of the single partition of a produce response.
pub async fn produce(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let req = produce_request(topic, partition, -1, records);
    let resp: ProduceResponse = client.call(ApiKey::Produce, version, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(
    version: i16,
    topic: &str,
    topic_id: uuid::Uuid,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut p = fetch_request::FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    p.current_leader_epoch = -1;
    p.log_start_offset = -1;
    let mut t = fetch_request::FetchTopic::default();
    if version >= 13 {
        t.topic_id = topic_id;
    } else {
        t.topic = name(topic);
    }
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.topics = vec![t];
    if version >= 7 {
        req.session_epoch = -1;
    }
    req
}

/// Topic id as reported by Metadata v12.
pub async fn topic_id(client: &mut Client, topic: &str) -> uuid::Uuid {
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(name(topic));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req).await;
    resp.topics[0].topic_id
}

pub fn list_offsets_request(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.timestamp = timestamp;
    p.current_leader_epoch = -1;
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    req
}

/// The offset ListOffsets v7 finds for `timestamp` in partition 0 (-1: the end).
pub async fn list_offset(c: &mut Client, topic: &str, timestamp: i64) -> i64 {
    let req = list_offsets_request(topic, timestamp);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    resp.topics[0].partitions[0].offset
}

/// The response to `GET path` from the broker's HTTP listener, status line first.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server keeps HTTP/1.1 connections open unless asked not to; the body ends at EOF.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A request frame built by hand (header v1, client id "raw"), for input no encoder makes.
pub fn raw_request(key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32(13 + body.len() as i32);
    frame.put_i16(key);
    frame.put_i16(version);
    frame.put_i32(correlation);
    frame.put_i16(3);
    frame.extend_from_slice(b"raw");
    frame.extend_from_slice(body);
    frame.to_vec()
}

/// What a client needs to find, and every API a bad input must leave working.
pub const REQUIRED_APIS: [ApiKey; 7] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
];

/// The APIs of `REQUIRED_APIS` an ApiVersions response does not list.
pub fn missing_apis(resp: &ApiVersionsResponse) -> Vec<ApiKey> {
    REQUIRED_APIS
        .into_iter()
        .filter(|key| !resp.api_keys.iter().any(|k| k.api_key == *key as i16))
        .collect()
}

/// A fresh connection gets good ApiVersions and Metadata answers, and /healthz says 200.
pub async fn assert_healthy(broker: &Broker) {
    let mut c = Client::connect(broker.kafka_addr).await;
    let versions: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
    assert_eq!(missing_apis(&versions), vec![], "ApiVersions lacks APIs");
    let mut all = MetadataRequest::default();
    all.topics = None;
    let md: MetadataResponse = c.call(ApiKey::Metadata, 1, &all).await;
    let brokers: Vec<(String, i32)> = md
        .brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port))
        .collect();
    let port = i32::from(broker.kafka_addr.port());
    assert_eq!(brokers, vec![("127.0.0.1".to_owned(), port)]);
    let health = http_get(broker.http_addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}
