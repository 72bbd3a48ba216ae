//! Consumer groups: the classic group protocol's coordinator and committed offsets.
//!
//! A group moves between Empty, PreparingRebalance, CompletingRebalance and Stable (and
//! Dead while it is deleted). Members join (a first JoinGroup v4+ gets an id to rejoin
//! with), the coordinator picks the protocol most members prefer among those all support,
//! the leader computes the assignment and the coordinator hands it out as sent; session,
//! rebalance, sync and initial-delay deadlines come from the [`Clock`](crate::ports::Clock)
//! port. Static members (`group.instance.id`) restart without a rebalance and fence their
//! old member id. Committed offsets are durable in the metadata store before a commit is
//! acknowledged; each group belongs to a coordinator shard whose epoch fences the writes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kafscale_core::group::*;
//! use kafscale_core::ports::{ManualClock, MetadataStore};
//!
//! async fn example(meta: Arc<dyn MetadataStore>) {
//! let clock = Arc::new(ManualClock::new(0));
//! let config = GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() };
//! let coordinator = GroupCoordinator::open(config, meta, clock).await.expect("open");
//! let join = JoinRequest {
//!     group: GroupId::from("app"),
//!     member: None,
//!     instance: None,
//!     session_timeout_ms: 10_000,
//!     rebalance_timeout_ms: 10_000,
//!     protocol_type: "consumer".into(),
//!     protocols: vec![Protocol { name: "range".into(), metadata: Default::default() }],
//!     require_known_member_id: false,
//!     client_id: "c1".into(),
//!     client_host: "/127.0.0.1".into(),
//! };
//! let joined = coordinator.join(join).await.expect("join");
//! assert_eq!(joined.generation, GenerationId(1));
//! assert_eq!(joined.leader, joined.member);
//! }
//! ```

mod coordinator;
mod error;
#[allow(clippy::module_inception)]
mod group;
mod join;
pub mod keys;
mod member;
mod membership;
mod offsets;
mod shard;
mod snapshot;
mod stable_offsets;
mod txn_offsets;
mod types;

#[cfg(test)]
pub(crate) mod tests;

pub use coordinator::GroupCoordinator;
pub use error::{GroupError, GroupResult};
pub use member::Step;
pub use offsets::{PartitionResults, SubscriptionReader};
pub use shard::{ShardRecord, ShardStatus};
pub use stable_offsets::StableOffsets;
pub use txn_offsets::TxnProducer;
pub use types::*;

use crate::types::{BrokerId, Millis};

/// Settings of the coordinator (Kafka's names in brackets).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub broker_id: BrokerId,
    /// [group.min.session.timeout.ms]
    pub min_session_timeout_ms: i32,
    /// [group.max.session.timeout.ms]
    pub max_session_timeout_ms: i32,
    /// [group.initial.rebalance.delay.ms] How long the first join of an empty group waits
    /// for more members; 0 = no delay.
    pub initial_rebalance_delay_ms: Millis,
    /// [offset.metadata.max.bytes]
    pub max_metadata_bytes: usize,
    /// How long an empty group without committed offsets is kept.
    pub empty_group_retention_ms: Millis,
}

/// Kafka's defaults; the initial delay is a broker setting and comes from the registry.
impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            broker_id: BrokerId(0),
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: crate::settings::GROUP_INITIAL_REBALANCE_DELAY_MS
                .default_int(),
            max_metadata_bytes: 4096,
            empty_group_retention_ms: 600_000,
        }
    }
}
