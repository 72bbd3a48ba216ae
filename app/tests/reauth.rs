//! Re-authentication (KIP-368) over raw frames on a SASL_PLAINTEXT listener with PLAIN and
//! `connections.max.reauth.ms`: the session lifetime is announced, a client re-authenticates
//! on the same connection with requests in flight and keeps working; a session that has
//! ended closes the connection at the next request (or, for a client that cannot
//! re-authenticate, when it ends); a change of principal or mechanism is refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use common::Client;
use kafscale::broker::Broker;
use kafscale::cli::user::{self, CreateArgs, UserCommand};
use kafscale::security::SaslMechanism;

const LIFETIME_MS: i64 = 1_500;

async fn broker() -> Broker {
    let b = common::start(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into(),
        ),
        (
            "listener.name.sasl_plaintext.connections.max.reauth.ms",
            LIFETIME_MS.into(),
        ),
        ("connection.failed.authentication.delay.ms", 0.into()),
    ])
    .await;
    let plaintext = addr(&b, "PLAINTEXT");
    let mut admin = kafscale::cli::client::Client::connect(&plaintext.to_string(), secs(10))
        .await
        .unwrap();
    for name in ["alice", "bob"] {
        let args = CreateArgs {
            name: name.into(),
            password: Some(format!("{name}-secret")),
            password_file: None,
            mechanism: SaslMechanism::ScramSha512,
            iterations: 4096,
        };
        user::run(&mut admin, UserCommand::Create(args))
            .await
            .unwrap();
    }
    b
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn addr(b: &Broker, listener: &str) -> std::net::SocketAddr {
    b.listener_addrs
        .iter()
        .find(|(n, _)| n == listener)
        .unwrap()
        .1
}

async fn handshake(c: &mut Client, mechanism: &str) -> SaslHandshakeResponse {
    let mut req = SaslHandshakeRequest::default();
    req.mechanism = StrBytes::from_string(mechanism.into());
    c.call(ApiKey::SaslHandshake, 1, &req).await
}

/// SaslAuthenticate with a PLAIN token.
async fn plain(c: &mut Client, version: i16, user: &str) -> SaslAuthenticateResponse {
    let mut req = SaslAuthenticateRequest::default();
    req.auth_bytes = format!("\0{user}\0{user}-secret").into_bytes().into();
    c.call(ApiKey::SaslAuthenticate, version, &req).await
}

/// Handshake and PLAIN login; the answer of SaslAuthenticate.
async fn login(c: &mut Client, version: i16, user: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(c, "PLAIN").await.error_code, 0);
    plain(c, version, user).await
}

async fn metadata_ok(c: &mut Client) {
    let resp: MetadataResponse = c
        .call(ApiKey::Metadata, 9, &MetadataRequest::default())
        .await;
    assert_eq!(resp.brokers.len(), 1);
}

#[tokio::test]
async fn clients_re_authenticate_on_the_same_connection_with_requests_in_flight() {
    let b = broker().await;
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    let first = login(&mut c, 2, "alice").await;
    assert_eq!(first.error_code, 0);
    assert_eq!(first.session_lifetime_ms, LIFETIME_MS);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(LIFETIME_MS as u64 / 2)).await;
        // A request in flight, then the re-authentication right behind it: answers come
        // in request order.
        let metadata = c
            .send(ApiKey::Metadata, 9, &MetadataRequest::default())
            .await;
        let mut req = SaslHandshakeRequest::default();
        req.mechanism = StrBytes::from_static_str("PLAIN");
        let hs = c.send(ApiKey::SaslHandshake, 1, &req).await;
        let resp: MetadataResponse = c.receive(ApiKey::Metadata, 9, metadata).await;
        assert_eq!(resp.brokers.len(), 1);
        let resp: SaslHandshakeResponse = c.receive(ApiKey::SaslHandshake, 1, hs).await;
        assert_eq!(resp.error_code, 0);
        let again = plain(&mut c, 2, "alice").await;
        assert_eq!(again.error_code, 0);
        assert_eq!(again.session_lifetime_ms, LIFETIME_MS);
        metadata_ok(&mut c).await;
    }
    // 3 x 0.75 s: well past the first session's end, still served.
    let m = common::http_get(b.http_addr, "/metrics").await;
    assert!(
        m.contains(r#"kafscale_audit_events_total{event="reauthentication",outcome="success"} 3"#),
        "{m}"
    );
}

#[tokio::test]
async fn an_ended_session_closes_the_connection_at_the_next_request() {
    let b = broker().await;
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(login(&mut c, 1, "alice").await.error_code, 0);
    metadata_ok(&mut c).await;
    tokio::time::sleep(Duration::from_millis(LIFETIME_MS as u64 + 200)).await;
    // Still open (the client could re-authenticate now), but a request is not served.
    c.send(ApiKey::Metadata, 9, &MetadataRequest::default())
        .await;
    assert!(c.is_closed().await);
    // Re-authenticating after the end is still allowed, as in Kafka.
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(login(&mut c, 1, "alice").await.error_code, 0);
    tokio::time::sleep(Duration::from_millis(LIFETIME_MS as u64 + 200)).await;
    assert_eq!(login(&mut c, 1, "alice").await.error_code, 0);
    metadata_ok(&mut c).await;
}

#[tokio::test]
async fn a_client_that_cannot_re_authenticate_is_disconnected_when_its_session_ends() {
    let b = broker().await;
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    // SaslAuthenticate v0 carries no session lifetime.
    assert_eq!(login(&mut c, 0, "alice").await.error_code, 0);
    metadata_ok(&mut c).await;
    let started = std::time::Instant::now();
    assert_eq!(c.read_until_closed(secs(5)).await, Some(Vec::new()));
    assert!(started.elapsed() >= Duration::from_millis(LIFETIME_MS as u64 - 200));
}

#[tokio::test]
async fn a_change_of_principal_or_mechanism_is_refused_and_closes_the_connection() {
    let b = broker().await;
    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(login(&mut c, 2, "alice").await.error_code, 0);
    let resp = login(&mut c, 2, "bob").await;
    assert_eq!(
        resp.error_code,
        ResponseError::SaslAuthenticationFailed.code()
    );
    let message = resp.error_message.unwrap().to_string();
    assert!(message.contains("Cannot change principals"), "{message}");
    assert!(c.is_closed().await);

    let mut c = Client::connect(addr(&b, "SASL_PLAINTEXT")).await;
    assert_eq!(login(&mut c, 2, "alice").await.error_code, 0);
    let resp = handshake(&mut c, "SCRAM-SHA-512").await;
    assert_eq!(
        resp.error_code,
        ResponseError::UnsupportedSaslMechanism.code()
    );
    assert_eq!(resp.mechanisms, vec![StrBytes::from_static_str("PLAIN")]);
    assert!(c.is_closed().await);

    let m = common::http_get(b.http_addr, "/metrics").await;
    assert!(
        m.contains(r#"kafscale_audit_events_total{event="reauthentication",outcome="failure"} 2"#),
        "{m}"
    );
}
