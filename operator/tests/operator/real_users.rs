//! KafscaleUser with the real admin client against an in-process broker that enforces
//! ACLs: the credential from the Secret is stored (and logs in over SASL), the spec's ACLs
//! are the user's ACLs in the cluster (one added or removed behind the operator's back is
//! put right on the next reconcile), and deleting the resource removes the credential and
//! the ACLs.

use async_trait::async_trait;
use kafscale::broker::Broker;
use kafscale::cli::client::{CliError, Client, ClientSecurity};
use kafscale::cli::{acl, user};
use kafscale_core::acl::{
    AclBinding, AclEntry, AclFilter, Operation, PatternFilter, ResourcePattern, ResourceType,
};
use kafscale_operator::admin::{
    AdminError, ConfigChanges, KafkaAdmin, KafkaClientAdmin, NewTopic, ScramCredential, Target,
    TopicState,
};
use kafscale_operator::crd::{AclRule, KafscaleUser, ScramMechanism};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::users::{alice, reconcile, setup};
use crate::{ready, NS};

/// A broker with a PLAINTEXT listener (the operator's, whose ANONYMOUS principal is a super
/// user) and a SASL_PLAINTEXT one, enforcing ACLs.
async fn broker() -> Broker {
    start(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into(),
        ),
        ("super.users", "User:ANONYMOUS".into()),
    ])
    .await
}

/// An in-process broker with nothing stored, enforcing ACLs, with `flags` set too.
pub async fn start(flags: &[(&str, serde_json::Value)]) -> Broker {
    let defaults = [
        ("ephemeral", serde_json::json!(true)),
        ("http.listen", "127.0.0.1:0".into()),
        ("authorizer.class.name", "acl".into()),
    ];
    let flags: BTreeMap<String, serde_json::Value> = defaults
        .iter()
        .chain(flags)
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    // A prefix nothing sets, so the test does not pick up the caller's environment.
    let env = figment::providers::Env::prefixed("KAFSCALE_OPERATOR_TEST_UNUSED_");
    let config = kafscale::config::load(None, env, flags).unwrap();
    kafscale::broker::start(config).await.unwrap()
}

fn addr(b: &Broker, listener: &str) -> String {
    let (_, a) = b
        .listener_addrs
        .iter()
        .find(|(n, _)| n == listener)
        .unwrap();
    a.to_string()
}

/// The real admin client, sent to the test broker wherever the operator would send it
/// (the cluster's bootstrap Service, which has no address here): to the broker's listener of
/// the protocol the cluster's admin client security names, with that security.
pub struct AtBroker {
    pub listeners: Vec<(String, String)>,
    pub real: KafkaClientAdmin,
}

impl AtBroker {
    pub fn new(b: &Broker) -> AtBroker {
        AtBroker {
            listeners: b
                .listener_addrs
                .iter()
                .map(|(n, a)| (n.clone(), a.to_string()))
                .collect(),
            real: KafkaClientAdmin,
        }
    }

    fn at(&self, t: &Target) -> Target {
        let name = t.security.protocol.name();
        let addr = self
            .listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        Target {
            bootstrap: addr,
            security: t.security.clone(),
        }
    }
}

#[async_trait]
impl KafkaAdmin for AtBroker {
    async fn describe_topic(&self, t: &Target, n: &str) -> Result<Option<TopicState>, AdminError> {
        self.real.describe_topic(&self.at(t), n).await
    }
    async fn create_topic(&self, t: &Target, n: &NewTopic) -> Result<(), AdminError> {
        self.real.create_topic(&self.at(t), n).await
    }
    async fn create_partitions(&self, t: &Target, n: &str, p: i32) -> Result<(), AdminError> {
        self.real.create_partitions(&self.at(t), n, p).await
    }
    async fn alter_topic_configs(
        &self,
        t: &Target,
        n: &str,
        c: &ConfigChanges,
    ) -> Result<(), AdminError> {
        self.real.alter_topic_configs(&self.at(t), n, c).await
    }
    async fn delete_topic(&self, t: &Target, n: &str) -> Result<(), AdminError> {
        self.real.delete_topic(&self.at(t), n).await
    }
    async fn upsert_scram_credential(
        &self,
        t: &Target,
        c: &ScramCredential,
    ) -> Result<(), AdminError> {
        self.real.upsert_scram_credential(&self.at(t), c).await
    }
    async fn delete_scram_credential(
        &self,
        t: &Target,
        u: &str,
        m: ScramMechanism,
    ) -> Result<(), AdminError> {
        self.real.delete_scram_credential(&self.at(t), u, m).await
    }
    async fn set_acls(&self, t: &Target, u: &str, a: &[AclRule]) -> Result<(), AdminError> {
        self.real.set_acls(&self.at(t), u, a).await
    }
}

async fn login(b: &Broker, password: &str) -> Result<Client, CliError> {
    let props = BTreeMap::from(
        [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", password),
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
}

/// Alice's ACLs in the cluster, sorted.
async fn acls_of_alice(b: &Broker) -> Vec<AclBinding> {
    let mut c = Client::connect(&addr(b, "PLAINTEXT"), Duration::from_secs(10))
        .await
        .unwrap();
    let filter = AclFilter {
        resource_type: None,
        name: None,
        pattern: PatternFilter::Any,
        principal: Some("User:alice".into()),
        host: None,
        operation: None,
        permission: None,
    };
    let mut found = acl::describe(&mut c, &filter).await.unwrap();
    found.sort();
    found
}

fn on_orders(op: Operation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern::literal(ResourceType::Topic, "shop.orders"),
        entry: AclEntry::allow("User:alice", op),
    }
}

#[tokio::test]
async fn the_credential_and_the_acls_are_applied_and_drift_is_corrected() {
    let b = broker().await;
    let (api, ctx) = setup(Arc::new(AtBroker::new(&b)));
    api.put(&alice());
    let status = reconcile(&api, &ctx).await.unwrap().status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "Ready"),
        "{}",
        cond.message
    );
    let spec = vec![on_orders(Operation::Read), on_orders(Operation::Describe)];
    assert_eq!(acls_of_alice(&b).await, spec);
    // The Secret's password logs in; another does not.
    login(&b, "s3cret").await.unwrap();
    assert!(matches!(
        login(&b, "other").await,
        Err(CliError::Authentication { .. })
    ));

    // Behind the operator's back: one ACL added, one of the spec's removed.
    let mut c = Client::connect(&addr(&b, "PLAINTEXT"), Duration::from_secs(10))
        .await
        .unwrap();
    acl::create(&mut c, &[on_orders(Operation::Write)])
        .await
        .unwrap();
    acl::delete(&mut c, &[acl::exactly(&on_orders(Operation::Describe))])
        .await
        .unwrap();
    assert_ne!(acls_of_alice(&b).await, spec);
    reconcile(&api, &ctx).await.unwrap();
    assert_eq!(acls_of_alice(&b).await, spec);

    // Without ACLs the user is Ready and has none.
    let mut u = api.get::<KafscaleUser>(NS, "alice").unwrap();
    u.spec.authorization = None;
    api.put(&u);
    let status = reconcile(&api, &ctx).await.unwrap().status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "Ready"),
        "{}",
        cond.message
    );
    assert_eq!(acls_of_alice(&b).await, vec![]);

    // Deleting the resource deletes the credential and the ACLs.
    api.put(&alice());
    reconcile(&api, &ctx).await.unwrap();
    assert_eq!(acls_of_alice(&b).await, spec);
    api.delete::<KafscaleUser>(NS, "alice");
    assert!(reconcile(&api, &ctx).await.is_none());
    assert_eq!(acls_of_alice(&b).await, vec![]);
    let err = user::describe(&mut c, Some("alice")).await.unwrap_err();
    assert!(err.to_string().contains("RESOURCE_NOT_FOUND"), "{err}");
    assert!(login(&b, "s3cret").await.is_err());
}
