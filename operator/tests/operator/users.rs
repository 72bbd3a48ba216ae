//! KafscaleUser: credentials and ACLs in the (simulated) Kafka cluster. The real admin
//! client against a real broker is in `real_users.rs`.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kafscale_operator::admin::KafkaAdmin;
use kafscale_operator::crd::SecretKeyRef;
use kafscale_operator::crd::{
    AclOperation, AclPatternType, AclResource, AclResourceType, AclRule, AclType, KafscaleUser,
    KafscaleUserSpec, ScramMechanism, UserAuthentication, UserAuthorization,
};
use kafscale_operator::{user, Context};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cluster::demo_cluster;
use crate::fake_api::FakeApi;
use crate::fake_kafka::FakeKafka;
use crate::{ready, NS};

pub fn read_orders() -> AclRule {
    AclRule {
        resource: AclResource {
            kind: AclResourceType::Topic,
            name: Some("shop.orders".into()),
            pattern_type: AclPatternType::Literal,
        },
        operations: vec![AclOperation::Read, AclOperation::Describe],
        host: "*".into(),
        effect: AclType::Allow,
    }
}

pub fn alice() -> KafscaleUser {
    let mut u = KafscaleUser::new(
        "alice",
        KafscaleUserSpec {
            cluster_ref: "demo".into(),
            user_name: None,
            authentication: UserAuthentication {
                mechanism: ScramMechanism::ScramSha512,
                password: SecretKeyRef {
                    name: "alice-password".into(),
                    key: "password".into(),
                },
            },
            authorization: Some(UserAuthorization {
                acls: vec![read_orders()],
            }),
        },
    );
    u.metadata = ObjectMeta {
        name: Some("alice".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    u
}

pub fn setup(admin: Arc<dyn KafkaAdmin>) -> (FakeApi, Arc<Context>) {
    let api = FakeApi::new();
    api.put(&demo_cluster(3));
    api.put(&Secret {
        metadata: ObjectMeta {
            name: Some("alice-password".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"s3cret".to_vec()),
        )])),
        ..Default::default()
    });
    let ctx = Arc::new(Context::new(api.client(), admin));
    (api, ctx)
}

pub async fn reconcile(api: &FakeApi, ctx: &Arc<Context>) -> Option<KafscaleUser> {
    for _ in 0..2 {
        let u = api.get::<KafscaleUser>(NS, "alice")?;
        let had_finalizer = u
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty());
        user::reconcile(Arc::new(u), ctx.clone()).await.unwrap();
        if had_finalizer {
            break;
        }
    }
    api.get(NS, "alice")
}

#[tokio::test]
async fn create_sets_the_credential_and_acls_and_delete_removes_them() {
    let kafka = Arc::new(FakeKafka::at(&format!("demo-bootstrap.{NS}.svc:9092")));
    let (api, ctx) = setup(kafka.clone());
    api.put(&alice());
    let u = reconcile(&api, &ctx).await.unwrap();
    let key = ("alice".to_owned(), ScramMechanism::ScramSha512);
    assert_eq!(
        kafka
            .credentials
            .lock()
            .unwrap()
            .get(&key)
            .map(String::as_str),
        Some("s3cret")
    );
    assert_eq!(
        kafka.acls.lock().unwrap().get("alice"),
        Some(&vec![read_orders()])
    );
    let status = u.status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "Ready")
    );
    assert_eq!(status.observed_generation, Some(1));
    // The password is never written to the status.
    assert!(!serde_json::to_string(&status).unwrap().contains("s3cret"));

    // ACLs granted elsewhere are replaced by the spec's.
    kafka.acls.lock().unwrap().insert("alice".into(), vec![]);
    reconcile(&api, &ctx).await;
    assert_eq!(
        kafka.acls.lock().unwrap().get("alice"),
        Some(&vec![read_orders()])
    );

    api.delete::<KafscaleUser>(NS, "alice");
    assert!(reconcile(&api, &ctx).await.is_none());
    assert!(kafka.credentials.lock().unwrap().is_empty());
    assert!(kafka.acls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_password_secret_is_reported() {
    let kafka = Arc::new(FakeKafka::at(&format!("demo-bootstrap.{NS}.svc:9092")));
    let (api, ctx) = setup(kafka.clone());
    let mut u = alice();
    u.spec.authentication.password.key = "pw".into();
    api.put(&u);
    let status = reconcile(&api, &ctx).await.unwrap().status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "SecretError")
    );
    assert_eq!(cond.message, "secret shop/alice-password: has no key pw");
    assert!(kafka.credentials.lock().unwrap().is_empty());
}
