//! KafscaleCluster: what the operator sends to the API server and the status it writes,
//! as a cluster is created, scaled up and down, upgraded and tampered with.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{EnvVar, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kafscale_operator::crd::{
    BackupSpec, EtcdCredentials, EtcdSpec, KafscaleCluster, KafscaleClusterSpec,
    ObjectStoreCredentials, ObjectStoreSpec,
};
use kafscale_operator::{cluster, Context};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fake_api::FakeApi;
use crate::fake_kafka::FakeKafka;
use crate::{ready, NS};

pub fn demo_cluster(brokers: i32) -> KafscaleCluster {
    let mut c = KafscaleCluster::new(
        "demo",
        KafscaleClusterSpec {
            brokers,
            image: "kafscale:0.1.0".into(),
            image_pull_policy: None,
            object_store: ObjectStoreSpec {
                url: "s3://bucket/demo".into(),
                endpoint: Some("http://minio.storage.svc:9000".into()),
                region: None,
                allow_http: true,
                credentials: Some(ObjectStoreCredentials {
                    secret_name: "minio".into(),
                    access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
                    secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
                }),
            },
            etcd: EtcdSpec {
                endpoints: vec!["etcd-0.etcd:2379".into(), "etcd-1.etcd:2379".into()],
                prefix: None,
                credentials: Some(EtcdCredentials {
                    secret_name: "etcd".into(),
                    username_key: "username".into(),
                    password_key: "password".into(),
                }),
            },
            listeners: Default::default(),
            security: BTreeMap::new(),
            resources: None,
            config: BTreeMap::from([("flush.ms".into(), "100".into())]),
            backup: Some(BackupSpec {
                interval_ms: 600_000,
                retention: Some(48),
            }),
            admin_client: None,
        },
    );
    c.metadata = ObjectMeta {
        name: Some("demo".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    c
}

pub fn setup() -> (FakeApi, Arc<Context>) {
    let api = FakeApi::new();
    let kafka = FakeKafka::at(&format!("demo-bootstrap.{NS}.svc:9092"));
    let ctx = Arc::new(Context::new(api.client(), Arc::new(kafka)));
    (api, ctx)
}

/// Reconciles the cluster as stored, as the controller would after a watch event.
pub async fn reconcile(api: &FakeApi, ctx: &Arc<Context>) -> KafscaleCluster {
    let c: KafscaleCluster = api.get(NS, "demo").unwrap();
    cluster::reconcile(Arc::new(c), ctx.clone()).await.unwrap();
    api.get(NS, "demo").unwrap()
}

fn env<'a>(sts: &'a StatefulSet, name: &str) -> &'a EnvVar {
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn replicas(api: &FakeApi) -> i32 {
    let sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    sts.spec.unwrap().replicas.unwrap()
}

/// What the StatefulSet controller would report.
fn sts_status(api: &FakeApi, replicas: i32, ready: i32, updated: i32, rolled: bool) {
    let sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    let generation = sts.metadata.generation.unwrap();
    let update = if rolled { "rev-2" } else { "rev-3" };
    api.set_status::<StatefulSet>(
        NS,
        "demo-broker",
        json!({
            "observedGeneration": generation, "replicas": replicas, "readyReplicas": ready,
            "updatedReplicas": updated, "currentRevision": "rev-2", "updateRevision": update,
        }),
    );
}

#[tokio::test]
async fn create_applies_brokers_services_and_budget_owned_by_the_cluster() {
    let (api, ctx) = setup();
    api.put(&demo_cluster(3));
    let c = reconcile(&api, &ctx).await;
    let uid = c.metadata.uid.clone().unwrap();

    // Children are applied server-side, forcing the operator's ownership of its fields.
    let applied: Vec<String> = api
        .take_log()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.content_type.starts_with("application/apply-patch"))
        .map(|r| r.uri)
        .collect();
    assert_eq!(applied.len(), 4, "{applied:?}");
    for uri in &applied {
        assert!(
            uri.contains("fieldManager=kafscale-operator") && uri.contains("force=true"),
            "{uri}"
        );
    }
    assert!(applied
        .iter()
        .any(|u| u.starts_with("/apis/apps/v1/namespaces/shop/statefulsets/demo-broker?")));

    let sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("KafscaleCluster", uid.as_str(), Some(true))
    );
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("demo-brokers"));
    assert_eq!(
        spec.update_strategy.as_ref().unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    let pod = spec.template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("kafscale:0.1.0"));
    assert_eq!(
        container
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        container
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    // shutdown.drain.timeout.ms defaults to 30 s; 30 s more to flush and leave.
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(
        (psc.run_as_user, psc.run_as_non_root),
        (Some(65532), Some(true))
    );
    assert_eq!(
        container
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );

    assert_eq!(
        env(&sts, "KAFSCALE_ADVERTISED_LISTENER").value.as_deref(),
        Some("$(POD_NAME).demo-brokers.shop.svc:9092")
    );
    assert_eq!(
        env(&sts, "KAFSCALE_METADATA").value.as_deref(),
        Some(
            "etcd://$(ETCD_USERNAME):$(ETCD_PASSWORD)@etcd-0.etcd:2379,etcd-1.etcd:2379/shop/demo"
        )
    );
    let secret = env(&sts, "ETCD_PASSWORD")
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("etcd", "password")
    );
    let secret = env(&sts, "AWS_SECRET_ACCESS_KEY")
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(secret.name, "minio");
    assert_eq!(
        env(&sts, "KAFSCALE_OBJECT_STORE").value.as_deref(),
        Some("s3://bucket/demo")
    );
    assert_eq!(env(&sts, "KAFSCALE_FLUSH_MS").value.as_deref(), Some("100"));
    assert_eq!(
        env(&sts, "KAFSCALE_METADATA_BACKUP_INTERVAL_MS")
            .value
            .as_deref(),
        Some("600000")
    );
    assert_eq!(
        env(&sts, "KAFSCALE_METADATA_BACKUP_RETENTION")
            .value
            .as_deref(),
        Some("48")
    );
    let field = env(&sts, "KAFSCALE_BROKER_ID")
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        field.field_path,
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );

    let headless: Service = api.get(NS, "demo-brokers").unwrap();
    let hs = headless.spec.unwrap();
    assert_eq!(
        (hs.cluster_ip.as_deref(), hs.publish_not_ready_addresses),
        (Some("None"), Some(true))
    );
    let bootstrap: Service = api.get(NS, "demo-bootstrap").unwrap();
    assert_eq!(bootstrap.spec.unwrap().ports.unwrap()[0].port, 9092);
    let pdb: PodDisruptionBudget = api.get(NS, "demo-brokers").unwrap();
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
    for o in [&headless.metadata, &bootstrap.metadata, &pdb.metadata] {
        assert_eq!(o.owner_references.as_ref().unwrap()[0].uid, uid);
    }

    // The StatefulSet controller has not acted yet: not ready.
    let status = c.status.unwrap();
    assert_eq!(ready(&status.conditions).status, "False");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.bootstrap.as_deref(),
        Some("demo-bootstrap.shop.svc:9092")
    );

    // All brokers ready on the current template.
    sts_status(&api, 3, 3, 3, true);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (
            cond.status.as_str(),
            cond.reason.as_str(),
            status.ready_brokers
        ),
        ("True", "Ready", 3)
    );
}

#[tokio::test]
async fn scale_up_and_down_change_the_statefulset_replicas() {
    let (api, ctx) = setup();
    api.put(&demo_cluster(3));
    reconcile(&api, &ctx).await;
    sts_status(&api, 3, 3, 3, true);

    api.put(&demo_cluster(5));
    let c = reconcile(&api, &ctx).await;
    assert_eq!(replicas(&api), 5);
    assert_eq!(c.status.unwrap().observed_generation, Some(2));
    sts_status(&api, 5, 3, 5, true);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (
            cond.status.as_str(),
            cond.reason.as_str(),
            cond.message.as_str()
        ),
        ("False", "BrokersNotReady", "3 of 5 brokers ready")
    );

    // Down to 2: the StatefulSet stops pods 4, 3 and 2 (SIGTERM, hand-over).
    sts_status(&api, 5, 5, 5, true);
    api.put(&demo_cluster(2));
    reconcile(&api, &ctx).await;
    assert_eq!(replicas(&api), 2);
    sts_status(&api, 4, 4, 4, true);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    assert_eq!(ready(&status.conditions).reason, "ScalingDown");
    sts_status(&api, 2, 2, 2, true);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    assert_eq!(ready(&status.conditions).status, "True");
}

#[tokio::test]
async fn image_upgrade_rolls_the_template_and_reports_progress() {
    let (api, ctx) = setup();
    api.put(&demo_cluster(3));
    reconcile(&api, &ctx).await;
    sts_status(&api, 3, 3, 3, true);
    let before: StatefulSet = api.get(NS, "demo-broker").unwrap();

    let mut c = demo_cluster(3);
    c.spec.image = "kafscale:0.2.0".into();
    api.put(&c);
    reconcile(&api, &ctx).await;
    let after: StatefulSet = api.get(NS, "demo-broker").unwrap();
    let container = &after
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(container.image.as_deref(), Some("kafscale:0.2.0"));
    assert_eq!(
        after.metadata.generation.unwrap(),
        before.metadata.generation.unwrap() + 1
    );

    // One broker replaced so far.
    sts_status(&api, 3, 3, 1, false);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.reason.as_str(), cond.message.as_str()),
        ("RollingUpdate", "1 of 3 brokers run the current template")
    );
    sts_status(&api, 3, 3, 3, true);
    let status = reconcile(&api, &ctx).await.status.unwrap();
    assert_eq!(ready(&status.conditions).status, "True");
}

#[tokio::test]
async fn a_statefulset_changed_by_hand_is_put_back() {
    let (api, ctx) = setup();
    api.put(&demo_cluster(3));
    reconcile(&api, &ctx).await;
    let mut sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    sts.spec.as_mut().unwrap().replicas = Some(7);
    sts.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("evil:latest".into());
    api.put(&sts);
    reconcile(&api, &ctx).await;
    let sts: StatefulSet = api.get(NS, "demo-broker").unwrap();
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("kafscale:0.1.0")
    );
}

#[tokio::test]
async fn settings_the_operator_owns_or_does_not_know_are_refused_in_the_status() {
    let (api, ctx) = setup();
    for (key, value, expected) in [
        ("listen", "0.0.0.0:1", "listen is set by the operator"),
        ("flush.msec", "1", "unknown broker setting flush.msec"),
        ("flush.ms", "soon", "flush.ms: expected"),
    ] {
        let mut c = demo_cluster(3);
        c.spec.config = BTreeMap::from([(key.to_owned(), value.to_owned())]);
        api.put(&c);
        let status = reconcile(&api, &ctx).await.status.unwrap();
        let cond = ready(&status.conditions);
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(cond.message.contains(expected), "{}", cond.message);
    }
    assert!(
        api.get::<StatefulSet>(NS, "demo-broker").is_none(),
        "nothing applied from a bad spec"
    );
}
