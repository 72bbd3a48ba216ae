//! What every request handler needs: the log, the configuration and how clients reach us.

use kafscale_core::cluster::Cluster;
use kafscale_core::group::GroupCoordinator;
use kafscale_core::log::LogService;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use kafscale_adapters::HealthTracker;

pub struct Context {
    pub log: LogService,
    pub config: Config,
    /// Host and port returned in Metadata.
    pub advertised: (String, u16),
    pub cluster_id: String,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Brokers, controller, and who coordinates which group shard.
    pub cluster: Cluster,
    pub metrics: Metrics,
    /// Health of the object store, from what its requests experience.
    pub storage_health: Arc<HealthTracker>,
}
