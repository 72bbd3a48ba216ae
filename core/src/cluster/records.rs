//! What the cluster keeps in the metadata store (the keys are in `schema::keys`):
//! brokers under their leases, the controller under its lease, and hand-overs under way.
//! Everything is O(brokers + partitions + shards); moves exist only while under way.

use serde::{Deserialize, Serialize};

use crate::types::BrokerId;

/// A live broker: present while its lease is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: BrokerId,
    /// Host and port clients connect to.
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Random per registration: tells a restarted broker from its predecessor.
    pub incarnation: u64,
    /// Shutting down: takes no new partitions and hands its own over.
    #[serde(default)]
    pub draining: bool,
    /// Every listener clients can reach it on; `host` and `port` are the first one's.
    /// Empty in records of brokers from before listeners, which had one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerEndpoint>,
}

/// Where clients reach a broker on one named listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// Upper case, as Kafka names listeners.
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl BrokerRecord {
    /// The broker's host and port on the named listener, `None` if it has no such listener
    /// (Kafka leaves such brokers out of what it tells clients of that listener).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// The elected controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRecord {
    pub broker: BrokerId,
    pub incarnation: u64,
}

/// The controller's request that the leader `from` hand a partition over to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRecord {
    pub from: BrokerId,
    pub to: BrokerId,
    pub to_incarnation: u64,
}
