//! Reconciling a `KafscaleCluster`: apply its StatefulSet, Services and
//! PodDisruptionBudget (server-side apply, so fields others own are left alone), then report
//! how many brokers are ready on the current template.
//!
//! Scaling is a change of the StatefulSet's replicas: Kubernetes sends the removed pods
//! SIGTERM and each broker hands its partitions over before it exits. An upgrade is a
//! change of the pod template, rolled one broker at a time.

pub mod admin_client;
pub mod env;
pub mod resources;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;

use crate::admin::Target;
use crate::crd::{conditions, ConditionStatus, KafscaleCluster, KafscaleClusterStatus};
use crate::{status, Context, Error, FIELD_MANAGER};
use resources::Names;

/// `host:port` of a cluster's bootstrap Service, for clients inside Kubernetes.
pub fn bootstrap_address(cluster: &KafscaleCluster) -> String {
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    format!(
        "{}.{ns}.svc:{}",
        Names::of(&name).bootstrap,
        cluster.spec.listeners.kafka_port
    )
}

/// Where and how the operator reaches the cluster a topic or user refers to, `None` when
/// there is no such cluster.
pub async fn find_target(
    ctx: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<Option<Target>, Error> {
    let api: Api<KafscaleCluster> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(cluster).await? {
        Some(c) => admin_client::target(ctx, &c).await.map(Some),
        None => Ok(None),
    }
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = obj
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingField("name"))?;
    // Force: the operator owns these objects; a hand edit of a field it sets is drift.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(obj)).await?)
}

/// Applies the children and returns the StatefulSet as the API server has it.
async fn apply_children(cluster: &KafscaleCluster, ctx: &Context) -> Result<StatefulSet, Error> {
    let ns = cluster
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("uid"))?;
    let names = Names::of(&cluster.name_any());
    let settings = env::settings(cluster)?;
    let broker_env = env::broker_env(cluster, &names.headless, &settings)?;
    let grace = env::termination_grace_secs(&settings);

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    apply(
        &services,
        &resources::headless_service(cluster, &names, &owner),
    )
    .await?;
    apply(
        &services,
        &resources::bootstrap_service(cluster, &names, &owner),
    )
    .await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    apply(&pdbs, &resources::pdb(cluster, &names, &owner)).await?;
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let sts = resources::statefulset(cluster, &names, &owner, broker_env, grace);
    apply(&sets, &sts).await
}

/// Ready brokers, and the `Ready` condition's status, reason and message.
fn readiness(
    cluster: &KafscaleCluster,
    sts: &StatefulSet,
) -> (i32, ConditionStatus, &'static str, String) {
    let want = cluster.spec.brokers;
    let st = sts.status.clone().unwrap_or_default();
    let current = st.observed_generation >= sts.metadata.generation;
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let rolled = st.update_revision.is_some() && st.current_revision == st.update_revision;
    if !current {
        return (
            ready,
            ConditionStatus::False,
            "Reconciling",
            "the StatefulSet controller has not seen the change yet".into(),
        );
    }
    if st.replicas > want {
        return (
            ready,
            ConditionStatus::False,
            "ScalingDown",
            format!(
                "{} brokers running, {want} wanted; the leaving ones hand their partitions over",
                st.replicas
            ),
        );
    }
    if updated < want || (want > 0 && !rolled) {
        return (
            ready,
            ConditionStatus::False,
            "RollingUpdate",
            format!("{updated} of {want} brokers run the current template"),
        );
    }
    if ready < want {
        return (
            ready,
            ConditionStatus::False,
            "BrokersNotReady",
            format!("{ready} of {want} brokers ready"),
        );
    }
    (
        ready,
        ConditionStatus::True,
        "Ready",
        format!("{ready} of {want} brokers ready"),
    )
}

pub async fn reconcile(cluster: Arc<KafscaleCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cluster
        .namespace()
        .ok_or(Error::MissingField("namespace"))?;
    let name = cluster.name_any();
    let api: Api<KafscaleCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let (new_status, action) = match apply_children(&cluster, &ctx).await {
        Ok(sts) => {
            let (ready, st, reason, message) = readiness(&cluster, &sts);
            let condition =
                conditions::ready(&previous.conditions, st, reason, message, generation);
            let status = KafscaleClusterStatus {
                conditions: vec![condition],
                observed_generation: generation,
                ready_brokers: ready,
                bootstrap: Some(bootstrap_address(&cluster)),
            };
            (status, Action::requeue(status::RESYNC))
        }
        Err(e) => {
            tracing::warn!(cluster = %name, namespace = %ns, error = %e, "cluster reconcile failed");
            let (condition, action) = status::failed(&previous.conditions, generation, &e);
            let status = KafscaleClusterStatus {
                conditions: vec![condition],
                observed_generation: generation,
                ..previous
            };
            (status, action)
        }
    };
    status::write(&api, &name, &new_status).await?;
    Ok(action)
}
