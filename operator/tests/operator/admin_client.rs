//! The operator's own client security (`KafscaleCluster.spec.adminClient`): the properties
//! and files of a Secret, on the port chosen. Against the simulated Kafka cluster: what the
//! operator connects with and where, and a Secret missing or incomplete in the status.
//! Against a real in-process broker enforcing ACLs: topics and users reconciled over
//! SASL_SSL with SCRAM and over mutual TLS, and refused with a wrong password or without the
//! client certificate.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kafscale::broker::Broker;
use kafscale::cli::client::Client;
use kafscale::cli::topic::{self, TopicCommand};
use kafscale::cli::user::{self, NewCredential};
use kafscale::config::SecurityProtocol;
use kafscale::security::SaslMechanism;
use kafscale_operator::crd::{
    AdminClientSpec, KafscaleCluster, KafscaleTopic, KafscaleUser, ListenerSpec,
};
use kafscale_operator::{cluster, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::demo_cluster;
use crate::fake_api::FakeApi;
use crate::fake_kafka::FakeKafka;
use crate::real_users::AtBroker;
use crate::topics::{orders, reconcile};
use crate::{ready, NS};

#[path = "../../../app/tests/common/pki.rs"]
mod pki;

/// A CA, a server certificate for 127.0.0.1 and the operator's client certificate, in a
/// directory of its own.
fn certificates(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafscale-operator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    pki::make_cert(&dir, "ca", None, pki::CA_EXT);
    pki::make_cert(
        &dir,
        "server",
        Some("ca"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    pki::make_cert(
        &dir,
        "operator",
        Some("ca"),
        "extendedKeyUsage=clientAuth\n",
    );
    dir
}

/// The admin client Secret: `client.properties` and the files it names, from `dir`.
fn admin_secret(properties: &str, files: &[&str], dir: &Path) -> Secret {
    let mut data = BTreeMap::from([(
        "client.properties".to_owned(),
        ByteString(properties.as_bytes().to_vec()),
    )]);
    for f in files {
        data.insert(
            (*f).to_owned(),
            ByteString(std::fs::read(dir.join(f)).unwrap()),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some("demo-admin".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// The demo cluster with a SASL_SSL listener on 9094 and an admin client on `port`.
fn with_admin_client(port: Option<u16>) -> KafscaleCluster {
    let mut c = demo_cluster(3);
    c.spec.listeners.additional = vec![ListenerSpec {
        name: "SASL_SSL".into(),
        port: 9094,
        protocol: None,
    }];
    c.spec.admin_client = Some(AdminClientSpec {
        secret_name: "demo-admin".into(),
        properties_key: "client.properties".into(),
        port,
    });
    c
}

const SCRAM: &str = "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
    sasl.username=operator\nsasl.password=PASSWORD\nssl.ca.location=ca.crt\n";
const MTLS: &str = "security.protocol=SSL\nssl.ca.location=ca.crt\n\
    ssl.certificate.location=operator.crt\nssl.key.location=operator.key\n";

fn condition(t: &KafscaleTopic) -> (String, String, String) {
    let c = ready(&t.status.as_ref().unwrap().conditions);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn the_operator_connects_with_the_secrets_properties_on_the_admin_port() {
    let dir = certificates("simulated");
    let api = FakeApi::new();
    api.put(&with_admin_client(Some(9094)));
    let kafka = Arc::new(FakeKafka::at(&format!("demo-bootstrap.{NS}.svc:9094")));
    let ctx = Arc::new(Context::new(api.client(), kafka.clone()));

    // Without its Secret the topic says so, and nothing is sent.
    api.put(&orders(3, &[]));
    let (status, reason, message) = condition(&reconcile(&api, &ctx).await.unwrap());
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretError"),
        "{message}"
    );
    assert!(
        message.contains("demo-admin") && message.contains("not found"),
        "{message}"
    );
    assert!(kafka.topic("shop.orders").is_none());

    // A file the properties name must be in the Secret.
    api.put(&admin_secret(&SCRAM.replace("PASSWORD", "pw"), &[], &dir));
    let (_, reason, message) = condition(&reconcile(&api, &ctx).await.unwrap());
    assert_eq!(reason, "SecretError", "{message}");
    assert!(message.contains("ca.crt"), "{message}");

    api.put(&admin_secret(
        &SCRAM.replace("PASSWORD", "pw"),
        &["ca.crt"],
        &dir,
    ));
    let (status, _, message) = condition(&reconcile(&api, &ctx).await.unwrap());
    assert_eq!(status, "True", "{message}");
    assert_eq!(kafka.topic("shop.orders").unwrap().partitions, 3);
    let security = kafka.security.lock().unwrap().clone().unwrap();
    assert_eq!(security.protocol, SecurityProtocol::SaslSsl);
    assert!(security.tls.is_some());
    let login = security.sasl.as_ref().unwrap();
    assert_eq!(
        (
            login.mechanism,
            login.username.as_str(),
            login.password.as_str()
        ),
        (SaslMechanism::ScramSha512, "operator", "pw")
    );

    // The brokers listen on both ports, each advertised at the pod's name; the bootstrap
    // Service exposes both.
    cluster::reconcile(Arc::new(api.get(NS, "demo").unwrap()), ctx.clone())
        .await
        .unwrap();
    let sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    let env: BTreeMap<String, String> = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    assert_eq!(
        env["KAFSCALE_LISTENERS"],
        "PLAINTEXT://0.0.0.0:9092,SASL_SSL://0.0.0.0:9094"
    );
    assert_eq!(
        env["KAFSCALE_ADVERTISED_LISTENERS"],
        format!(
            "PLAINTEXT://$(POD_NAME).demo-brokers.{NS}.svc:9092,SASL_SSL://$(POD_NAME).demo-brokers.{NS}.svc:9094"
        )
    );
    assert_eq!(
        env["KAFSCALE_LISTENER_SECURITY_PROTOCOL_MAP"],
        "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
    );
    assert!(!env.contains_key("KAFSCALE_LISTEN"));
    let service: Service = api.get(NS, "demo-bootstrap").unwrap();
    let ports: Vec<(String, i32)> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("kafka".to_owned(), 9092), ("sasl-ssl".to_owned(), 9094)]
    );

    // A port no listener has is refused.
    api.put(&with_admin_client(Some(9999)));
    let (_, reason, message) = condition(&reconcile(&api, &ctx).await.unwrap());
    assert_eq!(reason, "InvalidSpec", "{message}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A broker enforcing ACLs with SSL (client certificates required) and SASL_SSL listeners,
/// where only the operator (by SCRAM or by certificate) and the PLAINTEXT test client are
/// super users.
async fn secure_broker(dir: &Path) -> Broker {
    let p = |f: &str| dir.join(f).display().to_string();
    crate::real_users::start(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0".into(),
        ),
        ("ssl.keystore.location", p("server.pem").into()),
        ("ssl.truststore.location", p("ca.crt").into()),
        ("listener.name.ssl.ssl.client.auth", "required".into()),
        (
            "super.users",
            "User:ANONYMOUS;User:operator;User:CN=operator".into(),
        ),
    ])
    .await
}

async fn plaintext(b: &Broker) -> Client {
    let (_, addr) = b
        .listener_addrs
        .iter()
        .find(|(n, _)| n == "PLAINTEXT")
        .unwrap();
    Client::connect(&addr.to_string(), Duration::from_secs(10))
        .await
        .unwrap()
}

async fn has_orders(admin: &mut Client) -> bool {
    let name = "shop.orders".into();
    topic::run(admin, TopicCommand::Describe { name })
        .await
        .is_ok()
}

#[tokio::test]
async fn topics_and_users_are_reconciled_over_sasl_ssl_and_mutual_tls() {
    let dir = certificates("real");
    let b = secure_broker(&dir).await;
    let mut admin = plaintext(&b).await;
    let operator = NewCredential {
        user: "operator",
        mechanism: SaslMechanism::ScramSha512,
        password: "operator-secret",
        iterations: 4096,
    };
    user::upsert(&mut admin, &operator).await.unwrap();
    let (api, ctx) = crate::users::setup(Arc::new(AtBroker::new(&b)));
    api.put(&with_admin_client(None));

    let scram = SCRAM.replace("PASSWORD", "operator-secret");
    let mtls_files = ["ca.crt", "operator.crt", "operator.key"];
    for (protocol, properties, files) in [
        ("SASL_SSL", scram.as_str(), &["ca.crt"][..]),
        ("SSL", MTLS, &mtls_files[..]),
    ] {
        api.put(&admin_secret(properties, files, &dir));
        api.put(&orders(2, &[]));
        let (status, _, message) = condition(&reconcile(&api, &ctx).await.unwrap());
        assert_eq!(status, "True", "{protocol}: {message}");
        assert!(has_orders(&mut admin).await, "{protocol}");
        // The user: its credential and ACLs, over the same connection.
        api.put(&crate::users::alice());
        let u = crate::users::reconcile(&api, &ctx).await.unwrap();
        let c = ready(&u.status.as_ref().unwrap().conditions);
        assert_eq!(c.status, "True", "{protocol}: {}", c.message);
        assert!(
            user::describe(&mut admin, Some("alice")).await.is_ok(),
            "{protocol}"
        );
        // Deleting both goes over it too.
        api.delete::<KafscaleTopic>(NS, "orders");
        assert!(reconcile(&api, &ctx).await.is_none());
        api.delete::<KafscaleUser>(NS, "alice");
        assert!(crate::users::reconcile(&api, &ctx).await.is_none());
        assert!(
            !has_orders(&mut admin).await,
            "{protocol}: the topic is left"
        );
        assert!(
            user::describe(&mut admin, Some("alice")).await.is_err(),
            "{protocol}: the user is left"
        );
    }

    // Without valid credentials the operator gets nowhere, and says so.
    let wrong = SCRAM.replace("PASSWORD", "wrong");
    let no_certificate = "security.protocol=SSL\nssl.ca.location=ca.crt\n";
    for properties in [wrong.as_str(), no_certificate] {
        api.put(&admin_secret(properties, &["ca.crt"], &dir));
        api.put(&orders(2, &[]));
        let (status, reason, message) = condition(&reconcile(&api, &ctx).await.unwrap());
        assert_eq!(status, "False", "{properties}: {reason} {message}");
        assert!(!has_orders(&mut admin).await, "{properties}: created");
    }
    let _ = std::fs::remove_dir_all(dir);
}
