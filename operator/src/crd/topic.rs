//! `KafscaleTopic`: a topic of a `KafscaleCluster`, kept as the spec says.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Condition;

/// A topic. The operator creates it, raises its partitions, sets its configs, puts back
/// what was changed behind its back, and deletes it when the resource is deleted.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafscale.io",
    version = "v1alpha1",
    kind = "KafscaleTopic",
    namespaced,
    status = "KafscaleTopicStatus",
    shortname = "kst",
    category = "kafscale",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".spec.partitions"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleTopicSpec {
    /// Name of the `KafscaleCluster` in the same namespace.
    pub cluster_ref: String,
    /// Topic name in Kafka; the resource's name when unset (Kafka names may hold `_` and
    /// upper case, Kubernetes names may not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Number of partitions. It can be raised; Kafka cannot remove partitions, so a lower
    /// value is reported in the `Ready` condition and not applied.
    #[schemars(range(min = 1))]
    pub partitions: i32,
    /// Topic configs (`retention.ms`, ...). Configs set on the topic but not listed here are
    /// removed, so the topic's defaults apply again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl KafscaleTopic {
    /// The topic's name in Kafka.
    pub fn topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleTopicStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Partitions the topic has in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
}
