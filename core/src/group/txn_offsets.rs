//! Offsets committed inside a transaction (TxnOffsetCommit): staged in the metadata store
//! under the group's shard (`groups/txn-offsets/<shard>/<group>/<producer id>/...`), under
//! the shard's fence, and invisible to OffsetFetch until the transaction's commit marker
//! moves them to the group's offsets; its abort marker drops them.

use super::coordinator::GroupCoordinator;
use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::keys;
use super::offsets::PartitionResults;
use super::types::{CommitRequest, CommittedOffset, GroupId};
use crate::ports::metadata::MAX_TXN_OPS;
use crate::ports::{Txn, TxnOp};
use crate::schema::keys as schema_keys;
use crate::schema::records::OffsetRecord;

/// Writes per transaction: the fence compare plus these stay under etcd's limit.
const OPS_PER_TXN: usize = MAX_TXN_OPS - 1;

impl GroupCoordinator {
    /// Stages a transaction's offsets. The member and generation, when given (v3+), are
    /// checked as an OffsetCommit's are.
    pub async fn stage_txn_offsets(
        &self,
        req: CommitRequest,
        producer_id: i64,
    ) -> GroupResult<PartitionResults> {
        Self::check_group_id(&req.group)?;
        self.check_coordinator(&req.group)?;
        let shard = keys::shard_of(&req.group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(&req.group)?;
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
                    key: schema_keys::txn_offset(&req.group, producer_id, key),
                    value: OffsetRecord::encode(value),
                    lease: None,
                });
            }
            let failure = self.write_offsets(&req.group, txn).await;
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

    /// [`Self::complete_txn_offsets`] in every group of `shard` where the producer staged
    /// offsets: what a transaction marker for the shard does when the transaction's
    /// coordinator is on another broker (the marker names the shard, as Kafka's names the
    /// group's offsets partition). A producer's staged offsets all belong to its one open
    /// transaction, so these are the groups of that transaction.
    pub async fn complete_shard_txn_offsets(
        &self,
        shard: keys::ShardId,
        producer_id: i64,
        commit: bool,
    ) -> GroupResult<()> {
        let staged = self
            .meta
            .range(&schema_keys::shard_txn_offsets_prefix(shard))
            .await?;
        let groups: std::collections::BTreeSet<GroupId> = staged
            .kvs
            .iter()
            .filter_map(|kv| schema_keys::parse_txn_offset(&kv.key))
            .filter(|(_, pid, _)| *pid == producer_id)
            .map(|(group, _, _)| group)
            .collect();
        for group in groups {
            self.complete_txn_offsets(&group, producer_id, commit)
                .await?;
        }
        Ok(())
    }

    /// Settles the offsets a producer staged in a group: its transaction committed (they
    /// become the group's committed offsets) or aborted (they are dropped). Doing it again
    /// finds nothing staged and changes nothing.
    pub async fn complete_txn_offsets(
        &self,
        group: &GroupId,
        producer_id: i64,
        commit: bool,
    ) -> GroupResult<()> {
        let shard = keys::shard_of(group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let fence = self.fence(group)?;
        let prefix = schema_keys::group_txn_offsets_prefix(group, producer_id);
        let staged = self.meta.range(&prefix).await?;
        if staged.kvs.is_empty() {
            return Ok(());
        }
        let mut moved = Vec::new();
        if commit {
            for kv in &staged.kvs {
                let Some((_, _, key)) = schema_keys::parse_txn_offset(&kv.key) else {
                    continue;
                };
                match OffsetRecord::decode(&kv.value) {
                    Ok(value) => moved.push((key, value)),
                    Err(e) => {
                        tracing::warn!(key = %kv.key, error = %e, "ignoring a corrupt staged offset")
                    }
                }
            }
        }
        // The last part deletes the staged keys, so a part that fails leaves them staged and
        // the completion is retried whole; a commit larger than one transaction is applied
        // in parts, each atomic.
        let mut parts: Vec<&[(super::OffsetKey, CommittedOffset)]> =
            moved.chunks(OPS_PER_TXN - 1).collect();
        if parts.is_empty() {
            parts.push(&[]);
        }
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let mut txn = Txn::new().when(fence.clone());
            for (key, value) in part.iter() {
                txn = txn.then(TxnOp::Put {
                    key: schema_keys::offset(group, key),
                    value: OffsetRecord::encode(value),
                    lease: None,
                });
            }
            if i == last {
                txn = txn.then(TxnOp::DeletePrefix {
                    prefix: prefix.clone(),
                });
            }
            let outcome = self.meta.txn(txn).await?;
            if !outcome.succeeded {
                self.lose_shard(shard);
                return Err(GroupError::NotCoordinator(group.clone()));
            }
            let now = self.now();
            let mut groups = self.lock();
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group.clone(), now));
            for (key, value) in part.iter() {
                g.offsets.insert(key.clone(), value.clone());
            }
        }
        Ok(())
    }
}
