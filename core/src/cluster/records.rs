//! What the cluster keeps in the metadata store, and where.
//!
//! ```text
//! kafscale/brokers/<id>                    BrokerRecord, under the broker's lease
//! kafscale/controller                      ControllerRecord, under the controller's lease
//! kafscale/moves/<topic id>/<partition>    MoveRecord: a hand-over the controller asked for
//! kafscale/leaders/<topic id>/<partition>  LeaderRecord (log::keys)
//! kafscale/groups/shards/<shard>           ShardRecord (group::keys)
//! ```
//! Everything is O(brokers + partitions + shards); moves exist only while under way.

use serde::{Deserialize, Serialize};

use crate::log::keys::{parse_topic_partition, ROOT};
use crate::types::{BrokerId, PartitionKey};

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

pub fn brokers_prefix() -> String {
    format!("{ROOT}brokers/")
}

pub fn broker(id: BrokerId) -> String {
    format!("{ROOT}brokers/{}", id.0)
}

pub fn parse_broker(key: &str) -> Option<BrokerId> {
    key.strip_prefix(ROOT)?
        .strip_prefix("brokers/")?
        .parse()
        .ok()
        .map(BrokerId)
}

pub fn controller() -> String {
    format!("{ROOT}controller")
}

pub fn moves_prefix() -> String {
    format!("{ROOT}moves/")
}

pub fn move_key(p: PartitionKey) -> String {
    format!("{ROOT}moves/{}/{:05}", p.topic, p.partition.0)
}

pub fn parse_move(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("moves/")?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::{PartitionId, TopicId};

    #[test]
    fn keys_round_trip() {
        assert_eq!(parse_broker(&broker(BrokerId(12))), Some(BrokerId(12)));
        assert_eq!(parse_broker("kafscale/brokers/x"), None);
        let p = PartitionKey {
            topic: TopicId::random(),
            partition: PartitionId(3),
        };
        assert_eq!(parse_move(&move_key(p)), Some(p));
    }
}
