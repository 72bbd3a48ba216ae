//! `kafscale acl` against a broker that enforces ACLs: what `add` creates is what the
//! authorizer then decides by (a user sees a topic once allowed to describe it), `list`
//! filters by principal and resource, `remove` takes exactly what matched, and a user who
//! is not a super user is refused with CLUSTER_AUTHORIZATION_FAILED.
#![allow(clippy::unwrap_used)]

mod common;

use clap::Parser;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafscale::broker::Broker;
use kafscale::cli::acl::{self, AclCommand};
use kafscale::cli::client::{CliError, Client, ClientSecurity};
use kafscale::cli::topic::{self, CreateArgs, TopicCommand};
use kafscale::cli::user::{self, CreateArgs as UserArgs, UserCommand};
use kafscale::security::SaslMechanism;

/// The PLAINTEXT listener is the administrators' (its ANONYMOUS principal is a super
/// user); users log in with SCRAM on SASL_PLAINTEXT.
async fn secured_broker() -> Broker {
    common::start(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into(),
        ),
        ("authorizer.class.name", "acl".into()),
        ("super.users", "User:ANONYMOUS".into()),
        ("connection.failed.authentication.delay.ms", 0.into()),
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

async fn admin(b: &Broker) -> Client {
    Client::connect(&addr(b, "PLAINTEXT"), Duration::from_secs(10))
        .await
        .unwrap()
}

async fn login(b: &Broker, name: &str) -> Client {
    let props = BTreeMap::from(
        [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", name),
            ("sasl.password", &format!("{name}-pw")),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let security = Arc::new(ClientSecurity::from_properties(&props).unwrap());
    Client::connect_secure(
        &addr(b, "SASL_PLAINTEXT"),
        security,
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// `kafscale acl ARGS...` parsed as the binary parses it.
fn acl_command(args: &[&str]) -> AclCommand {
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AclCommand,
    }
    Cli::try_parse_from(std::iter::once("acl").chain(args.iter().copied()))
        .unwrap()
        .cmd
}

async fn acl(c: &mut Client, args: &[&str]) -> Result<kafscale::cli::Output, CliError> {
    acl::run(c, acl_command(args)).await
}

async fn visible_topics(c: &mut Client) -> Vec<String> {
    let out = topic::run(c, TopicCommand::List).await.unwrap();
    out.json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn setup(b: &Broker) -> Client {
    let mut a = admin(b).await;
    for name in ["alice", "bob"] {
        let args = UserArgs {
            name: name.into(),
            password: Some(format!("{name}-pw")),
            password_file: None,
            mechanism: SaslMechanism::ScramSha512,
            iterations: 4096,
        };
        user::run(&mut a, UserCommand::Create(args)).await.unwrap();
    }
    for t in ["orders", "payments"] {
        let args = CreateArgs {
            name: t.into(),
            partitions: Some(1),
            replication_factor: None,
            config: vec![],
        };
        topic::run(&mut a, TopicCommand::Create(args))
            .await
            .unwrap();
    }
    a
}

#[tokio::test]
async fn added_acls_are_enforced_listed_and_removed() {
    let b = secured_broker().await;
    let mut a = setup(&b).await;
    let mut alice = login(&b, "alice").await;
    assert!(visible_topics(&mut alice).await.is_empty());

    let out = acl(
        &mut a,
        &[
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "READ",
            "--operation",
            "Describe",
            "--topic",
            "orders",
        ],
    )
    .await
    .unwrap();
    assert!(out.text.starts_with("added 2 ACLs\n"), "{}", out.text);
    assert_eq!(out.json["added"].as_array().unwrap().len(), 2);
    acl(
        &mut a,
        &[
            "add",
            "--principal",
            "User:bob",
            "--operation",
            "ALL",
            "--topic",
            "pay",
            "--prefixed",
        ],
    )
    .await
    .unwrap();

    // Every broker applies ACLs through a watch: give it a moment.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = visible_topics(&mut alice).await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, vec!["orders".to_owned()]);

    // By principal, by resource, and what applies to a name.
    let listed = acl(&mut a, &["list", "--principal", "User:alice"])
        .await
        .unwrap();
    let acls = listed.json["acls"].as_array().unwrap();
    assert_eq!(acls.len(), 2);
    assert_eq!(acls[0]["name"], "orders");
    assert!(listed.text.contains("PRINCIPAL"), "{}", listed.text);
    let all = acl(&mut a, &["list"]).await.unwrap();
    assert_eq!(all.json["acls"].as_array().unwrap().len(), 3);
    let literal = acl(&mut a, &["list", "--topic", "payments"]).await.unwrap();
    assert_eq!(literal.text, "no ACLs\n");
    let matching = acl(&mut a, &["list", "--topic", "payments", "--match"])
        .await
        .unwrap();
    let m = matching.json["acls"].as_array().unwrap();
    assert_eq!((m.len(), &m[0]["pattern_type"]), (1, &"PREFIXED".into()));

    // A user without ALTER on the cluster cannot add ACLs, not even for itself.
    let err = acl(
        &mut alice,
        &[
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "ALL",
            "--cluster",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{err}"
    );

    // Remove takes exactly what matched.
    let removed = acl(
        &mut a,
        &["remove", "--principal", "User:alice", "--topic", "orders"],
    )
    .await
    .unwrap();
    assert!(
        removed.text.starts_with("removed 2 ACLs\n"),
        "{}",
        removed.text
    );
    let left = acl(&mut a, &["list"]).await.unwrap();
    assert_eq!(left.json["acls"].as_array().unwrap().len(), 1);
    let removed = acl(&mut a, &["remove", "--all"]).await.unwrap();
    assert_eq!(removed.json["removed"].as_array().unwrap().len(), 1);
    assert_eq!(acl(&mut a, &["list"]).await.unwrap().text, "no ACLs\n");
}
