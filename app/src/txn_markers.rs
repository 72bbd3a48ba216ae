//! Writes the markers of a transaction the coordinator ends: a commit or abort control
//! batch into each of its partitions, appended through the leader's normal flush and
//! commit, and the settlement of the offsets it staged in each of its groups.
//!
//! A partition this broker leads gets its marker here; the others' leaders get theirs by
//! WriteTxnMarkers (Kafka's broker-to-broker API 27) on the inter-broker listener, and
//! append it through the same path ([`append_marker`]). A partition whose leader moved or
//! whose answer failed is looked up again and retried (a few attempts, with backoff);
//! what still fails leaves the transaction prepared, and the coordinator's timer completes
//! it later. The offsets staged in a group are settled by the broker coordinating the
//! group's shard: here, or by a WriteTxnMarkers entry for [`GROUP_OFFSETS_TOPIC`] whose
//! partition is the shard (as Kafka marks a group's `__consumer_offsets` partition).

use async_trait::async_trait;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, WriteTxnMarkersRequest};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafscale_core::batch;
use kafscale_core::cluster::Cluster;
use kafscale_core::group::keys::{self, ShardId, SHARDS};
use kafscale_core::group::{GroupCoordinator, GroupId, TxnProducer};
use kafscale_core::log::{AppendRequest, AppendTicket, LogService};
use kafscale_core::ports::Clock;
use kafscale_core::retry::{Backoff, Retry};
use kafscale_core::txn::{MarkerWriter, Markers, TxnError, TxnPartition, TxnResult};
use kafscale_core::{PartitionId, PartitionKey};

use crate::cli::client::topic_name;
use crate::errors::{error_name, RequestError};
use crate::inter_broker::InterBroker;
use crate::txn_verify::Verified;

/// Attempts at the partitions of one transaction before it is left to the timer.
const ATTEMPTS: u32 = 4;
/// Waits between them: 100 ms, doubling up to 1 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// WriteTxnMarkers v1, the first flexible version (v0 is gone from Kafka 4).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// The topic name of a group coordinator shard in WriteTxnMarkers (the partition is the
/// shard): settle the offsets the producer staged in the shard's groups.
pub const GROUP_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Settles the offsets the producer staged in the groups of `shard`, coordinated here.
pub async fn settle_group_offsets(
    groups: &GroupCoordinator,
    shard: u32,
    m: &MarkerFields,
) -> Result<(), RequestError> {
    if shard >= SHARDS {
        return Err(RequestError::UnknownTopicOrPartition);
    }
    if !groups.shard_loaded(ShardId(shard)) {
        return Err(RequestError::CoordinatorMoving);
    }
    groups
        .complete_shard_txn_offsets(ShardId(shard), m.producer(), m.commit)
        .await
        .map_err(RequestError::Group)
}

/// Appends the commit or abort marker of producer `producer_id` to a partition this broker
/// leads, through the normal flush and commit. None: the topic is gone (nothing to mark).
/// The producer's transaction there is over for `verified` too.
pub fn append_marker(
    log: &LogService,
    verified: &Verified,
    topic: &str,
    partition: i32,
    m: &MarkerFields,
) -> kafscale_core::Result<Option<AppendTicket>> {
    let Some(record) = log.topic(topic) else {
        return Ok(None);
    };
    let key = PartitionKey {
        topic: record.id,
        partition: PartitionId(partition),
    };
    verified.ended(key, m.producer_id);
    let marker = batch::build_marker(
        m.producer_id,
        m.epoch,
        m.commit,
        m.coordinator_epoch,
        log.now_ms(),
    );
    log.append(AppendRequest {
        partition: key,
        batch: marker,
        wait: true,
    })
}

/// What a marker says, as the coordinator and WriteTxnMarkers both give it.
#[derive(Debug, Clone, Copy)]
pub struct MarkerFields {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl MarkerFields {
    /// The producer and epoch the marker settles staged group offsets for.
    pub fn producer(&self) -> TxnProducer {
        TxnProducer {
            producer_id: self.producer_id,
            epoch: self.epoch,
        }
    }
}

impl From<&Markers> for MarkerFields {
    fn from(m: &Markers) -> MarkerFields {
        MarkerFields {
            producer_id: m.producer_id,
            epoch: m.epoch,
            commit: m.commit,
            coordinator_epoch: m.coordinator_epoch,
        }
    }
}

/// The appended marker, once durable: Ok(()) also when the topic is gone.
pub async fn marker_written(
    appended: kafscale_core::Result<Option<AppendTicket>>,
) -> Result<(), RequestError> {
    match appended {
        Ok(None) => Ok(()),
        Ok(Some(ticket)) => match ticket.await {
            Ok(result) => result.map(|_| ()).map_err(RequestError::from),
            Err(_) => Err(RequestError::from(kafscale_core::Error::ShuttingDown)),
        },
        Err(e) => Err(RequestError::from(e)),
    }
}

/// The marker writer of the transaction coordinator.
pub struct ClusterMarkers {
    pub log: LogService,
    pub groups: Arc<GroupCoordinator>,
    /// Who leads what.
    pub cluster: Cluster,
    /// The other brokers, on the inter-broker listener.
    pub peers: Arc<InterBroker>,
    /// Transactions verified with their coordinators: a marker ends them.
    pub verified: Arc<Verified>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
#[error("{failed} of the transaction's partitions have no marker yet; the last failure: {last}")]
struct PartitionsLeft {
    failed: usize,
    last: String,
}

impl ClusterMarkers {
    /// One round over `pending`: the partitions still without a marker, and why the last
    /// of them failed.
    async fn round(
        &self,
        fields: MarkerFields,
        pending: Vec<TxnPartition>,
    ) -> Vec<(TxnPartition, String)> {
        let me = self.log.broker_id();
        let mut local = Vec::new();
        let mut remote: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
        let mut shards = Vec::new();
        for p in pending {
            if p.topic == GROUP_OFFSETS_TOPIC {
                let owner = u32::try_from(p.partition)
                    .ok()
                    .and_then(|s| self.cluster.shard_owner(s))
                    .map(|b| b.id);
                match owner {
                    Some(id) if id != me => remote.entry(id.0).or_default().push(p),
                    _ => shards.push(p),
                }
                continue;
            }
            let leader = self.log.topic(&p.topic).and_then(|t| {
                let key = PartitionKey {
                    topic: t.id,
                    partition: PartitionId(p.partition),
                };
                self.log.partition_info(key).ok()?.leader
            });
            match leader {
                Some(id) if id != me => remote.entry(id.0).or_default().push(p),
                // Here, or unknown (the local append answers why).
                _ => local.push(p),
            }
        }
        let mut failed = Vec::new();
        let tickets: Vec<_> = local
            .into_iter()
            .map(|p| {
                let appended =
                    append_marker(&self.log, &self.verified, &p.topic, p.partition, &fields);
                (p, appended)
            })
            .collect();
        for (p, appended) in tickets {
            if let Err(e) = marker_written(appended).await {
                failed.push((p, e.to_string()));
            }
        }
        for p in shards {
            let shard = u32::try_from(p.partition).unwrap_or(u32::MAX);
            if let Err(e) = settle_group_offsets(&self.groups, shard, &fields).await {
                failed.push((p, e.to_string()));
            }
        }
        // One request per broker, all at once.
        let sends = remote
            .into_iter()
            .map(|(broker, partitions)| self.send(broker, fields, partitions));
        failed.extend(futures::future::join_all(sends).await.into_iter().flatten());
        failed
    }

    /// WriteTxnMarkers to one broker: the partitions it did not mark, and why.
    async fn send(
        &self,
        broker: i32,
        fields: MarkerFields,
        partitions: Vec<TxnPartition>,
    ) -> Vec<(TxnPartition, String)> {
        let all_failed = |partitions: Vec<TxnPartition>, why: String| {
            partitions.into_iter().map(|p| (p, why.clone())).collect()
        };
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for p in &partitions {
            by_topic.entry(&p.topic).or_default().push(p.partition);
        }
        let mut marker = WritableTxnMarker::default();
        marker.producer_id = ProducerId(fields.producer_id);
        marker.producer_epoch = fields.epoch;
        marker.transaction_result = fields.commit;
        marker.coordinator_epoch = fields.coordinator_epoch;
        marker.topics = by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = topic_name(topic);
                t.partition_indexes = indexes;
                t
            })
            .collect();
        let mut req = WriteTxnMarkersRequest::default();
        req.markers = vec![marker];
        let resp = match self
            .peers
            .call(broker, WRITE_TXN_MARKERS_VERSION, &req)
            .await
        {
            Ok(resp) => resp,
            Err(e) => return all_failed(partitions, e.to_string()),
        };
        let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
        for m in resp.markers {
            for t in m.topics {
                for p in t.partitions {
                    codes.insert((t.name.to_string(), p.partition_index), p.error_code);
                }
            }
        }
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        partitions
            .into_iter()
            .filter_map(|p| {
                let code = codes.get(&(p.topic.clone(), p.partition)).copied();
                match code {
                    // Marked, or deleted since (nothing left to mark).
                    Some(0) => None,
                    Some(c) if c == unknown => None,
                    Some(c) => Some((p, format!("broker {broker}: {}", error_name(c)))),
                    None => Some((p, format!("broker {broker} did not answer for it"))),
                }
            })
            .collect()
    }
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> TxnError {
    TxnError::Markers(Box::new(e))
}

#[async_trait]
impl MarkerWriter for ClusterMarkers {
    async fn write_markers(&self, m: &Markers) -> TxnResult<()> {
        let fields = MarkerFields::from(m);
        let mut pending = m.partitions.clone();
        let mut shards: Vec<u32> = m
            .groups
            .iter()
            .map(|g| keys::shard_of(&GroupId(g.clone())).0)
            .collect();
        shards.sort_unstable();
        shards.dedup();
        pending.extend(shards.into_iter().map(|shard| TxnPartition {
            topic: GROUP_OFFSETS_TOPIC.to_owned(),
            partition: i32::try_from(shard).unwrap_or(i32::MAX),
        }));
        let mut attempts = Retry::new(self.clock.as_ref(), BACKOFF).limit(ATTEMPTS);
        while !pending.is_empty() {
            let left = self.round(fields, pending).await;
            let Some((_, last)) = left.last() else {
                break;
            };
            if attempts.exhausted() {
                return Err(failed(PartitionsLeft {
                    failed: left.len(),
                    last: last.clone(),
                }));
            }
            tracing::debug!(
                transactional_id = %m.transactional_id,
                partitions = left.len(),
                reason = %last,
                "retrying transaction markers"
            );
            pending = left.into_iter().map(|(p, _)| p).collect();
            attempts.wait().await;
        }
        Ok(())
    }
}
