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

/// A broker as clients see it.
pub struct BrokerEndpoint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Context {
    /// Live brokers, this one always included, by id.
    pub fn live_brokers(&self) -> Vec<BrokerEndpoint> {
        let me = self.log.broker_id();
        let mut list: Vec<BrokerEndpoint> = self
            .cluster
            .brokers()
            .into_iter()
            .filter(|b| b.id != me)
            .map(|b| BrokerEndpoint {
                id: b.id.0,
                host: b.host,
                port: i32::from(b.port),
                rack: b.rack,
            })
            .collect();
        list.push(BrokerEndpoint {
            id: me.0,
            host: self.advertised.0.clone(),
            port: i32::from(self.advertised.1),
            rack: self.config.cluster.rack.clone(),
        });
        list.sort_by_key(|b| b.id);
        list
    }

    /// The live leader of a partition, its epoch and how to reach it: what a
    /// NOT_LEADER_OR_FOLLOWER answer tells clients that understand it (KIP-951).
    pub fn current_leader(
        &self,
        key: kafscale_core::PartitionKey,
    ) -> Option<(i32, BrokerEndpoint)> {
        let info = self.log.partition_info(key).ok()?;
        let leader = info.leader?;
        let endpoint = self.live_brokers().into_iter().find(|b| b.id == leader.0)?;
        Some((info.leader_epoch.0, endpoint))
    }

    /// The controller; any broker can create topics here, so this one stands in while no
    /// controller is known (the Java admin client sends some requests to the controller).
    pub fn controller_id(&self) -> i32 {
        self.cluster.controller().unwrap_or(self.log.broker_id()).0
    }
}
