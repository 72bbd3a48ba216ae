//! `KafscaleUser`: a SCRAM user and its ACLs, shaped after Strimzi's `KafkaUser`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, SecretKeyRef};

/// A user of a `KafscaleCluster`: SCRAM credentials from a Secret and the ACLs that apply
/// to it (`User:<name>`).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafscale.io",
    version = "v1alpha1",
    kind = "KafscaleUser",
    namespaced,
    status = "KafscaleUserStatus",
    shortname = "ksu",
    category = "kafscale",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleUserSpec {
    /// Name of the `KafscaleCluster` in the same namespace.
    pub cluster_ref: String,
    /// User name in Kafka; the resource's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub authentication: UserAuthentication,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
}

impl KafscaleUser {
    /// The user's name in Kafka.
    pub fn user_name(&self) -> String {
        self.spec
            .user_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    #[serde(rename = "type")]
    pub mechanism: ScramMechanism,
    /// The password, from a Secret in the user's namespace.
    pub password: SecretKeyRef,
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum ScramMechanism {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// The user's ACLs; the operator replaces whatever ACLs the user has with these.
    #[serde(default)]
    pub acls: Vec<AclRule>,
}

/// One ACL, as in Strimzi: a resource, operations on it, allowed or denied, from a host.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// `*` (any host) when unset.
    #[serde(default = "any_host")]
    pub host: String,
    #[serde(default, rename = "type")]
    pub effect: AclType,
}

fn any_host() -> String {
    "*".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    #[serde(rename = "type")]
    pub kind: AclResourceType,
    /// Resource name; unset for the cluster resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    #[default]
    Literal,
    Prefix,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclType {
    #[default]
    Allow,
    Deny,
}

/// Kafka's ACL operations, spelled as Strimzi and Kafka spell them.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleUserStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}
