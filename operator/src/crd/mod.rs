//! The custom resources, defined once as Rust types: the reconcilers read them, and the CRD
//! manifests under `deploy/crds/` are generated from them (`kafscale-operator crds`).

mod cluster;
pub mod conditions;
mod topic;
mod user;

use kube::core::CustomResourceExt;
use serde::{Deserialize, Serialize};

pub use cluster::{
    AdminClientSpec, BackupSpec, EtcdCredentials, EtcdSpec, KafscaleCluster, KafscaleClusterSpec,
    KafscaleClusterStatus, ListenerSpec, ListenersSpec, ObjectStoreCredentials, ObjectStoreSpec,
};
pub use conditions::{Condition, ConditionStatus, READY};
pub use topic::{KafscaleTopic, KafscaleTopicSpec, KafscaleTopicStatus};
pub use user::{
    AclOperation, AclPatternType, AclResource, AclResourceType, AclRule, AclType, KafscaleUser,
    KafscaleUserSpec, KafscaleUserStatus, ScramMechanism, UserAuthentication, UserAuthorization,
};

/// The API group of every KafScale resource.
pub const GROUP: &str = "kafscale.io";

/// A key of a Secret in the resource's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// Each CRD as a file name under `deploy/crds/` and its YAML.
pub fn manifests() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        ("kafscaleclusters.yaml", yaml(KafscaleCluster::crd())?),
        ("kafscaletopics.yaml", yaml(KafscaleTopic::crd())?),
        ("kafscaleusers.yaml", yaml(KafscaleUser::crd())?),
    ])
}

fn yaml<T: Serialize>(value: T) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&value)?;
    Ok(format!(
        "# Generated from operator/src/crd by `kafscale-operator crds`; do not edit.\n{body}"
    ))
}
