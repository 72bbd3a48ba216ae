//! A small Kafka client for the command-line tool: one connection per broker, API versions
//! negotiated with ApiVersions, brokers and leaders learned from Metadata, group
//! coordinators from FindCoordinator.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafscale_adapters::SystemClock;
use kafscale_core::ports::Clock;
use kafscale_core::retry::Backoff;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

pub use super::conn::Conn;
pub use super::error::{error_name, is_retriable, CliError};
pub use super::security::ClientSecurity;

/// How often a request that failed with a retriable error is tried.
pub const ATTEMPTS: u32 = 5;

/// Waits between attempts: 100 ms, doubling up to 600 ms.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(600));

/// Waits after attempt `attempt` (from 0) failed, a little longer each time.
pub async fn backoff(attempt: u32) {
    SystemClock::new()
        .sleep(BACKOFF.delay(attempt.saturating_add(1)))
        .await;
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// What a coordinator is looked up for (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKey {
    Group,
    Transaction,
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub id: i32,
    /// `None` when the partition has no leader right now.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
        }
    }
}

/// Connections to the brokers of one cluster.
pub struct Client {
    timeout: Duration,
    /// How every connection of this client is made, the bootstrap one and those to brokers.
    security: Arc<ClientSecurity>,
    bootstrap: Conn,
    /// Connections by broker id, opened on first use.
    conns: BTreeMap<i32, Conn>,
    brokers: BTreeMap<i32, BrokerInfo>,
    pub controller_id: Option<i32>,
    pub cluster_id: Option<String>,
}

impl Client {
    /// A client over plain TCP without authentication.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Client, CliError> {
        Client::connect_secure(bootstrap, Arc::default(), timeout).await
    }

    pub async fn connect_secure(
        bootstrap: &str,
        security: Arc<ClientSecurity>,
        timeout: Duration,
    ) -> Result<Client, CliError> {
        let conn = Conn::open(bootstrap, &security, timeout).await?;
        Ok(Client {
            timeout,
            security,
            bootstrap: conn,
            conns: BTreeMap::new(),
            brokers: BTreeMap::new(),
            controller_id: None,
            cluster_id: None,
        })
    }

    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    /// Metadata for the given topics (`None`: all), never creating topics. Also refreshes
    /// what the client knows of brokers and the controller.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, CliError> {
        self.metadata_creating(topics, false).await
    }

    /// Metadata, asking the broker to create missing topics when `auto_create` (it does so
    /// only if it auto-creates topics), as producers ask.
    async fn metadata_creating(
        &mut self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<MetadataResponse, CliError> {
        // v4 is the first that can ask not to auto-create topics.
        let v = self
            .bootstrap
            .version(ApiKey::Metadata, 4..=12, "every command")?;
        let mut req = MetadataRequest::default();
        req.allow_auto_topic_creation = auto_create;
        req.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    let mut t =
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                    t.name = Some(topic_name(n));
                    t
                })
                .collect()
        });
        let resp = self.bootstrap.call(v, &req).await?;
        for b in &resp.brokers {
            let info = BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            };
            // A broker that moved gets a new connection.
            if self
                .brokers
                .get(&info.id)
                .is_some_and(|old| old.addr() != info.addr())
            {
                self.conns.remove(&info.id);
            }
            self.brokers.insert(info.id, info);
        }
        self.controller_id = (resp.controller_id.0 >= 0).then_some(resp.controller_id.0);
        self.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        Ok(resp)
    }

    /// One topic's partitions and leaders; an unknown topic is an error.
    pub async fn topic(&mut self, name: &str) -> Result<TopicInfo, CliError> {
        self.topic_creating(name, false).await
    }

    /// One topic's partitions and leaders, for producing: a missing topic is created where
    /// the broker auto-creates topics (as Kafka's console producer does), an error elsewhere.
    pub async fn topic_to_produce(&mut self, name: &str) -> Result<TopicInfo, CliError> {
        self.topic_creating(name, true).await
    }

    async fn topic_creating(&mut self, name: &str, create: bool) -> Result<TopicInfo, CliError> {
        for attempt in 0..ATTEMPTS {
            let resp = self
                .metadata_creating(Some(&[name.to_owned()]), create)
                .await?;
            let Some(t) = resp.topics.into_iter().next() else {
                return Err(CliError::UnknownTopic(name.to_owned()));
            };
            let info = topic_info(t);
            match info {
                Ok(info) if info.partitions.iter().all(|p| p.leader.is_some()) => return Ok(info),
                Ok(info) if attempt + 1 == ATTEMPTS => return Ok(info),
                Ok(_) => {}
                Err(3) => return Err(CliError::UnknownTopic(name.to_owned())),
                Err(code) if is_retriable(code) && attempt + 1 < ATTEMPTS => {}
                Err(code) => return Err(CliError::kafka(format!("topic {name}"), code, None)),
            }
            backoff(attempt).await;
        }
        Err(CliError::UnknownTopic(name.to_owned()))
    }

    /// The connection to a broker, opened on first use.
    pub async fn broker(&mut self, id: i32) -> Result<&mut Conn, CliError> {
        if !self.brokers.contains_key(&id) {
            self.metadata(Some(&[])).await?;
        }
        let addr = match self.brokers.get(&id) {
            Some(b) => b.addr(),
            None => {
                return Err(CliError::Invalid(format!(
                    "broker {id} is not in the cluster metadata"
                )))
            }
        };
        match self.conns.entry(id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => {
                let conn = Conn::open(&addr, &self.security, self.timeout).await?;
                Ok(v.insert(conn))
            }
        }
    }

    /// Sends a request to a broker in the highest version both speak within `ours`. A
    /// broker that cannot be reached loses its connection, so the next call opens a new one.
    pub async fn call_broker<R: Request>(
        &mut self,
        id: i32,
        key: ApiKey,
        ours: RangeInclusive<i16>,
        needed_by: &str,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, CliError> {
        let result = async {
            let conn = self.broker(id).await?;
            let v = conn.version(key, ours, needed_by)?;
            conn.call(v, &build(v)).await
        }
        .await;
        if result.as_ref().is_err_and(CliError::is_transport) {
            self.forget(id);
        }
        result
    }

    /// Forgets a broker's connection (after an I/O error or a change of leader).
    pub fn forget(&mut self, id: i32) {
        self.conns.remove(&id);
    }

    /// The controller, where topics are created and deleted.
    pub async fn controller(&mut self) -> Result<&mut Conn, CliError> {
        if self.controller_id.is_none() {
            self.metadata(Some(&[])).await?;
        }
        match self.controller_id {
            Some(id) => self.broker(id).await,
            // No controller known: any broker forwards or answers NOT_CONTROLLER.
            None => Ok(&mut self.bootstrap),
        }
    }

    /// The broker id of a group's coordinator.
    pub async fn coordinator(&mut self, group: &str) -> Result<i32, CliError> {
        self.coordinator_of(CoordinatorKey::Group, group).await
    }

    /// The broker id of the coordinator of a group or a transactional id.
    pub async fn coordinator_of(
        &mut self,
        kind: CoordinatorKey,
        key: &str,
    ) -> Result<i32, CliError> {
        let (key_type, what, min) = match kind {
            CoordinatorKey::Group => (0, "group", 0),
            // Key types arrived with v1.
            CoordinatorKey::Transaction => (1, "transactional id", 1),
        };
        let v = self
            .bootstrap
            .version(ApiKey::FindCoordinator, min..=6, "coordinator lookups")?;
        for attempt in 0..ATTEMPTS {
            let mut req = FindCoordinatorRequest::default();
            req.key_type = key_type;
            if v >= 4 {
                req.coordinator_keys = vec![str_bytes(key)];
            } else {
                req.key = str_bytes(key);
            }
            let resp = self.bootstrap.call(v, &req).await?;
            let (code, message, node, host, port) = if v >= 4 {
                match resp.coordinators.into_iter().next() {
                    Some(c) => (c.error_code, c.error_message, c.node_id, c.host, c.port),
                    None => {
                        return Err(CliError::Invalid(format!(
                            "FindCoordinator for {what} {key}: empty answer"
                        )))
                    }
                }
            } else {
                (
                    resp.error_code,
                    resp.error_message,
                    resp.node_id,
                    resp.host,
                    resp.port,
                )
            };
            if code == 0 {
                let info = BrokerInfo {
                    id: node.0,
                    host: host.to_string(),
                    port,
                    rack: None,
                };
                if self
                    .brokers
                    .get(&info.id)
                    .is_none_or(|old| old.addr() != info.addr())
                {
                    self.conns.remove(&info.id);
                    self.brokers.insert(info.id, info);
                }
                return Ok(node.0);
            }
            if !is_retriable(code) || attempt + 1 == ATTEMPTS {
                return Err(CliError::kafka(
                    format!("coordinator of {what} {key}"),
                    code,
                    message.as_ref(),
                ));
            }
            backoff(attempt).await;
        }
        Err(CliError::Invalid(format!(
            "no coordinator for {what} {key}"
        )))
    }

    /// Offsets of the given partitions of a topic (earliest or latest), asked of each
    /// partition's leader, retried after a change of leader.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        let mut out = BTreeMap::new();
        let mut pending: Vec<i32> = partitions.to_vec();
        for attempt in 0..ATTEMPTS {
            let info = self.topic(topic).await?;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            let mut retry = Vec::new();
            for p in &pending {
                match info.partitions.iter().find(|i| i.id == *p) {
                    None => {
                        return Err(CliError::Invalid(format!(
                            "topic {topic} has no partition {p}"
                        )))
                    }
                    Some(PartitionInfo {
                        leader: Some(l), ..
                    }) => by_leader.entry(*l).or_default().push(*p),
                    Some(_) => retry.push(*p),
                }
            }
            for (leader, parts) in by_leader {
                let build = |_v: i16| {
                    let mut req = ListOffsetsRequest::default();
                    req.replica_id = BrokerId(-1);
                    let mut t = ListOffsetsTopic::default();
                    t.name = topic_name(topic);
                    t.partitions = parts
                        .iter()
                        .map(|p| {
                            let mut lp = ListOffsetsPartition::default();
                            lp.partition_index = *p;
                            lp.current_leader_epoch = -1;
                            lp.timestamp = spec.timestamp();
                            lp
                        })
                        .collect();
                    req.topics = vec![t];
                    req
                };
                let called = self
                    .call_broker(leader, ApiKey::ListOffsets, 1..=7, "offsets", build)
                    .await;
                let resp = match called {
                    Ok(r) => r,
                    // The leader is gone: ask again who leads.
                    Err(e) if e.is_transport() && attempt + 1 < ATTEMPTS => {
                        retry.extend(&parts);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code == 0 {
                            out.insert(p.partition_index, p.offset);
                        } else if is_retriable(p.error_code) && attempt + 1 < ATTEMPTS {
                            retry.push(p.partition_index);
                        } else if p.error_code == 3 {
                            return Err(CliError::UnknownTopic(topic.to_owned()));
                        } else {
                            return Err(CliError::kafka(
                                format!("offsets of {topic}/{}", p.partition_index),
                                p.error_code,
                                None,
                            ));
                        }
                    }
                }
            }
            if retry.is_empty() {
                return Ok(out);
            }
            pending = retry;
            backoff(attempt).await;
        }
        Err(CliError::Invalid(format!(
            "no leader for partitions {pending:?} of {topic}"
        )))
    }
}

/// A Metadata topic as `TopicInfo`, or its error code.
fn topic_info(
    t: kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Result<TopicInfo, i16> {
    if t.error_code != 0 {
        return Err(t.error_code);
    }
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .into_iter()
        .map(|p| PartitionInfo {
            id: p.partition_index,
            leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            error_code: p.error_code,
        })
        .collect();
    partitions.sort_by_key(|p| p.id);
    Ok(TopicInfo {
        name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
        id: t.topic_id,
        internal: t.is_internal,
        partitions,
    })
}

/// Topics of a Metadata response that carry no error, sorted by name.
pub fn topics_of(resp: MetadataResponse) -> Vec<TopicInfo> {
    let mut out: Vec<TopicInfo> = resp
        .topics
        .into_iter()
        .filter_map(|t| topic_info(t).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
