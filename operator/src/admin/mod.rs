//! The Kafka side of topics and users, behind a small trait so the reconcilers can be
//! tested without brokers. [`KafkaClientAdmin`] is the real one: it speaks the Kafka
//! admin API through the `kafscale` CLI's client.

mod acl_rules;
mod kafka;

use async_trait::async_trait;
use std::collections::BTreeMap;

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

/// The admin operations the operator needs, each against the cluster reached at
/// `bootstrap` (`host:port`).
///
/// Contract: `describe_topic` answers `None` for a topic that does not exist; every other
/// method either did what it says or returns an error, never a silent no-op, and
/// `Unsupported` when the brokers cannot do it.
#[async_trait]
pub trait KafkaAdmin: Send + Sync {
    async fn describe_topic(
        &self,
        bootstrap: &str,
        topic: &str,
    ) -> Result<Option<TopicState>, AdminError>;
    async fn create_topic(&self, bootstrap: &str, topic: &NewTopic) -> Result<(), AdminError>;
    /// Raises the topic's partition count to `total`.
    async fn create_partitions(
        &self,
        bootstrap: &str,
        topic: &str,
        total: i32,
    ) -> Result<(), AdminError>;
    async fn alter_topic_configs(
        &self,
        bootstrap: &str,
        topic: &str,
        changes: &ConfigChanges,
    ) -> Result<(), AdminError>;
    /// Deletes the topic; a topic that does not exist is not an error.
    async fn delete_topic(&self, bootstrap: &str, topic: &str) -> Result<(), AdminError>;
    /// Creates the credential, or replaces the user's credential of that mechanism.
    async fn upsert_scram_credential(
        &self,
        bootstrap: &str,
        credential: &ScramCredential,
    ) -> Result<(), AdminError>;
    /// Removes the user's credential of that mechanism; an absent one is not an error.
    async fn delete_scram_credential(
        &self,
        bootstrap: &str,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), AdminError>;
    /// Makes `acls` the complete list of the user's ACLs (empty: removes them all).
    async fn set_acls(
        &self,
        bootstrap: &str,
        user: &str,
        acls: &[AclRule],
    ) -> Result<(), AdminError>;
}
