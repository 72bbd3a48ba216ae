//! Writing `status` and turning a reconcile's outcome into the `Ready` condition.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::Duration;

use crate::crd::{conditions, Condition, ConditionStatus};
use crate::Error;

/// How soon a resource whose reconcile failed is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// How often a healthy resource is looked at again, so that a change made behind the
/// operator's back (a topic altered with another tool) is put back without an event.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Merges `status` into the object's status subresource.
pub async fn write<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The `Ready` condition reporting an error, and when to look at the resource again.
pub fn failed(previous: &[Condition], generation: Option<i64>, e: &Error) -> (Condition, Action) {
    let condition = conditions::ready(
        previous,
        ConditionStatus::False,
        e.reason(),
        e.to_string(),
        generation,
    );
    (condition, e.next_look())
}
