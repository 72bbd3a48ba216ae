//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and DeleteGroups. A commit is
//! acknowledged only after its fenced metadata transaction succeeded.
//!
//! A commit writes only the offsets that changed (a consumer auto-committing idle partitions
//! writes nothing for them), in compact binary values, in one transaction per request (a
//! request committing more than a transaction may hold is split; each part is atomic).

use std::collections::BTreeSet;

use super::coordinator::GroupCoordinator;
use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::keys;
use super::types::{CommitRequest, CommittedOffset, GroupId, GroupState, OffsetKey};
use crate::ports::metadata::MAX_TXN_OPS;
use crate::ports::{Txn, TxnOp};
use crate::schema::records::OffsetRecord;

/// Offsets per transaction: the fence compare plus puts stay under etcd's limit. A larger
/// commit is split; each part is atomic.
const OFFSETS_PER_TXN: usize = MAX_TXN_OPS - 1;

/// Per partition: Ok, or why it was not committed.
pub type PartitionResults = Vec<(OffsetKey, GroupResult<()>)>;

/// Reads the topics a member's protocol metadata subscribes to; None if it cannot tell.
pub type SubscriptionReader<'a> = &'a (dyn Fn(&[u8]) -> Option<Vec<String>> + Sync);

impl GroupCoordinator {
    /// Stores the offsets. Err: the whole request failed (member, generation, coordinator).
    pub async fn commit(&self, req: CommitRequest) -> GroupResult<PartitionResults> {
        Self::check_group_id(&req.group)?;
        self.check_coordinator(&req.group)?;
        let shard = keys::shard_of(&req.group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(&req.group)?;
        let now = self.now();
        {
            let mut groups = self.lock();
            let simple = req.generation.is_none() && req.member.is_none();
            let group = match groups.get_mut(&req.group) {
                Some(g) => g,
                None if simple => groups
                    .entry(req.group.clone())
                    .or_insert_with(|| Group::new(req.group.clone(), now)),
                None => {
                    return Err(GroupError::IllegalGeneration {
                        requested: req.generation.unwrap_or(super::GenerationId(-1)),
                        current: super::GenerationId(0),
                    })
                }
            };
            group.validate_commit(&req, now)?;
        }
        let max = self.config.max_metadata_bytes;
        let mut results = Vec::with_capacity(req.offsets.len());
        let mut writes = Vec::new();
        let mut unchanged = Vec::new();
        {
            let groups = self.lock();
            let current = groups.get(&req.group);
            for (key, mut value) in req.offsets {
                if value.metadata.len() > max {
                    let size = value.metadata.len();
                    results.push((key, Err(GroupError::MetadataTooLarge { size, max })));
                    continue;
                }
                value.commit_ms = now;
                let same = current.and_then(|g| g.offsets.get(&key)).is_some_and(|c| {
                    c.offset == value.offset
                        && c.leader_epoch == value.leader_epoch
                        && c.metadata == value.metadata
                        && c.topic_id == value.topic_id
                });
                if same {
                    unchanged.push((key, value));
                } else {
                    writes.push((key, value));
                }
            }
        }
        if !unchanged.is_empty() {
            // Nothing to write: the stored value already says this. The time of the commit
            // is kept in memory only.
            let mut groups = self.lock();
            if let Some(group) = groups.get_mut(&req.group) {
                for (key, value) in unchanged {
                    group.offsets.insert(key.clone(), value);
                    results.push((key, Ok(())));
                }
            }
        }
        for chunk in writes.chunks(OFFSETS_PER_TXN) {
            let mut txn = Txn::new().when(fence.clone());
            for (key, value) in chunk {
                txn = txn.then(TxnOp::Put {
                    key: crate::schema::keys::offset(&req.group, key),
                    value: OffsetRecord::encode(value),
                    lease: None,
                });
            }
            match self.write_offsets(&req.group, txn).await {
                None => {
                    let mut groups = self.lock();
                    let group = groups
                        .entry(req.group.clone())
                        .or_insert_with(|| Group::new(req.group.clone(), now));
                    for (key, value) in chunk {
                        group.offsets.insert(key.clone(), value.clone());
                        results.push((key.clone(), Ok(())));
                    }
                }
                Some(error) => {
                    for (key, _) in chunk {
                        results.push((key.clone(), Err(error(req.group.clone()))));
                    }
                }
            }
        }
        Ok(results)
    }

    /// Writes a fenced transaction of a group's offsets. On failure, the error each of its
    /// offsets gets: the shard was lost (fenced), or the outcome is unknown and the client
    /// retries the (idempotent) commit.
    pub(super) async fn write_offsets(
        &self,
        group: &GroupId,
        txn: Txn,
    ) -> Option<fn(GroupId) -> GroupError> {
        match self.meta.txn(txn).await {
            Ok(o) if o.succeeded => None,
            Ok(_) => {
                self.lose_shard(keys::shard_of(group));
                Some(GroupError::NotCoordinator)
            }
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "offset commit failed");
                Some(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Committed offsets of the given partitions (None where nothing is committed), or of
    /// every committed partition when `partitions` is None.
    pub fn fetch_offsets(
        &self,
        group: &GroupId,
        partitions: Option<&[OffsetKey]>,
    ) -> GroupResult<Vec<(OffsetKey, Option<CommittedOffset>)>> {
        self.check_coordinator(group)?;
        let groups = self.lock();
        let g = groups.get(group);
        Ok(match partitions {
            Some(ps) => ps
                .iter()
                .map(|k| (k.clone(), g.and_then(|g| g.offsets.get(k).cloned())))
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Deletes an Empty group and its offsets.
    pub async fn delete_group(&self, group: &GroupId) -> GroupResult<()> {
        self.check_coordinator(group)?;
        let shard = keys::shard_of(group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(group)?;
        {
            let mut groups = self.lock();
            let g = groups
                .get_mut(group)
                .filter(|g| g.state != GroupState::Dead)
                .ok_or_else(|| GroupError::GroupNotFound(group.clone()))?;
            if g.state != GroupState::Empty {
                return Err(GroupError::NonEmptyGroup(group.clone()));
            }
            // Dead while the delete is in flight: joins and commits wait it out.
            g.state = GroupState::Dead;
        }
        let txn = Txn::new()
            .when(fence)
            .then(TxnOp::DeletePrefix {
                prefix: keys::group_offsets_prefix(group),
            })
            .then(TxnOp::Delete {
                key: keys::group_state(group),
            });
        let outcome = self.meta.txn(txn).await;
        let mut groups = self.lock();
        match outcome {
            Ok(o) if o.succeeded => {
                groups.remove(group);
                tracing::info!(group = %group, "group deleted");
                Ok(())
            }
            Ok(_) => {
                drop(groups);
                self.lose_shard(shard);
                Err(GroupError::NotCoordinator(group.clone()))
            }
            Err(e) => {
                if let Some(g) = groups.get_mut(group) {
                    g.state = GroupState::Empty;
                }
                Err(e.into())
            }
        }
    }

    /// Deletes committed offsets. A group with members keeps the offsets of the topics it
    /// subscribes to (read from the members' protocol metadata when its type is
    /// "consumer"); other groups with members refuse.
    pub async fn delete_offsets(
        &self,
        group: &GroupId,
        partitions: Vec<OffsetKey>,
        subscriptions: SubscriptionReader<'_>,
    ) -> GroupResult<PartitionResults> {
        self.check_coordinator(group)?;
        let shard = keys::shard_of(group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(group)?;
        let mut results = Vec::new();
        let mut eligible = Vec::new();
        {
            let groups = self.lock();
            let g = groups
                .get(group)
                .filter(|g| g.state != GroupState::Dead)
                .ok_or_else(|| GroupError::GroupNotFound(group.clone()))?;
            let subscribed = if g.state == GroupState::Empty {
                Some(BTreeSet::new())
            } else if g.protocol_type.as_deref() == Some("consumer") {
                subscribed_topics(g, subscriptions)
            } else {
                return Err(GroupError::NonEmptyGroup(group.clone()));
            };
            for key in partitions {
                let protected = subscribed.as_ref().is_none_or(|s| s.contains(&key.topic));
                if protected {
                    let topic = key.topic.clone();
                    results.push((key, Err(GroupError::SubscribedToTopic(topic))));
                } else {
                    eligible.push(key);
                }
            }
        }
        for chunk in eligible.chunks(OFFSETS_PER_TXN) {
            let mut txn = Txn::new().when(fence.clone());
            for key in chunk {
                txn = txn.then(TxnOp::Delete {
                    key: keys::offset(group, key),
                });
            }
            match self.meta.txn(txn).await {
                Ok(o) if o.succeeded => {
                    let mut groups = self.lock();
                    for key in chunk {
                        if let Some(g) = groups.get_mut(group) {
                            g.offsets.remove(key);
                        }
                        results.push((key.clone(), Ok(())));
                    }
                }
                Ok(_) => {
                    self.lose_shard(shard);
                    return Err(GroupError::NotCoordinator(group.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(results)
    }
}

/// Topics the members subscribe to; None (all protected) if any subscription is unreadable.
fn subscribed_topics(g: &Group, read: SubscriptionReader<'_>) -> Option<BTreeSet<String>> {
    let mut topics = BTreeSet::new();
    for m in g.members.values() {
        let protocol = g
            .protocol
            .clone()
            .or_else(|| m.protocols.first().map(|p| p.name.clone()))?;
        topics.extend(read(&m.metadata(&protocol))?);
    }
    Some(topics)
}
