//! Malformed frames over raw sockets: after each, the broker must still answer a fresh
//! connection and a connection that was open all along. The figures of memory the process
//! reserves for such input are checked against the real process (tests/e2e/test_bad_input.py).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kafka_protocol::messages::*;
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use std::time::Duration;

const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A connection that sent `input` is closed without an answer.
async fn assert_closed_without_answer(addr: std::net::SocketAddr, input: &[u8]) {
    let mut c = Client::connect(addr).await;
    c.send_raw(input).await;
    let answer = c.read_until_closed(CLOSE_WAIT).await;
    assert_eq!(
        answer,
        Some(vec![]),
        "input {:?}",
        &input[..input.len().min(16)]
    );
}

fn random_bytes(rng: &mut TestRng, min: u32, max: u32) -> Vec<u8> {
    let mut data = vec![0u8; (min + rng.next_u32() % (max - min)) as usize];
    rng.fill_bytes(&mut data);
    data
}

#[tokio::test]
async fn random_bytes_close_only_their_connection() {
    let broker = start(&[]).await;
    let mut bystander = Client::connect(broker.kafka_addr).await;
    let _: ApiVersionsResponse = bystander
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    for seed in 0..4u8 {
        let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
        // A negative length prefix followed by noise: refused.
        let mut input = random_bytes(&mut rng, 3, 65536);
        input.insert(0, 0x80 | (rng.next_u32() % 128) as u8);
        assert_closed_without_answer(broker.kafka_addr, &input).await;
        // Well-framed garbage, then noise: whatever the broker answers, it keeps serving.
        for _ in 0..5 {
            let mut c = Client::connect(broker.kafka_addr).await;
            let body = random_bytes(&mut rng, 0, 2048);
            c.send_raw(&(body.len() as i32).to_be_bytes()).await;
            c.send_raw(&body).await;
            c.send_raw(&random_bytes(&mut rng, 1, 4096)).await;
            c.read_until_closed(Duration::from_millis(500)).await;
        }
    }
    let resp: ApiVersionsResponse = bystander
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0);
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn huge_length_prefixes_are_refused() {
    let broker = start(&[]).await;
    for length in [0x7FFF_FFFFi32, 0x4000_0000, 0x1000_0000] {
        let mut input = raw_request(ApiKey::Produce as i16, 7, 1, &[0; 1000]);
        input[..4].copy_from_slice(&length.to_be_bytes());
        assert_closed_without_answer(broker.kafka_addr, &input).await;
    }
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn frames_too_short_for_a_header_are_refused() {
    let broker = start(&[]).await;
    for length in [0i32, 1, 7, -1] {
        let mut input = length.to_be_bytes().to_vec();
        input.resize(4 + length.max(0) as usize, 0);
        assert_closed_without_answer(broker.kafka_addr, &input).await;
    }
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn truncated_frames_then_close_leave_the_broker_serving() {
    let broker = start(&[]).await;
    // Metadata v1 for all topics, padded to a declared 100 bytes; only `sent` of them come.
    let mut frame = raw_request(ApiKey::Metadata as i16, 1, 5, &(-1i32).to_be_bytes());
    frame.resize(104, 0);
    frame[..4].copy_from_slice(&100i32.to_be_bytes());
    for sent in [0, 2, 10, 99] {
        let mut c = Client::connect(broker.kafka_addr).await;
        c.send_raw(&frame[..4 + sent]).await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_healthy(&broker).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn unknown_api_key_and_unsupported_version_close_the_connection() {
    let broker = start(&[]).await;
    assert_closed_without_answer(broker.kafka_addr, &raw_request(999, 0, 1, &[])).await;
    let metadata_v99 = raw_request(ApiKey::Metadata as i16, 99, 1, &(-1i32).to_be_bytes());
    assert_closed_without_answer(broker.kafka_addr, &metadata_v99).await;
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

/// ApiVersions in a version from the future: UNSUPPORTED_VERSION with response header v0
/// and the v0 body, so that any client can read it, then a retry on the same connection.
#[tokio::test]
async fn api_versions_of_an_unsupported_version_answers_with_the_range() {
    let broker = start(&[]).await;
    let header_v1 = raw_request(ApiKey::ApiVersions as i16, 99, 4242, &[]);
    // What a newer client sends: header v2 (tagged fields) and a flexible body with the
    // compact strings "kafscale-e2e" and "9.9".
    let mut flexible = raw_request(ApiKey::ApiVersions as i16, 99, 4242, &[0]);
    flexible.extend_from_slice(b"\x0dkafscale-e2e\x049.9\x00");
    let len = flexible.len() as i32 - 4;
    flexible[..4].copy_from_slice(&len.to_be_bytes());
    for input in [header_v1, flexible] {
        let mut c = Client::connect(broker.kafka_addr).await;
        c.send_raw(&input).await;
        let resp: ApiVersionsResponse = c.receive(ApiKey::ApiVersions, 0, 4242).await;
        assert_eq!(resp.error_code, 35);
        let own = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .unwrap();
        assert_eq!(own.min_version, 0);
        assert!((3..99).contains(&own.max_version), "{own:?}");
        assert_eq!(missing_apis(&resp), vec![], "ApiVersions lacks APIs");
        let retry: ApiVersionsResponse = c
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
            .await;
        assert_eq!(retry.error_code, 0);
    }
    assert_healthy(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let mut all = MetadataRequest::default();
    all.topics = None;
    let versions = ApiVersionsRequest::default();
    let first = c.send(ApiKey::ApiVersions, 0, &versions).await;
    let second = c.send(ApiKey::Metadata, 1, &all).await;
    let third = c.send(ApiKey::ApiVersions, 0, &versions).await;
    let _: ApiVersionsResponse = c.receive(ApiKey::ApiVersions, 0, first).await;
    let md: MetadataResponse = c.receive(ApiKey::Metadata, 1, second).await;
    assert_eq!(md.brokers.len(), 1);
    let _: ApiVersionsResponse = c.receive(ApiKey::ApiVersions, 0, third).await;
    broker.shutdown().await;
}
