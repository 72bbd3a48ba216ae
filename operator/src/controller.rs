//! The three controllers, watching their resources in every namespace. A cluster is also
//! reconciled when one of its children changes, so a StatefulSet edited or deleted by hand
//! is put back, and its status follows the brokers' readiness.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;
use std::fmt::Debug;
use std::sync::Arc;

use crate::crd::{KafscaleCluster, KafscaleTopic, KafscaleUser};
use crate::{cluster, topic, user, Context, Error};

/// Errors that escaped a reconcile (its status could not even be written).
fn error_policy<K>(obj: Arc<K>, e: &Error, _ctx: Arc<Context>) -> Action
where
    K: Resource + Debug,
{
    tracing::warn!(name = ?obj.meta().name, namespace = ?obj.meta().namespace, error = %e, "reconcile failed");
    e.next_look()
}

/// Reports each reconcile's outcome in the log.
async fn drain<T: Debug, E: std::fmt::Display>(
    what: &'static str,
    stream: impl futures::Stream<Item = Result<T, E>>,
) {
    stream
        .for_each(|r| async move {
            match r {
                Ok(obj) => tracing::debug!(kind = what, object = ?obj, "reconciled"),
                Err(e) => tracing::debug!(kind = what, error = %e, "reconcile error"),
            }
        })
        .await;
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    // Only the children the operator made, not every Service of the cluster.
    let children = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        crate::FIELD_MANAGER
    ));
    let clusters = Controller::new(
        Api::<KafscaleCluster>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<StatefulSet>::all(client.clone()), children.clone())
    .owns(Api::<Service>::all(client.clone()), children.clone())
    .owns(
        Api::<PodDisruptionBudget>::all(client.clone()),
        children.clone(),
    )
    .shutdown_on_signal()
    .run(cluster::reconcile, error_policy, ctx.clone());
    let topics = Controller::new(
        Api::<KafscaleTopic>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(topic::reconcile, error_policy, ctx.clone());
    let users = Controller::new(Api::<KafscaleUser>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(user::reconcile, error_policy, ctx);
    tracing::info!("watching KafscaleCluster, KafscaleTopic and KafscaleUser");
    futures::join!(
        drain("KafscaleCluster", clusters),
        drain("KafscaleTopic", topics),
        drain("KafscaleUser", users),
    );
}
