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
