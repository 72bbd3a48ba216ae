//! `KafscaleCluster`: a set of stateless brokers on one object store and one etcd.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Condition;

/// A KafScale cluster: brokers run as a StatefulSet; records live in the object store and
/// metadata in etcd, so brokers can be replaced, added and removed at any time.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafscale.io",
    version = "v1alpha1",
    kind = "KafscaleCluster",
    namespaced,
    status = "KafscaleClusterStatus",
    shortname = "ksc",
    category = "kafscale",
    printcolumn = r#"{"name":"Brokers","type":"integer","jsonPath":".spec.brokers"}"#,
    printcolumn = r#"{"name":"Ready brokers","type":"integer","jsonPath":".status.readyBrokers"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Bootstrap","type":"string","jsonPath":".status.bootstrap"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleClusterSpec {
    /// Number of brokers. Lowering it stops the highest-numbered brokers one at a time; each
    /// hands its partitions over before it exits.
    #[schemars(range(min = 0))]
    pub brokers: i32,
    /// Broker image, e.g. `registry.example.com/kafscale:0.1.0`. Changing it rolls the
    /// brokers one at a time, each new one ready before the next is stopped.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Where records are stored.
    pub object_store: ObjectStoreSpec,
    /// Where metadata (topics, partition ownership, groups, offsets) is kept.
    pub etcd: EtcdSpec,
    /// Ports of the Kafka and HTTP listeners.
    #[serde(default)]
    pub listeners: ListenersSpec,
    /// Broker settings of authentication and encryption, passed to every broker as they
    /// are (same names as `docs/configuration.md`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security: BTreeMap<String, String>,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Further broker settings (e.g. `flush.ms: "100"`), as in `docs/configuration.md`.
    /// Settings the operator manages (listeners, broker id, stores) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Scheduled metadata backups to the object store, taken by the controller broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// How the operator's own admin client (topics, users) connects to the brokers; unset:
    /// PLAINTEXT without authentication, to `listeners.kafkaPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_client: Option<AdminClientSpec>,
}

/// The operator's admin client: Kafka client properties from a Secret, and the port of the
/// listener they are for.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminClientSpec {
    /// A Secret in the cluster's namespace. Its `propertiesKey` holds Kafka client
    /// properties, as `kafscale --command-config` takes them (`security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
    /// `ssl.certificate.location`, `ssl.key.location`, ...); the files they name are other
    /// keys of the same Secret (`ssl.ca.location=ca.crt`).
    pub secret_name: String,
    #[serde(default = "properties_key")]
    pub properties_key: String,
    /// Port of the brokers' listener those properties are for (`listeners.kafkaPort` or one
    /// of `listeners.additional`); `listeners.kafkaPort` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

fn properties_key() -> String {
    "client.properties".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// `s3://bucket[/prefix]`.
    pub url: String,
    /// Endpoint of an S3-compatible store (MinIO, SeaweedFS); unset for AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Access keys; unset when the pods get credentials another way (e.g. IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ObjectStoreCredentials>,
}

/// A Secret holding S3 access keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreCredentials {
    pub secret_name: String,
    #[serde(default = "access_key_id_key")]
    pub access_key_id_key: String,
    #[serde(default = "secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}

fn secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSpec {
    /// `host:port` of each etcd member.
    #[schemars(length(min = 1))]
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster, so that clusters can share an etcd; the cluster's
    /// `namespace/name` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// etcd user and password; unset for an etcd without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<EtcdCredentials>,
}

/// A Secret holding an etcd user and its password.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdCredentials {
    pub secret_name: String,
    #[serde(default = "username_key")]
    pub username_key: String,
    #[serde(default = "password_key")]
    pub password_key: String,
}

fn username_key() -> String {
    "username".into()
}

fn password_key() -> String {
    "password".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// Kafka protocol port of every broker and of the bootstrap Service.
    #[serde(default = "kafka_port")]
    pub kafka_port: u16,
    /// Port of `/healthz`, `/readyz` and `/metrics`.
    #[serde(default = "http_port")]
    pub http_port: u16,
    /// Listeners besides the PLAINTEXT one on `kafkaPort` (for example SASL_SSL on 9094),
    /// each advertised at the broker's own DNS name and exposed by the bootstrap Service.
    /// Their TLS and SASL settings go in `security` (`ssl.keystore.location`,
    /// `listener.name.NAME.ssl.client.auth`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional: Vec<ListenerSpec>,
}

impl Default for ListenersSpec {
    fn default() -> Self {
        ListenersSpec {
            kafka_port: kafka_port(),
            http_port: http_port(),
            additional: Vec::new(),
        }
    }
}

/// A Kafka listener: its name, port and security protocol.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Kafka's listener name (upper case, e.g. `SASL_SSL` or `INTERNAL`); not `PLAINTEXT`,
    /// the `kafkaPort` listener's.
    pub name: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`; the name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl ListenerSpec {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or(&self.name)
    }
}

fn kafka_port() -> u16 {
    9092
}

fn http_port() -> u16 {
    9093
}

/// Becomes the brokers' `metadata.backup.interval.ms` and `metadata.backup.retention`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Time between two backups; 0 turns scheduled backups off.
    #[schemars(range(min = 0))]
    pub interval_ms: i64,
    /// Backups kept: the newest ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention: Option<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafscaleClusterStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Brokers that pass `/readyz` and run the current pod template.
    #[serde(default)]
    pub ready_brokers: i32,
    /// `host:port` for clients inside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
}
