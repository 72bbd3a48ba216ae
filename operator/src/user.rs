//! Reconciling a `KafscaleUser`: its SCRAM credential (password from a Secret) and its
//! ACLs, through the Kafka admin API, removed again when the resource is deleted.
//!
//! The credential is stored before the ACLs are set, so a broker without ACL APIs (which
//! answers `Unsupported` for a non-empty ACL list) still gets the credential; the user's
//! `Ready` condition then says what is missing (status False, reason `Unsupported`).
//! Nothing is reported as done that was not done.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::ResourceExt;
use std::sync::Arc;

use crate::admin::{AdminError, ScramCredential};
use crate::crd::{conditions, ConditionStatus, KafscaleUser, KafscaleUserStatus};
use crate::{cluster, status, Context, Error};

pub const FINALIZER: &str = "kafscale.io/user";

pub async fn reconcile(user: Arc<KafscaleUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = user.namespace().ok_or(Error::MissingField("namespace"))?;
    let api: Api<KafscaleUser> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, user, |event| async {
        match event {
            Event::Apply(u) => apply(&api, &u, &ctx).await,
            Event::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The password the user's Secret holds.
async fn password(user: &KafscaleUser, ctx: &Context, ns: &str) -> Result<String, Error> {
    let secret_ref = &user.spec.authentication.password;
    let problem = |problem: String| Error::Secret {
        namespace: ns.to_owned(),
        name: secret_ref.name.clone(),
        problem,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await?
        .ok_or_else(|| problem("not found".into()))?;
    let bytes = secret
        .data
        .and_then(|mut d| d.remove(&secret_ref.key))
        .ok_or_else(|| problem(format!("has no key {}", secret_ref.key)))?;
    String::from_utf8(bytes.0).map_err(|_| problem(format!("key {} is not UTF-8", secret_ref.key)))
}

async fn sync(user: &KafscaleUser, ctx: &Context) -> Result<(), Error> {
    let ns = user.namespace().ok_or(Error::MissingField("namespace"))?;
    let target = cluster::find_target(ctx, &ns, &user.spec.cluster_ref)
        .await?
        .ok_or_else(|| Error::ClusterNotFound(user.spec.cluster_ref.clone()))?;
    let credential = ScramCredential {
        user: user.user_name(),
        mechanism: user.spec.authentication.mechanism,
        password: password(user, ctx, &ns).await?,
    };
    ctx.admin
        .upsert_scram_credential(&target, &credential)
        .await?;
    let acls = user
        .spec
        .authorization
        .as_ref()
        .map(|a| a.acls.as_slice())
        .unwrap_or_default();
    ctx.admin.set_acls(&target, &credential.user, acls).await?;
    Ok(())
}

async fn apply(
    api: &Api<KafscaleUser>,
    user: &KafscaleUser,
    ctx: &Context,
) -> Result<Action, Error> {
    let previous = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let name = user.user_name();
    let (condition, action) = match sync(user, ctx).await {
        Ok(()) => {
            let c = conditions::ready(
                &previous.conditions,
                ConditionStatus::True,
                "Ready",
                format!("user {name} has its SCRAM credential and ACLs"),
                generation,
            );
            (c, Action::requeue(status::RESYNC))
        }
        Err(e) => {
            tracing::warn!(user = %name, error = %e, "user reconcile failed");
            status::failed(&previous.conditions, generation, &e)
        }
    };
    let new_status = KafscaleUserStatus {
        conditions: vec![condition],
        observed_generation: generation,
        user_name: Some(name),
    };
    status::write(api, &user.name_any(), &new_status).await?;
    Ok(action)
}

/// Removes the credential and the ACLs. A broker that cannot store them holds none, and
/// a cluster that is gone holds nothing: both let the resource go.
async fn cleanup(user: &KafscaleUser, ctx: &Context) -> Result<Action, Error> {
    let ns = user.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = user.user_name();
    let Some(target) = cluster::find_target(ctx, &ns, &user.spec.cluster_ref).await? else {
        tracing::info!(user = %name, cluster = %user.spec.cluster_ref, "cluster gone, nothing to delete");
        return Ok(Action::await_change());
    };
    let mechanism = user.spec.authentication.mechanism;
    let removed = async {
        ctx.admin
            .delete_scram_credential(&target, &name, mechanism)
            .await?;
        ctx.admin.set_acls(&target, &name, &[]).await
    };
    match removed.await {
        Ok(()) => tracing::info!(user = %name, "deleted user credential and ACLs"),
        Err(AdminError::Unsupported { what }) => {
            tracing::info!(user = %name, %what, "the brokers cannot hold this, nothing to delete")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
