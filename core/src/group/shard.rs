//! Coordinator shards: a group belongs to one shard; a coordinator owns a shard by bumping
//! its epoch in the metadata store, and every write of the shard's offsets compares the
//! revision of that record. Another coordinator claiming the shard changes the revision,
//! so the old owner's writes fail and it drops the shard's groups.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

use super::coordinator::GroupCoordinator;
use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::keys::{self, ShardId};
use super::types::{CommittedOffset, GroupId};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Compare, MetadataStoreExt};
use crate::retry::{Backoff, Retry};
use crate::types::BrokerId;

/// Waits after failed loads of a shard in a row: 200 ms, doubling up to 3.2 s.
const SHARD_LOAD_BACKOFF: Backoff = Backoff::new(
    std::time::Duration::from_millis(200),
    std::time::Duration::from_millis(3_200),
);

/// The shard record in the metadata store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRecord {
    pub owner: BrokerId,
    /// Grows by one at every change of owner.
    pub epoch: u64,
    /// The incarnation of the owner's registration the shard was given to (0 when claimed
    /// by a standalone coordinator).
    #[serde(default)]
    pub incarnation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStatus {
    NotOwned,
    Loading,
    /// `revision` is the mod revision of the shard record written by our claim: the fence.
    Owned {
        epoch: u64,
        revision: i64,
    },
}

#[derive(Debug)]
pub(crate) struct ShardSlot {
    status: Mutex<ShardStatus>,
    /// Serialises the shard's offset writes and deletes, so that the in-memory offsets
    /// follow the store's order.
    pub writes: tokio::sync::Mutex<()>,
    /// Revision of the newest shard record observed; older observations are ignored.
    seen: std::sync::atomic::AtomicI64,
    /// The newest epoch seen per transactional producer id in the shard since it was loaded
    /// (staged offsets, markers): TxnOffsetCommit of an older epoch is a zombie's. Changed
    /// under `writes`.
    pub producer_epochs: Mutex<HashMap<i64, i16>>,
}

impl Default for ShardSlot {
    fn default() -> Self {
        ShardSlot {
            status: Mutex::new(ShardStatus::NotOwned),
            writes: tokio::sync::Mutex::new(()),
            seen: std::sync::atomic::AtomicI64::new(0),
            producer_epochs: Mutex::new(HashMap::new()),
        }
    }
}

impl ShardSlot {
    pub fn status(&self) -> ShardStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, status: ShardStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

impl GroupCoordinator {
    /// Takes the shard over (epoch + 1) and loads its committed offsets; its groups start
    /// Empty. Until loaded, its groups answer COORDINATOR_LOAD_IN_PROGRESS.
    pub async fn claim_shard(&self, shard: ShardId) -> GroupResult<()> {
        let slot = &self.shards[shard.0 as usize];
        let _writes = slot.writes.lock().await;
        slot.set(ShardStatus::Loading);
        match self.load_shard(shard).await {
            Ok(status) => {
                slot.set(status);
                Ok(())
            }
            Err(e) => {
                slot.set(ShardStatus::NotOwned);
                Err(e)
            }
        }
    }

    async fn load_shard(&self, shard: ShardId) -> GroupResult<ShardStatus> {
        let key = keys::shard(shard);
        let (epoch, revision) = match self.meta.get(&key).await? {
            Some(kv) => (decode_json::<ShardRecord>(&kv)?.epoch, kv.mod_revision),
            None => (0, 0),
        };
        let record = ShardRecord {
            owner: self.config.broker_id,
            epoch: epoch + 1,
            incarnation: 0,
        };
        let outcome = self
            .meta
            .compare_and_swap(&key, revision, encode_json(&record))
            .await?;
        if !outcome.succeeded {
            return Err(GroupError::NotCoordinator(GroupId(format!(
                "shard {shard}"
            ))));
        }
        self.load_offsets(shard, record.epoch).await?;
        Ok(ShardStatus::Owned {
            epoch: record.epoch,
            revision: outcome.revision,
        })
    }

    /// Loads a shard's persisted groups and committed offsets.
    async fn load_offsets(&self, shard: ShardId, epoch: u64) -> GroupResult<()> {
        let states = self.meta.range(&keys::shard_states_prefix(shard)).await?;
        let range = self.meta.range(&keys::shard_offsets_prefix(shard)).await?;
        let epochs = self.load_producer_epochs(shard).await?;
        {
            let now = self.now();
            let mut groups = self.lock();
            for kv in &states.kvs {
                let Some(group) = keys::parse_group_state(&kv.key) else {
                    continue;
                };
                let restored = decode_json(kv)
                    .ok()
                    .and_then(|snap| Group::restore(group.clone(), snap, now));
                match restored {
                    Some(g) => {
                        tracing::info!(group = %group, generation = %g.generation, members = g.members.len(), "restored group");
                        groups.insert(group, g);
                    }
                    None => tracing::warn!(key = %kv.key, "ignoring an unreadable group state"),
                }
            }
        }
        let now = self.now();
        let mut loaded = 0usize;
        let mut groups = self.lock();
        for kv in &range.kvs {
            let Some((group, key)) = keys::parse_offset(&kv.key) else {
                tracing::warn!(key = %kv.key, "ignoring unparsable group offset key");
                continue;
            };
            let value: CommittedOffset = match crate::schema::records::OffsetRecord::decode(
                &kv.value,
            ) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "ignoring corrupt committed offset");
                    continue;
                }
            };
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group, now))
                .offsets
                .insert(key, value);
            loaded += 1;
        }
        drop(groups);
        tracing::debug!(
            shard = shard.0,
            epoch,
            offsets = loaded,
            producers = epochs.len(),
            "loaded coordinator shard"
        );
        *self.shards[shard.0 as usize]
            .producer_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = epochs;
        Ok(())
    }

    /// The newest epoch of each producer with offsets staged in the shard.
    async fn load_producer_epochs(&self, shard: ShardId) -> GroupResult<HashMap<i64, i16>> {
        let staged = self
            .meta
            .range(&crate::schema::keys::shard_txn_offsets_prefix(shard))
            .await?;
        let mut epochs: HashMap<i64, i16> = HashMap::new();
        for kv in &staged.kvs {
            let Some((_, producer_id, _)) = crate::schema::keys::parse_txn_offset(&kv.key) else {
                continue;
            };
            let decoded = crate::schema::records::OffsetRecord::decode_staged(&kv.value);
            if let Ok((_, Some(epoch))) = decoded {
                let seen = epochs.entry(producer_id).or_insert(epoch);
                *seen = (*seen).max(epoch);
            }
        }
        Ok(epochs)
    }

    /// Tells the coordinator what a shard record says (from the cluster's watch). `ours`:
    /// it names this broker's current incarnation. A shard given to this broker is loaded
    /// (its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile) and fenced by the record's
    /// revision; a shard given to another is dropped.
    pub async fn observe_shard(
        &self,
        shard: ShardId,
        record: &ShardRecord,
        revision: i64,
        ours: bool,
    ) {
        use std::sync::atomic::Ordering::SeqCst;
        let slot = &self.shards[shard.0 as usize];
        if slot.seen.fetch_max(revision, SeqCst) >= revision {
            // Seen already (the first sync and the watch can both deliver a record).
            return;
        }
        let current = || slot.seen.load(SeqCst) == revision;
        match slot.status() {
            ShardStatus::Owned { revision: r, .. } if r == revision && ours => return,
            ShardStatus::Owned { .. } | ShardStatus::Loading => self.lose_shard(shard),
            ShardStatus::NotOwned => {}
        }
        if !ours {
            return;
        }
        let _writes = slot.writes.lock().await;
        if !current() {
            return;
        }
        slot.set(ShardStatus::Loading);
        let mut attempts = Retry::new(&*self.clock, SHARD_LOAD_BACKOFF);
        loop {
            match self.load_offsets(shard, record.epoch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(shard = shard.0, error = %e, attempt = attempts.attempt(), "cannot load coordinator shard; retrying");
                    attempts.wait().await;
                }
            }
            if slot.status() != ShardStatus::Loading || !current() {
                return;
            }
        }
        if slot.status() == ShardStatus::Loading && current() {
            slot.set(ShardStatus::Owned {
                epoch: record.epoch,
                revision,
            });
            tracing::info!(shard = shard.0, epoch = record.epoch, "coordinating shard");
        }
    }

    /// Drops every shard (the broker's registration was lost).
    pub fn release_all_shards(&self) {
        for s in 0..keys::SHARDS {
            if self.shards[s as usize].status() != ShardStatus::NotOwned {
                self.lose_shard(ShardId(s));
            }
        }
    }

    /// Whether a shard is owned and loaded.
    pub fn shard_loaded(&self, shard: ShardId) -> bool {
        matches!(
            self.shards[shard.0 as usize].status(),
            ShardStatus::Owned { .. }
        )
    }

    /// Shards this broker owns or is loading.
    pub fn owned_shards(&self) -> Vec<ShardId> {
        (0..keys::SHARDS)
            .filter(|s| self.shards[*s as usize].status() != ShardStatus::NotOwned)
            .map(ShardId)
            .collect()
    }

    /// The fence every write of the shard carries.
    pub(crate) fn fence(&self, group: &GroupId) -> GroupResult<Compare> {
        self.fence_and_epoch(group).map(|(fence, _)| fence)
    }

    /// [`Self::fence`] with the shard's epoch (transaction markers carry it as the
    /// coordinator epoch). Anything keyed like a group (a transactional id) is placed and
    /// fenced by the same shard.
    pub(crate) fn fence_and_epoch(&self, group: &GroupId) -> GroupResult<(Compare, u64)> {
        let shard = keys::shard_of(group);
        match self.shards[shard.0 as usize].status() {
            ShardStatus::Owned { revision, epoch } => Ok((
                Compare::ModRevision {
                    key: keys::shard(shard),
                    revision,
                },
                epoch,
            )),
            ShardStatus::Loading => Err(GroupError::CoordinatorLoading(group.clone())),
            ShardStatus::NotOwned => Err(GroupError::NotCoordinator(group.clone())),
        }
    }

    /// The fence revision and epoch of a shard this broker owns and has loaded.
    pub(crate) fn shard_fence(&self, shard: ShardId) -> Option<(i64, u64)> {
        match self.shards[shard.0 as usize].status() {
            ShardStatus::Owned { revision, epoch } => Some((revision, epoch)),
            _ => None,
        }
    }

    /// A fenced write showed that another coordinator owns the shard: drop its groups;
    /// their waiting members are told to find the coordinator again.
    pub(crate) fn lose_shard(&self, shard: ShardId) {
        tracing::warn!(
            shard = shard.0,
            "lost coordinator shard; dropping its groups"
        );
        self.shards[shard.0 as usize].set(ShardStatus::NotOwned);
        let mut groups = self.lock();
        groups.retain(|id, g| {
            if keys::shard_of(id) != shard {
                return true;
            }
            for m in g.members.values_mut() {
                m.answer_join(Err(GroupError::NotCoordinator(id.clone())));
                m.answer_sync(Err(GroupError::NotCoordinator(id.clone())));
            }
            false
        });
    }
}
