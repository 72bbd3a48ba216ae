//! The Kafka side of topics and users, behind a small trait so the reconcilers can be
//! tested without brokers. [`KafkaClientAdmin`] is the real one: it speaks the Kafka
//! admin API through the `kafscale` CLI's client.

mod acl_rules;
mod kafka;

use async_trait::async_trait;
use kafscale::cli::client::ClientSecurity;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::crd::{AclRule, ScramMechanism};

pub use kafka::KafkaClientAdmin;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No broker answered; the next attempt may reach one.
    #[error("cannot reach the cluster at {bootstrap}: {reason}")]
    Unreachable { bootstrap: String, reason: String },
    /// The cluster answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The brokers cannot do this at all (an older broker version).
    #[error("{what} is not supported by this broker version yet")]
    Unsupported { what: String },
}

/// A topic as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub partitions: i32,
    /// Configs set on the topic itself (not the defaults it inherits).
    pub configs: BTreeMap<String, String>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// Config changes of one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChanges {
    pub set: BTreeMap<String, String>,
    /// Configs to remove from the topic, so that their defaults apply again.
    pub delete: Vec<String>,
}

impl ConfigChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// A user's SCRAM credential. The password never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub password: String,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// Where and how the operator reaches a cluster: its bootstrap address (`host:port`) and the
/// client security of `KafscaleCluster.spec.adminClient` (PLAINTEXT without it).
#[derive(Debug, Clone)]
pub struct Target {
    pub bootstrap: String,
    pub security: Arc<ClientSecurity>,
}

impl Target {
    /// PLAINTEXT without authentication.
    pub fn plaintext(bootstrap: &str) -> Target {
        Target {
            bootstrap: bootstrap.to_owned(),
            security: Arc::default(),
        }
    }
}

/// The admin operations the operator needs, each against the cluster `target` names.
///
/// Contract: `describe_topic` answers `None` for a topic that does not exist; every other
/// method either did what it says or returns an error, never a silent no-op, and
/// `Unsupported` when the brokers cannot do it.
#[async_trait]
pub trait KafkaAdmin: Send + Sync {
    async fn describe_topic(
        &self,
        target: &Target,
        topic: &str,
    ) -> Result<Option<TopicState>, AdminError>;
    async fn create_topic(&self, target: &Target, topic: &NewTopic) -> Result<(), AdminError>;
    /// Raises the topic's partition count to `total`.
    async fn create_partitions(
        &self,
        target: &Target,
        topic: &str,
        total: i32,
    ) -> Result<(), AdminError>;
    async fn alter_topic_configs(
        &self,
        target: &Target,
        topic: &str,
        changes: &ConfigChanges,
    ) -> Result<(), AdminError>;
    /// Deletes the topic; a topic that does not exist is not an error.
    async fn delete_topic(&self, target: &Target, topic: &str) -> Result<(), AdminError>;
    /// Creates the credential, or replaces the user's credential of that mechanism.
    async fn upsert_scram_credential(
        &self,
        target: &Target,
        credential: &ScramCredential,
    ) -> Result<(), AdminError>;
    /// Removes the user's credential of that mechanism; an absent one is not an error.
    async fn delete_scram_credential(
        &self,
        target: &Target,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), AdminError>;
    /// Makes `acls` the complete list of the user's ACLs (empty: removes them all).
    async fn set_acls(
        &self,
        target: &Target,
        user: &str,
        acls: &[AclRule],
    ) -> Result<(), AdminError>;
}
