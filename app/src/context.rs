//! What every request handler needs: the log, the configuration and how clients reach us.

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::acl_store::AclCache;
use kafscale_core::cluster::{Cluster, ListenerEndpoint};
use kafscale_core::group::GroupCoordinator;
use kafscale_core::log::LogService;
use kafscale_core::ports::MetadataStore;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::session::Session;
use kafscale_adapters::HealthTracker;

pub struct Context {
    pub log: LogService,
    pub config: Config,
    /// Where clients reach this broker on each listener (Metadata answers with the one the
    /// request came in on), in the configured order.
    pub endpoints: Vec<ListenerEndpoint>,
    /// The metadata store: SCRAM users are read from it at each login.
    pub meta: Arc<dyn MetadataStore>,
    /// Seeds the salts shown for unknown SCRAM users (shared by all brokers); empty when no
    /// listener uses SASL.
    pub sasl_secret: Vec<u8>,
    /// Failed logins per client address, which slow that address's further attempts.
    pub logins: crate::security::limiter::LoginLimiter,
    /// The ACLs, kept current by a watch; consulted only when an authorizer is configured.
    pub acls: Arc<AclCache>,
    pub cluster_id: String,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Transactional ids, placed on the group coordinator shards.
    pub txns: Arc<kafscale_core::txn::TxnCoordinator>,
    /// Brokers, controller, and who coordinates which group shard.
    pub cluster: Cluster,
    /// The other brokers, reached on the inter-broker listener.
    pub peers: Arc<crate::inter_broker::InterBroker>,
    /// Transactions the produce path verified with their coordinators on other brokers.
    pub verified: Arc<crate::txn_verify::Verified>,
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
    /// Whether the session may do `operation` on `resource`: always when no authorizer is
    /// configured. Every denial is audited, and with `audit.log.allows` every check an
    /// authorizer allowed.
    pub fn authorized(&self, session: &Session, operation: Operation, resource: &Resource) -> bool {
        let allowed = self.allows(session, operation, resource);
        if !allowed || (self.config.audit_allows && self.config.authorization.is_some()) {
            crate::audit::authorization(self, session, operation, resource, allowed);
        }
        allowed
    }

    /// The decision alone, for what reports permissions rather than uses them (the
    /// authorized-operations bit fields).
    pub fn allows(&self, session: &Session, operation: Operation, resource: &Resource) -> bool {
        let Some(policy) = &self.config.authorization else {
            return true;
        };
        self.acls.get().authorize(
            policy,
            session.acl_principal(),
            session.acl_host(),
            operation,
            resource,
        )
    }

    /// Kafka's authorized-operations bit field of a resource: bit N set when operation N
    /// (Kafka's numbering) is allowed.
    pub fn authorized_operations(
        &self,
        session: &Session,
        resource: &Resource,
        operations: &[Operation],
    ) -> i32 {
        operations
            .iter()
            .filter(|op| self.allows(session, **op, resource))
            .fold(0, |bits, op| {
                bits | (1 << crate::acl_codes::operation_code(*op))
            })
    }

    /// [`Self::authorized`] on a topic.
    pub fn topic_authorized(&self, session: &Session, operation: Operation, topic: &str) -> bool {
        self.authorized(
            session,
            operation,
            &Resource::new(ResourceType::Topic, topic),
        )
    }

    /// [`Self::authorized`] on a group.
    pub fn group_authorized(&self, session: &Session, operation: Operation, group: &str) -> bool {
        self.authorized(
            session,
            operation,
            &Resource::new(ResourceType::Group, group),
        )
    }

    /// [`Self::authorized`] on the cluster.
    pub fn cluster_authorized(&self, session: &Session, operation: Operation) -> bool {
        self.authorized(session, operation, &Resource::cluster())
    }

    /// This broker's host and port on a listener.
    pub fn own_endpoint(&self, listener: &str) -> Option<(String, u16)> {
        self.endpoints
            .iter()
            .find(|e| e.name == listener)
            .map(|e| (e.host.clone(), e.port))
    }

    /// Live brokers reachable on `listener`, this one always included, by id.
    pub fn live_brokers(&self, listener: &str) -> Vec<BrokerEndpoint> {
        let me = self.log.broker_id();
        let mut list: Vec<BrokerEndpoint> = self
            .cluster
            .brokers()
            .into_iter()
            .filter(|b| b.id != me)
            .filter_map(|b| {
                let (host, port) = b.endpoint(listener)?;
                Some(BrokerEndpoint {
                    id: b.id.0,
                    host: host.to_owned(),
                    port: i32::from(port),
                    rack: b.rack.clone(),
                })
            })
            .collect();
        if let Some((host, port)) = self.own_endpoint(listener) {
            list.push(BrokerEndpoint {
                id: me.0,
                host,
                port: i32::from(port),
                rack: self.config.cluster.rack.clone(),
            });
        }
        list.sort_by_key(|b| b.id);
        list
    }

    /// The live leader of a partition, its epoch and how to reach it: what a
    /// NOT_LEADER_OR_FOLLOWER answer tells clients that understand it (KIP-951).
    pub fn current_leader(
        &self,
        key: kafscale_core::PartitionKey,
        listener: &str,
    ) -> Option<(i32, BrokerEndpoint)> {
        let info = self.log.partition_info(key).ok()?;
        let leader = info.leader?;
        let endpoint = self
            .live_brokers(listener)
            .into_iter()
            .find(|b| b.id == leader.0)?;
        Some((info.leader_epoch.0, endpoint))
    }

    /// The controller; any broker can create topics here, so this one stands in while no
    /// controller is known (the Java admin client sends some requests to the controller).
    pub fn controller_id(&self) -> i32 {
        self.cluster.controller().unwrap_or(self.log.broker_id()).0
    }
}
