//! The CLI's client against a scripted broker: it retries after a change of leader or a
//! coordinator still loading (looking the leader up again), and commands degrade when the
//! broker lacks an API.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use kafscale::cli::client::{CliError, Client, OffsetSpec};
use kafscale::cli::produce::{self, ProduceArgs};
use kafscale::cli::{topic, Connection};

/// What the scripted broker saw and how it answers.
#[derive(Default)]
struct Script {
    /// APIs it advertises; every request of another API closes the connection.
    apis: Vec<ApiKey>,
    /// Errors for the first calls of an API, then success.
    failures: BTreeMap<i16, Vec<i16>>,
    calls: BTreeMap<i16, usize>,
    /// Records per produce request that got through.
    produced: Vec<i32>,
    /// A port nothing listens on: the first Metadata answer names broker 1 there as the
    /// leader, as if it had just died.
    dead_leader: Option<u16>,
}

type Shared = Arc<Mutex<Script>>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

async fn start(apis: &[ApiKey], failures: &[(ApiKey, &[i16])]) -> (SocketAddr, Shared) {
    let script = Arc::new(Mutex::new(Script {
        apis: apis.to_vec(),
        failures: failures
            .iter()
            .map(|(k, codes)| (*k as i16, codes.to_vec()))
            .collect(),
        ..Default::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, addr, shared.clone()));
        }
    });
    (addr, script)
}

async fn serve(mut stream: TcpStream, addr: SocketAddr, script: Shared) {
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        stream.read_exact(&mut frame).await.unwrap();
        let mut frame = Bytes::from(frame);
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header =
            RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let Some(body) = answer(key, version, frame, addr, &script) else {
            return;
        };
        let mut out = BytesMut::new();
        out.put_i32(0);
        let mut rh = ResponseHeader::default();
        rh.correlation_id = header.correlation_id;
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        rh.encode(&mut out, hv).unwrap();
        out.extend_from_slice(&body);
        let n = (out.len() - 4) as i32;
        out[0..4].copy_from_slice(&n.to_be_bytes());
        stream.write_all(&out).await.unwrap();
    }
}

fn encode<T: Encodable>(v: &T, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    v.encode(&mut b, version).unwrap();
    b.freeze()
}

/// The encoded response body, or `None` to close the connection.
fn answer(
    key: ApiKey,
    version: i16,
    mut body: Bytes,
    addr: SocketAddr,
    script: &Shared,
) -> Option<Bytes> {
    let mut sc = script.lock().unwrap();
    if key != ApiKey::ApiVersions && !sc.apis.contains(&key) {
        return None;
    }
    let call = {
        let n = sc.calls.entry(key as i16).or_default();
        *n += 1;
        *n
    };
    let error = sc
        .failures
        .get(&(key as i16))
        .and_then(|f| f.get(call - 1).copied())
        .unwrap_or(0);
    Some(match key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsResponse::default();
            r.api_keys = std::iter::once(ApiKey::ApiVersions)
                .chain(sc.apis.iter().copied())
                .map(|k| {
                    let mut a = ApiVersion::default();
                    a.api_key = k as i16;
                    a.min_version = 0.max(k.valid_versions().min);
                    a.max_version = match k {
                        ApiKey::ApiVersions => 3,
                        ApiKey::Metadata => 12,
                        ApiKey::Produce => 9,
                        ApiKey::ListOffsets => 7,
                        ApiKey::FindCoordinator => 6,
                        ApiKey::DescribeGroups => 5,
                        _ => k.valid_versions().max,
                    };
                    a
                })
                .collect();
            encode(&r, version)
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut body, version).unwrap();
            let mut r = MetadataResponse::default();
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(0);
            b.host = s("127.0.0.1");
            b.port = i32::from(addr.port());
            r.brokers = vec![b];
            let dead = sc.dead_leader.filter(|_| call == 1);
            if let Some(port) = dead {
                let mut d = MetadataResponseBroker::default();
                d.node_id = BrokerId(1);
                d.host = s("127.0.0.1");
                d.port = i32::from(port);
                r.brokers.push(d);
            }
            r.controller_id = BrokerId(0);
            r.cluster_id = Some(s("scripted"));
            for t in req.topics.unwrap_or_default() {
                let mut mt = MetadataResponseTopic::default();
                mt.name = t.name;
                mt.topic_id = uuid::Uuid::from_u128(7);
                let mut p = MetadataResponsePartition::default();
                p.partition_index = 0;
                p.leader_id = BrokerId(if dead.is_some() { 1 } else { 0 });
                // A new epoch on every look-up, as after a change of leader.
                p.leader_epoch = call as i32;
                p.replica_nodes = vec![BrokerId(0)];
                p.isr_nodes = vec![BrokerId(0)];
                mt.partitions = vec![p];
                r.topics.push(mt);
            }
            encode(&r, version)
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, version).unwrap();
            let mut records = req.topic_data[0].partition_data[0].records.clone().unwrap();
            let count = kafka_protocol::records::RecordBatchDecoder::decode(&mut records)
                .unwrap()
                .records
                .len();
            let mut p = PartitionProduceResponse::default();
            p.index = 0;
            p.error_code = error;
            if error == 0 {
                p.base_offset = 42;
                sc.produced.push(count as i32);
            } else {
                p.base_offset = -1;
            }
            let mut t = TopicProduceResponse::default();
            t.name = req.topic_data[0].name.clone();
            t.partition_responses = vec![p];
            let mut r = ProduceResponse::default();
            r.responses = vec![t];
            encode(&r, version)
        }
        ApiKey::ListOffsets => {
            let req = ListOffsetsRequest::decode(&mut body, version).unwrap();
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = 0;
            p.error_code = error;
            p.offset = if req.topics[0].partitions[0].timestamp == -2 {
                3
            } else {
                9
            };
            let mut t = ListOffsetsTopicResponse::default();
            t.name = req.topics[0].name.clone();
            t.partitions = vec![p];
            let mut r = ListOffsetsResponse::default();
            r.topics = vec![t];
            encode(&r, version)
        }
        ApiKey::FindCoordinator => {
            let req = FindCoordinatorRequest::decode(&mut body, version).unwrap();
            let mut c = Coordinator::default();
            c.key = req.coordinator_keys[0].clone();
            c.error_code = error;
            c.node_id = BrokerId(0);
            c.host = s("127.0.0.1");
            c.port = i32::from(addr.port());
            let mut r = FindCoordinatorResponse::default();
            r.coordinators = vec![c];
            encode(&r, version)
        }
        ApiKey::DescribeGroups => {
            let req = DescribeGroupsRequest::decode(&mut body, version).unwrap();
            let mut g = DescribedGroup::default();
            g.group_id = req.groups[0].clone();
            g.error_code = error;
            g.group_state = s("Stable");
            g.protocol_type = s("consumer");
            let mut r = DescribeGroupsResponse::default();
            r.groups = vec![g];
            encode(&r, version)
        }
        _ => return None,
    })
}

fn conn(addr: SocketAddr) -> Connection {
    Connection {
        bootstrap: addr.to_string(),
        json: false,
        request_timeout_ms: 5000,
        command_config: None,
    }
}

async fn client(addr: SocketAddr) -> Client {
    Client::connect(&addr.to_string(), Duration::from_secs(5))
        .await
        .unwrap()
}

const BASIC: &[ApiKey] = &[ApiKey::Metadata, ApiKey::Produce, ApiKey::ListOffsets];

#[tokio::test]
async fn produce_is_sent_again_to_the_new_leader() {
    let (addr, script) = start(
        BASIC,
        &[(ApiKey::Produce, &[6, 5])], // NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE
    )
    .await;
    let mut c = client(addr).await;
    let args = ProduceArgs {
        topic: "t".into(),
        key_separator: None,
        partition: None,
        verbose: false,
        conn: conn(addr),
    };
    produce::produce_from(&mut c, &args, &b"a\nb\nc\n"[..])
        .await
        .unwrap();
    let sc = script.lock().unwrap();
    assert_eq!(sc.calls[&(ApiKey::Produce as i16)], 3);
    assert_eq!(
        sc.produced,
        vec![3],
        "one batch of three records, accepted once"
    );
    // The first look-up, then one after each refused attempt.
    assert!(sc.calls[&(ApiKey::Metadata as i16)] >= 3, "{:?}", sc.calls);
}

#[tokio::test]
async fn produce_gives_up_after_a_few_attempts_with_a_clear_error() {
    let (addr, _script) = start(BASIC, &[(ApiKey::Produce, &[6; 10])]).await;
    let mut c = client(addr).await;
    let args = ProduceArgs {
        topic: "t".into(),
        key_separator: None,
        partition: None,
        verbose: false,
        conn: conn(addr),
    };
    let err = produce::produce_from(&mut c, &args, &b"a\n"[..])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot produce to t/0: NOT_LEADER_OR_FOLLOWER"
    );
}

#[tokio::test]
async fn offsets_and_coordinators_are_retried() {
    let mut apis = BASIC.to_vec();
    apis.extend([ApiKey::FindCoordinator, ApiKey::DescribeGroups]);
    let (addr, script) = start(
        &apis,
        &[
            (ApiKey::ListOffsets, &[6]),
            (ApiKey::FindCoordinator, &[14, 15]), // loading, not available
        ],
    )
    .await;
    let mut c = client(addr).await;
    let offsets = c.list_offsets("t", &[0], OffsetSpec::Latest).await.unwrap();
    assert_eq!(offsets.get(&0), Some(&9));
    assert_eq!(c.coordinator("g").await.unwrap(), 0);
    let sc = script.lock().unwrap();
    assert_eq!(sc.calls[&(ApiKey::ListOffsets as i16)], 2);
    assert_eq!(sc.calls[&(ApiKey::FindCoordinator as i16)], 3);
}

fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_dead_leader_is_looked_up_again() {
    for what in ["offsets", "produce"] {
        let (addr, script) = start(BASIC, &[]).await;
        script.lock().unwrap().dead_leader = Some(dead_port());
        let mut c = client(addr).await;
        if what == "offsets" {
            let offsets = c
                .list_offsets("t", &[0], OffsetSpec::Earliest)
                .await
                .unwrap();
            assert_eq!(offsets.get(&0), Some(&3));
        } else {
            let args = ProduceArgs {
                topic: "t".into(),
                key_separator: None,
                partition: None,
                verbose: false,
                conn: conn(addr),
            };
            produce::produce_from(&mut c, &args, &b"x\n"[..])
                .await
                .unwrap();
            assert_eq!(script.lock().unwrap().produced, vec![1]);
        }
        assert!(
            script.lock().unwrap().calls[&(ApiKey::Metadata as i16)] >= 2,
            "{what}"
        );
    }
}

#[tokio::test]
async fn describe_without_describe_configs_says_so() {
    let (addr, _script) = start(BASIC, &[]).await;
    let mut c = client(addr).await;
    let out = topic::run(&mut c, topic::TopicCommand::Describe { name: "t".into() })
        .await
        .unwrap();
    assert!(
        out.text
            .contains("configs: not shown (the broker does not support DescribeConfigs)"),
        "{}",
        out.text
    );
    assert!(out.json["configs"].is_null());
    assert_eq!(out.json["partitions"][0]["earliest_offset"], 3);
    assert_eq!(out.json["partitions"][0]["latest_offset"], 9);
    assert_eq!(out.json["partitions"][0]["leader"], 0);
}

#[tokio::test]
async fn commands_needing_a_missing_api_name_it() {
    let (addr, _script) = start(BASIC, &[]).await;
    let mut c = client(addr).await;
    let alter = topic::AlterArgs {
        name: "t".into(),
        config: vec![("retention.ms".into(), "1".into())],
        delete_config: vec![],
    };
    let err = topic::run(&mut c, topic::TopicCommand::Alter(alter))
        .await
        .unwrap_err();
    assert!(matches!(err, CliError::Unsupported { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "the broker at {addr} does not support IncrementalAlterConfigs (needed by topic alter)"
        )
    );
}

#[tokio::test]
async fn an_unreachable_broker_is_one_line() {
    let addr = SocketAddr::from(([127, 0, 0, 1], dead_port()));
    let err = Client::connect(&addr.to_string(), Duration::from_secs(2))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!("cannot connect to {addr}: connection refused")
    );
}
