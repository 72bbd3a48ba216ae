//! The CLI's client against a real broker with TLS and SASL listeners: users made with
//! `kafscale user` over PLAINTEXT log in over SASL_SSL and SASL_PLAINTEXT; client
//! certificates, the trust store and the host name check decide TLS; wrong passwords and
//! strangers are refused with errors that say so. Certificates are made here with openssl.
#![allow(clippy::unwrap_used)]

mod common;

use common::pki::{make_cert, CA_EXT};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafscale::broker::Broker;
use kafscale::cli::client::{CliError, Client, ClientSecurity};
use kafscale::cli::properties::parse_properties;
use kafscale::cli::topic::{self, CreateArgs, TopicCommand};
use kafscale::cli::user::{self, CreateArgs as UserArgs, UserCommand};
use kafscale::security::SaslMechanism;

/// A CA, a server certificate for 127.0.0.1, one that names another host, a client
/// certificate, and a stranger CA.
fn pki(dir: &Path) {
    make_cert(dir, "ca", None, CA_EXT);
    make_cert(
        dir,
        "server",
        Some("ca"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    make_cert(
        dir,
        "elsewhere",
        Some("ca"),
        "subjectAltName=DNS:kafka.elsewhere.example\nextendedKeyUsage=serverAuth\n",
    );
    make_cert(dir, "alice", Some("ca"), "extendedKeyUsage=clientAuth\n");
    make_cert(dir, "stranger", None, CA_EXT);
}

/// PLAINTEXT, SASL_SSL (both SCRAMs), SASL_PLAINTEXT (SCRAM-SHA-256 only) and SSL with
/// client certificates required and a certificate that names another host.
async fn secure_broker(dir: &Path) -> Broker {
    let p = |f: &str| dir.join(f).display().to_string();
    common::start(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into(),
        ),
        ("ssl.keystore.location", p("server.pem").into()),
        ("ssl.truststore.location", p("ca.crt").into()),
        ("listener.name.ssl.ssl.client.auth", "required".into()),
        ("listener.name.ssl.ssl.keystore.location", p("elsewhere.pem").into()),
        (
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            "SCRAM-SHA-256".into(),
        ),
    ])
    .await
}

fn addr(b: &Broker, listener: &str) -> String {
    let (_, a) = b
        .listener_addrs
        .iter()
        .find(|(n, _)| n == listener)
        .unwrap();
    a.to_string()
}

fn security(dir: &Path, text: &str) -> Result<Arc<ClientSecurity>, String> {
    let text = text.replace("DIR", &dir.display().to_string());
    let props: BTreeMap<String, String> = parse_properties(&text).unwrap();
    ClientSecurity::from_properties(&props)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

async fn connect(b: &Broker, listener: &str, sec: Arc<ClientSecurity>) -> Result<Client, CliError> {
    Client::connect_secure(&addr(b, listener), sec, Duration::from_secs(10)).await
}

async fn create_user(
    c: &mut Client,
    name: &str,
    password: &str,
    mechanism: SaslMechanism,
    iterations: u32,
) {
    let args = UserArgs {
        name: name.into(),
        password: Some(password.into()),
        password_file: None,
        mechanism,
        iterations,
    };
    user::run(c, UserCommand::Create(args)).await.unwrap();
}

/// Creates a topic, then describes it: Describe reaches the leader through Metadata's
/// address on the same listener, so broker connections are secured like the first.
async fn topic_round_trip(c: &mut Client, name: &str) {
    let args = CreateArgs {
        name: name.into(),
        partitions: Some(2),
        replication_factor: None,
        config: vec![],
    };
    topic::run(c, TopicCommand::Create(args)).await.unwrap();
    let described = topic::run(c, TopicCommand::Describe { name: name.into() })
        .await
        .unwrap();
    assert_eq!(described.json["partitions"].as_array().unwrap().len(), 2);
    let listed = topic::run(c, TopicCommand::List).await.unwrap();
    assert!(listed.text.contains(name), "{}", listed.text);
}

const SASL_SSL_512: &str = "security.protocol=SASL_SSL\nssl.truststore.location=DIR/ca.crt\n\
    sasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
    required username=\"alice\" password=\"PASSWORD\";\n";

#[tokio::test]
async fn users_made_over_plaintext_log_in_over_sasl() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let b = secure_broker(dir.path()).await;
    let mut admin = connect(&b, "PLAINTEXT", Arc::default()).await.unwrap();
    create_user(
        &mut admin,
        "alice",
        "alice-secret",
        SaslMechanism::ScramSha512,
        8192,
    )
    .await;
    create_user(
        &mut admin,
        "alice",
        "alice-secret",
        SaslMechanism::ScramSha256,
        4096,
    )
    .await;
    create_user(
        &mut admin,
        "bob",
        "bob-secret",
        SaslMechanism::ScramSha256,
        4096,
    )
    .await;

    let listed = user::run(&mut admin, UserCommand::List).await.unwrap();
    assert_eq!(
        listed.json,
        serde_json::json!({"users": [
            {"user": "alice", "credentials": [
                {"mechanism": "SCRAM-SHA-256", "iterations": 4096},
                {"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
            {"user": "bob", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]},
        ]})
    );

    let sec = security(
        dir.path(),
        &SASL_SSL_512.replace("PASSWORD", "alice-secret"),
    )
    .unwrap();
    let mut alice = connect(&b, "SASL_SSL", sec).await.unwrap();
    topic_round_trip(&mut alice, "over-sasl-ssl").await;
    // Users can be managed over an authenticated connection too.
    let described = user::run(&mut alice, UserCommand::Describe { name: "bob".into() })
        .await
        .unwrap();
    assert_eq!(described.json["user"], "bob");

    let sec = security(
        dir.path(),
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=bob\nsasl.password=bob-secret\n",
    )
    .unwrap();
    let mut bob = connect(&b, "SASL_PLAINTEXT", sec).await.unwrap();
    topic_round_trip(&mut bob, "over-sasl-plaintext").await;

    // PLAIN checks the same SCRAM credential.
    let sec = security(
        dir.path(),
        "security.protocol=SASL_SSL\nssl.ca.location=DIR/ca.crt\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"alice-secret\";\n",
    )
    .unwrap();
    connect(&b, "SASL_SSL", sec).await.unwrap();

    // A deleted credential no longer logs in.
    user::run(
        &mut admin,
        UserCommand::Delete {
            name: "alice".into(),
            mechanism: Some(SaslMechanism::ScramSha512),
        },
    )
    .await
    .unwrap();
    let sec = security(
        dir.path(),
        &SASL_SSL_512.replace("PASSWORD", "alice-secret"),
    )
    .unwrap();
    assert!(matches!(
        connect(&b, "SASL_SSL", sec).await,
        Err(CliError::Authentication { .. })
    ));
    user::run(
        &mut admin,
        UserCommand::Delete {
            name: "bob".into(),
            mechanism: None,
        },
    )
    .await
    .unwrap();
    let err = user::run(&mut admin, UserCommand::Describe { name: "bob".into() })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RESOURCE_NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_missing_mechanisms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let b = secure_broker(dir.path()).await;
    let mut admin = connect(&b, "PLAINTEXT", Arc::default()).await.unwrap();
    create_user(
        &mut admin,
        "alice",
        "alice-secret",
        SaslMechanism::ScramSha512,
        4096,
    )
    .await;

    let sec = security(dir.path(), &SASL_SSL_512.replace("PASSWORD", "wrong")).unwrap();
    let err = connect(&b, "SASL_SSL", sec).await.err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, CliError::Authentication { .. }), "{text}");
    assert!(
        text.starts_with("authentication of alice (SCRAM-SHA-512) at 127.0.0.1:")
            && text.contains("SASL_AUTHENTICATION_FAILED"),
        "{text}"
    );

    let sec = security(dir.path(), &SASL_SSL_512.replace("alice", "nobody")).unwrap();
    let err = connect(&b, "SASL_SSL", sec).await.err().unwrap();
    assert!(
        err.to_string().contains("SASL_AUTHENTICATION_FAILED"),
        "{err}"
    );

    // SASL_PLAINTEXT offers SCRAM-SHA-256 only.
    let sec = security(
        dir.path(),
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=alice-secret\n",
    )
    .unwrap();
    let err = connect(&b, "SASL_PLAINTEXT", sec).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("the listener offers SCRAM-SHA-256"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_checks_the_chain_the_host_name_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let b = secure_broker(dir.path()).await;
    let ssl = |extra: &str| {
        security(
            dir.path(),
            &format!("security.protocol=SSL\nssl.truststore.location=DIR/ca.crt\n{extra}"),
        )
        .unwrap()
    };
    let no_host_check = "ssl.endpoint.identification.algorithm=\n";

    // The SSL listener's certificate names another host: refused unless the check is off.
    let err = connect(&b, "SSL", ssl("ssl.keystore.location=DIR/alice.pem\n"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let mut c = connect(
        &b,
        "SSL",
        ssl(&format!(
            "{no_host_check}ssl.keystore.location=DIR/alice.pem\n"
        )),
    )
    .await
    .unwrap();
    topic_round_trip(&mut c, "over-ssl").await;
    connect(
        &b,
        "SSL",
        ssl(&format!(
            "{no_host_check}ssl.certificate.location=DIR/alice.crt\nssl.key.location=DIR/alice.key\n"
        )),
    )
    .await
    .unwrap();

    // Without a client certificate the broker, which requires one, drops the connection.
    assert!(connect(&b, "SSL", ssl(no_host_check)).await.is_err());

    // A broker whose chain the trust store does not hold is refused, name check or not.
    let stranger = security(
        dir.path(),
        "security.protocol=SASL_SSL\nssl.ca.location=DIR/stranger.crt\nssl.endpoint.identification.algorithm=\n\
         sasl.mechanism=PLAIN\nsasl.username=a\nsasl.password=b\n",
    )
    .unwrap();
    let err = connect(&b, "SASL_SSL", stranger).await.err().unwrap();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn missing_files_and_unknown_keys_are_reported_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let err = security(
        dir.path(),
        "security.protocol=SSL\nssl.truststore.location=DIR/absent.crt\n",
    )
    .unwrap_err();
    assert!(
        err.contains("cannot read") && err.contains("absent.crt"),
        "{err}"
    );
    let file = dir.path().join("client.properties");
    std::fs::write(&file, "security.protocol=PLAINTEXT\nsasl.mechansim=PLAIN\n").unwrap();
    let err = ClientSecurity::load(&file).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown client property sasl.mechansim"),
        "{err}"
    );
}
