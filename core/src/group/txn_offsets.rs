//! Offsets committed inside a transaction (TxnOffsetCommit): staged in the metadata store
//! under the group's shard (`groups/txn-offsets/<shard>/<group>/<producer id>/...`, each
//! with the producer epoch), under the shard's fence, and invisible to OffsetFetch until the
//! transaction's commit marker moves them to the group's offsets; its abort marker drops
//! them.
//!
//! The shard remembers the newest epoch it has seen of each producer id, from its staged
//! offsets and the markers it settled, so that a fenced producer (a zombie whose
//! transactional id a newer producer initialised) is refused even where this broker does
//! not coordinate the transactional id; and a marker settles only what its own epoch
//! staged: older epochs' offsets are dropped, never committed, and newer ones (a later
//! transaction, when a marker is sent again late) are left staged.

use std::collections::BTreeSet;

use super::coordinator::GroupCoordinator;
use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::keys;
use super::offsets::PartitionResults;
use super::types::{CommitRequest, GroupId};
use crate::ports::metadata::MAX_TXN_OPS;
use crate::ports::{Txn, TxnOp};
use crate::schema::keys as schema_keys;
use crate::schema::records::OffsetRecord;

/// Writes per transaction: the fence compare plus these stay under etcd's limit.
const OPS_PER_TXN: usize = MAX_TXN_OPS - 1;

/// The transactional producer a staging or a settlement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub epoch: i16,
}

impl GroupCoordinator {
    /// Stages a transaction's offsets. The member and generation, when given (v3+), are
    /// checked as an OffsetCommit's are.
    /// A producer id seen here at a newer epoch is refused (ProducerFenced).
    pub async fn stage_txn_offsets(
        &self,
        req: CommitRequest,
        producer: TxnProducer,
    ) -> GroupResult<PartitionResults> {
        Self::check_group_id(&req.group)?;
        self.check_coordinator(&req.group)?;
        let shard = keys::shard_of(&req.group);
        let slot = &self.shards[shard.0 as usize];
        let _writes = slot.writes.lock().await;
        let fence = self.fence(&req.group)?;
        if let Some(current) = self.producer_epoch(shard, producer.producer_id) {
            if producer.epoch < current {
                return Err(GroupError::ProducerFenced {
                    producer_id: producer.producer_id,
                    epoch: producer.epoch,
                    current,
                });
            }
        }
        let now = self.now();
        {
            let mut groups = self.lock();
            if let Some(group) = groups.get_mut(&req.group) {
                group.validate_commit(&req, now)?;
            } else if req.generation.is_some() || req.member.is_some() {
                return Err(GroupError::IllegalGeneration {
                    requested: req.generation.unwrap_or(super::GenerationId(-1)),
                    current: super::GenerationId(0),
                });
            }
        }
        let max = self.config.max_metadata_bytes;
        let mut results = Vec::with_capacity(req.offsets.len());
        let mut writes = Vec::new();
        for (key, mut value) in req.offsets {
            if value.metadata.len() > max {
                let size = value.metadata.len();
                results.push((key, Err(GroupError::MetadataTooLarge { size, max })));
                continue;
            }
            value.commit_ms = now;
            writes.push((key, value));
        }
        for chunk in writes.chunks(OPS_PER_TXN) {
            let mut txn = Txn::new().when(fence.clone());
            for (key, value) in chunk {
                txn = txn.then(TxnOp::Put {
                    key: schema_keys::txn_offset(&req.group, producer.producer_id, key),
                    value: OffsetRecord::encode_staged(value, producer.epoch),
                    lease: None,
                });
            }
            let failure = self.write_offsets(&req.group, txn).await;
            if failure.is_none() {
                self.note_producer_epoch(shard, producer);
            }
            for (key, _) in chunk {
                let r = match failure {
                    None => Ok(()),
                    Some(error) => Err(error(req.group.clone())),
                };
                results.push((key.clone(), r));
            }
        }
        Ok(results)
    }

    /// The newest epoch of the producer id seen in the shard since it was loaded.
    fn producer_epoch(&self, shard: keys::ShardId, producer_id: i64) -> Option<i16> {
        let epochs = self.shards[shard.0 as usize]
            .producer_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        epochs.get(&producer_id).copied()
    }

    fn note_producer_epoch(&self, shard: keys::ShardId, producer: TxnProducer) {
        let mut epochs = self.shards[shard.0 as usize]
            .producer_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let seen = epochs.entry(producer.producer_id).or_insert(producer.epoch);
        *seen = (*seen).max(producer.epoch);
    }

    /// [`Self::complete_txn_offsets`] in every group of `shard` where the producer staged
    /// offsets: what a transaction marker for the shard does when the transaction's
    /// coordinator is on another broker (the marker names the shard, as Kafka's names the
    /// group's offsets partition). A producer's staged offsets all belong to its one open
    /// transaction, so these are the groups of that transaction.
    pub async fn complete_shard_txn_offsets(
        &self,
        shard: keys::ShardId,
        marker: TxnProducer,
        commit: bool,
    ) -> GroupResult<()> {
        {
            // Under the shard's writes: a staging by an older epoch either finished before
            // (and is found below) or is refused.
            let _writes = self.shards[shard.0 as usize].writes.lock().await;
            self.note_producer_epoch(shard, marker);
        }
        let staged = self
            .meta
            .range(&schema_keys::shard_txn_offsets_prefix(shard))
            .await?;
        let groups: BTreeSet<GroupId> = staged
            .kvs
            .iter()
            .filter_map(|kv| schema_keys::parse_txn_offset(&kv.key))
            .filter(|(_, pid, _)| *pid == marker.producer_id)
            .map(|(group, _, _)| group)
            .collect();
        for group in groups {
            self.complete_txn_offsets(&group, marker, commit).await?;
        }
        Ok(())
    }

    /// Settles the offsets a producer staged in a group, as the marker of its transaction
    /// (`marker`: the producer id and the epoch the marker carries) says: committed (those
    /// staged at the marker's epoch become the group's committed offsets) or aborted (they
    /// are dropped). Offsets staged at an older epoch are dropped either way, and those of
    /// a newer one left staged. Doing it again finds nothing to settle and changes nothing.
    pub async fn complete_txn_offsets(
        &self,
        group: &GroupId,
        marker: TxnProducer,
        commit: bool,
    ) -> GroupResult<()> {
        let shard = keys::shard_of(group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(group)?;
        self.note_producer_epoch(shard, marker);
        let prefix = schema_keys::group_txn_offsets_prefix(group, marker.producer_id);
        let staged = self.meta.range(&prefix).await?;
        let mut moved = Vec::new();
        let mut settled = Vec::new();
        let mut later = false;
        for kv in &staged.kvs {
            let parsed = schema_keys::parse_txn_offset(&kv.key);
            match OffsetRecord::decode_staged(&kv.value) {
                // Staged by a later transaction of the producer: not this marker's.
                Ok((_, Some(epoch))) if epoch > marker.epoch => {
                    later = true;
                    continue;
                }
                // Staged at the marker's epoch (or before epochs were kept).
                Ok((value, epoch)) if epoch.is_none_or(|e| e == marker.epoch) => {
                    if let (true, Some((_, _, key))) = (commit, parsed) {
                        moved.push((key, value));
                    }
                }
                Ok((_, epoch)) => tracing::info!(
                    group = %group.0,
                    producer_id = marker.producer_id,
                    staged_epoch = epoch,
                    marker_epoch = marker.epoch,
                    "dropping offsets staged by a fenced producer epoch"
                ),
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "dropping a corrupt staged offset")
                }
            }
            settled.push(kv.key.clone());
        }
        if settled.is_empty() {
            return Ok(());
        }
        // Every put comes before every delete, so a part that fails leaves the staged keys
        // and the completion is retried whole; a commit larger than one transaction is
        // applied in parts, each atomic.
        let mut ops: Vec<TxnOp> = moved
            .iter()
            .map(|(key, value)| TxnOp::Put {
                key: schema_keys::offset(group, key),
                value: OffsetRecord::encode(value),
                lease: None,
            })
            .collect();
        if later {
            ops.extend(settled.into_iter().map(|key| TxnOp::Delete { key }));
        } else {
            ops.push(TxnOp::DeletePrefix {
                prefix: prefix.clone(),
            });
        }
        let mut applied = 0;
        for part in ops.chunks(OPS_PER_TXN) {
            let mut txn = Txn::new().when(fence.clone());
            for op in part {
                txn = txn.then(op.clone());
            }
            let outcome = self.meta.txn(txn).await?;
            if !outcome.succeeded {
                self.lose_shard(shard);
                return Err(GroupError::NotCoordinator(group.clone()));
            }
            let puts = part
                .iter()
                .filter(|op| matches!(op, TxnOp::Put { .. }))
                .count();
            let now = self.now();
            let mut groups = self.lock();
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group.clone(), now));
            for (key, value) in &moved[applied..applied + puts] {
                g.offsets.insert(key.clone(), value.clone());
            }
            applied += puts;
        }
        Ok(())
    }
}
