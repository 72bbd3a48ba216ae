//! KafscaleTopic: the topic in the (simulated) Kafka cluster and the status written, as a
//! topic is created, altered, tampered with and deleted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kafscale_operator::admin::TopicState;
use kafscale_operator::crd::{KafscaleTopic, KafscaleTopicSpec};
use kafscale_operator::{topic, Context};
use std::sync::Arc;

use crate::cluster::demo_cluster;
use crate::fake_api::FakeApi;
use crate::fake_kafka::FakeKafka;
use crate::{ready, NS};

pub fn orders(partitions: i32, config: &[(&str, &str)]) -> KafscaleTopic {
    let mut t = KafscaleTopic::new(
        "orders",
        KafscaleTopicSpec {
            cluster_ref: "demo".into(),
            topic_name: Some("shop.orders".into()),
            partitions,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    );
    t.metadata = ObjectMeta {
        name: Some("orders".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    t
}

fn setup() -> (FakeApi, Arc<FakeKafka>, Arc<Context>) {
    let api = FakeApi::new();
    api.put(&demo_cluster(3));
    let kafka = Arc::new(FakeKafka::at(&format!("demo-bootstrap.{NS}.svc:9092")));
    let ctx = Arc::new(Context::new(api.client(), kafka.clone()));
    (api, kafka, ctx)
}

/// Reconciles until the finalizer is in place and the topic handled, as the controller
/// would across the watch events its own finalizer patch causes.
pub async fn reconcile(api: &FakeApi, ctx: &Arc<Context>) -> Option<KafscaleTopic> {
    for _ in 0..2 {
        let t = api.get::<KafscaleTopic>(NS, "orders")?;
        let had_finalizer = t
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty());
        topic::reconcile(Arc::new(t), ctx.clone()).await.unwrap();
        if had_finalizer {
            break;
        }
    }
    api.get(NS, "orders")
}

fn state(partitions: i32, config: &[(&str, &str)]) -> TopicState {
    TopicState {
        partitions,
        configs: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn create_makes_the_topic_and_holds_a_finalizer() {
    let (api, kafka, ctx) = setup();
    api.put(&orders(3, &[("retention.ms", "86400000")]));
    let t = reconcile(&api, &ctx).await.unwrap();
    assert_eq!(
        kafka.topic("shop.orders"),
        Some(state(3, &[("retention.ms", "86400000")]))
    );
    assert_eq!(
        t.metadata.finalizers,
        Some(vec![topic::FINALIZER.to_owned()])
    );
    let status = t.status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "Ready")
    );
    assert_eq!(
        (status.partitions, status.observed_generation),
        (Some(3), Some(1))
    );
    assert_eq!(status.topic_name.as_deref(), Some("shop.orders"));
}

#[tokio::test]
async fn alter_raises_partitions_and_sets_configs_but_never_lowers_partitions() {
    let (api, kafka, ctx) = setup();
    api.put(&orders(3, &[("retention.ms", "1000")]));
    reconcile(&api, &ctx).await;

    let mut t: KafscaleTopic = api.get(NS, "orders").unwrap();
    t.spec = orders(
        6,
        &[("retention.ms", "2000"), ("max.message.bytes", "2048")],
    )
    .spec;
    api.put(&t);
    let t = reconcile(&api, &ctx).await.unwrap();
    assert_eq!(
        kafka.topic("shop.orders"),
        Some(state(
            6,
            &[("retention.ms", "2000"), ("max.message.bytes", "2048")]
        ))
    );
    let status = t.status.unwrap();
    assert_eq!(
        (
            ready(&status.conditions).status.as_str(),
            status.partitions,
            status.observed_generation
        ),
        ("True", Some(6), Some(2))
    );

    let mut t: KafscaleTopic = api.get(NS, "orders").unwrap();
    t.spec.partitions = 2;
    api.put(&t);
    let status = reconcile(&api, &ctx).await.unwrap().status.unwrap();
    assert_eq!(kafka.topic("shop.orders").unwrap().partitions, 6);
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "PartitionDecreaseRefused")
    );
    assert!(
        cond.message
            .contains("asks for 2 partitions but topic shop.orders has 6"),
        "{}",
        cond.message
    );
    assert_eq!(status.partitions, Some(6));
}

#[tokio::test]
async fn a_topic_changed_behind_the_operators_back_is_set_back() {
    let (api, kafka, ctx) = setup();
    api.put(&orders(3, &[("retention.ms", "1000")]));
    reconcile(&api, &ctx).await;
    // Someone alters the topic with another tool, then deletes it.
    kafka.topics.lock().unwrap().insert(
        "shop.orders".into(),
        state(3, &[("retention.ms", "5"), ("cleanup.policy", "delete")]),
    );
    reconcile(&api, &ctx).await;
    assert_eq!(
        kafka.topic("shop.orders"),
        Some(state(3, &[("retention.ms", "1000")]))
    );
    kafka.topics.lock().unwrap().clear();
    reconcile(&api, &ctx).await;
    assert_eq!(
        kafka.topic("shop.orders"),
        Some(state(3, &[("retention.ms", "1000")]))
    );
}

#[tokio::test]
async fn deleting_the_resource_deletes_the_topic_then_releases_it() {
    let (api, kafka, ctx) = setup();
    api.put(&orders(1, &[]));
    reconcile(&api, &ctx).await;
    assert!(kafka.topic("shop.orders").is_some());
    assert!(
        !api.delete::<KafscaleTopic>(NS, "orders"),
        "the finalizer holds the resource"
    );
    assert!(kafka.topic("shop.orders").is_some());
    assert!(
        reconcile(&api, &ctx).await.is_none(),
        "the finalizer was removed"
    );
    assert_eq!(kafka.topic("shop.orders"), None);
}

#[tokio::test]
async fn a_missing_cluster_is_reported_and_does_not_block_deletion() {
    let (api, kafka, ctx) = setup();
    let mut t = orders(1, &[]);
    t.spec.cluster_ref = "nope".into();
    api.put(&t);
    let status = reconcile(&api, &ctx).await.unwrap().status.unwrap();
    let cond = ready(&status.conditions);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "ClusterNotFound")
    );
    assert!(kafka.topics.lock().unwrap().is_empty());
    api.delete::<KafscaleTopic>(NS, "orders");
    assert!(reconcile(&api, &ctx).await.is_none());
}
