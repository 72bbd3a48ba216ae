//! The transaction coordinator of one broker: the transactional ids of the shards it owns,
//! mirrored from the metadata store and changed only by fenced writes.
//!
//! A shard's ids are read when the shard's fence (the revision of the shard record this
//! broker's claim wrote) is first used, and again whenever it changes, so a takeover needs
//! no hook: the first request or timer tick after it loads the shard and completes the
//! transactions a dead coordinator left prepared. Markers are written with no lock held;
//! meanwhile the id is Prepare* and its requests are answered CONCURRENT_TRANSACTIONS.

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::state::{self, EndStep, InitStep, ProducerIdentity, TxnPartition, TxnRecord};
use super::{TxnConfig, TxnError, TxnResult};
use crate::group::keys::{self, ShardId, SHARDS};
use crate::group::{GroupCoordinator, GroupError, GroupId};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Clock, Compare, MetadataStore, Txn, TxnOp};
use crate::schema::keys as schema_keys;

/// What a [`MarkerWriter`] writes: the end of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The epoch of the coordinator shard (Kafka's coordinator epoch).
    pub coordinator_epoch: i32,
    pub partitions: Vec<TxnPartition>,
    pub groups: Vec<String>,
}

/// Writes the commit or abort marker of a transaction into each of its partitions (through
/// the partition leader's normal flush and commit) and settles the offsets it staged in
/// each of its groups. Ok only once all of it is durable; writing the same markers again is
/// harmless (a prepared transaction is completed again after a takeover).
#[async_trait]
pub trait MarkerWriter: Send + Sync + 'static {
    async fn write_markers(&self, markers: &Markers) -> TxnResult<()>;
}

/// Hands out producer ids unique in the cluster.
#[async_trait]
pub trait ProducerIds: Send + Sync + 'static {
    async fn allocate(&self) -> crate::Result<i64>;
}

#[async_trait]
impl ProducerIds for crate::log::LogService {
    async fn allocate(&self) -> crate::Result<i64> {
        self.allocate_producer_id().await
    }
}

/// A transactional id and its state, as ListTransactions and DescribeTransactions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub record: TxnRecord,
}

#[derive(Debug, Default)]
struct ShardTxns {
    /// The fence revision the ids were loaded under (0: not loaded).
    revision: i64,
    txns: HashMap<String, TxnRecord>,
    /// Ids whose markers are being written here now.
    completing: HashSet<String>,
}

pub struct TxnCoordinator {
    config: TxnConfig,
    meta: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    /// Owns the shards: their status and fences.
    groups: Arc<GroupCoordinator>,
    markers: Arc<dyn MarkerWriter>,
    ids: Arc<dyn ProducerIds>,
    /// Per shard; the async lock serialises loads and writes of the shard's ids.
    shards: Vec<tokio::sync::Mutex<ShardTxns>>,
    /// Running totals, for metrics.
    pub stats: TxnStats,
}

/// Running totals of the coordinator's work.
#[derive(Debug, Default)]
pub struct TxnStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub aborts: std::sync::atomic::AtomicU64,
    pub timeouts: std::sync::atomic::AtomicU64,
    pub open: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The shard lock, and the fence and epoch it was taken under.
struct Held<'a> {
    shard: tokio::sync::MutexGuard<'a, ShardTxns>,
    fence: Compare,
    epoch: u64,
    /// Prepared transactions found by a fresh load, to complete.
    found_prepared: Vec<String>,
}

fn gid(id: &str) -> GroupId {
    GroupId(id.to_owned())
}

impl TxnCoordinator {
    pub fn new(
        config: TxnConfig,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        groups: Arc<GroupCoordinator>,
        markers: Arc<dyn MarkerWriter>,
        ids: Arc<dyn ProducerIds>,
    ) -> TxnCoordinator {
        TxnCoordinator {
            config,
            meta,
            clock,
            groups,
            markers,
            ids,
            shards: (0..SHARDS)
                .map(|_| tokio::sync::Mutex::new(ShardTxns::default()))
                .collect(),
            stats: TxnStats::default(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Ok if this broker coordinates the transactional id now.
    pub fn check_coordinator(&self, id: &str) -> TxnResult<()> {
        self.groups.check_coordinator(&gid(id))?;
        Ok(())
    }

    /// Takes the id's shard lock under its current fence, loading the shard first if the
    /// fence changed since it was loaded.
    async fn hold(&self, id: &str) -> TxnResult<Held<'_>> {
        let (fence, epoch) = self.groups.fence_and_epoch(&gid(id))?;
        let Compare::ModRevision { revision, .. } = &fence else {
            return Err(GroupError::NotCoordinator(gid(id)).into());
        };
        let shard = keys::shard_of(&gid(id));
        let (guard, found_prepared) = self.lock_loaded(shard, *revision).await?;
        Ok(Held {
            shard: guard,
            fence,
            epoch,
            found_prepared,
        })
    }

    /// The shard's lock, its ids loaded under `revision` (read again if they were loaded
    /// under another); with the prepared transactions a fresh load found.
    async fn lock_loaded(
        &self,
        shard: ShardId,
        revision: i64,
    ) -> TxnResult<(tokio::sync::MutexGuard<'_, ShardTxns>, Vec<String>)> {
        let mut guard = self.shards[shard.0 as usize].lock().await;
        let mut found_prepared = Vec::new();
        if guard.revision == revision {
            return Ok((guard, found_prepared));
        }
        let loaded = self
            .meta
            .range(&schema_keys::shard_txns_prefix(shard))
            .await?;
        let mut txns = HashMap::new();
        for kv in &loaded.kvs {
            let Some(txn_id) = schema_keys::parse_txn(&kv.key) else {
                continue;
            };
            match decode_json::<TxnRecord>(kv) {
                Ok(r) => {
                    if r.state.is_prepare() {
                        found_prepared.push(txn_id.clone());
                    }
                    txns.insert(txn_id, r);
                }
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "ignoring an unreadable transaction")
                }
            }
        }
        tracing::debug!(
            shard = shard.0,
            transactions = txns.len(),
            "loaded transactions"
        );
        let open = |t: &HashMap<String, TxnRecord>| {
            t.values()
                .filter(|r| r.state == state::TxnState::Ongoing)
                .count() as i64
        };
        self.stats.open.fetch_add(
            open(&txns) - open(&guard.txns),
            std::sync::atomic::Ordering::Relaxed,
        );
        guard.txns = txns;
        guard.revision = revision;
        guard.completing.clear();
        Ok((guard, found_prepared))
    }

    /// Writes an id's record under the fence; on success the mirror follows.
    async fn store(&self, held: &mut Held<'_>, id: &str, record: TxnRecord) -> TxnResult<()> {
        let txn = Txn::new().when(held.fence.clone()).then(TxnOp::Put {
            key: schema_keys::txn(id),
            value: encode_json(&record),
            lease: None,
        });
        let outcome = self.meta.txn(txn).await?;
        if !outcome.succeeded {
            let shard = keys::shard_of(&gid(id));
            held.shard.revision = 0;
            self.groups.lose_shard(shard);
            return Err(GroupError::NotCoordinator(gid(id)).into());
        }
        let was_open = held
            .shard
            .txns
            .get(id)
            .is_some_and(|r| r.state == state::TxnState::Ongoing);
        let is_open = record.state == state::TxnState::Ongoing;
        if was_open != is_open {
            let delta = if is_open { 1 } else { -1 };
            self.stats
                .open
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
        }
        held.shard.txns.insert(id.to_owned(), record);
        Ok(())
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub async fn init_producer(
        &self,
        id: &str,
        timeout_ms: i32,
        producer: Option<ProducerIdentity>,
    ) -> TxnResult<ProducerIdentity> {
        if id.is_empty() {
            return Err(TxnError::InvalidTransactionalId(id.to_owned()));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTimeout {
                timeout_ms,
                max_ms: self.config.max_timeout_ms,
            });
        }
        let mut fresh_id = None;
        // Each round either answers or makes progress (an id allocated, a transaction
        // aborted or completed); a few rounds at most.
        for _ in 0..4 {
            let mut held = self.hold(id).await?;
            let prepared = std::mem::take(&mut held.found_prepared);
            let now = self.clock.now_ms();
            let step = state::init(held.shard.txns.get(id), timeout_ms, producer, fresh_id, now)?;
            match step {
                InitStep::Store(record) => {
                    let answer = ProducerIdentity {
                        producer_id: record.producer_id,
                        epoch: record.epoch,
                    };
                    if held.shard.txns.get(id) != Some(&record) {
                        self.store(&mut held, id, record).await?;
                    }
                    drop(held);
                    self.complete_all(prepared).await;
                    return Ok(answer);
                }
                InitStep::NeedsId => {
                    drop(held);
                    let allocated = self
                        .ids
                        .allocate()
                        .await
                        .map_err(|e| TxnError::ProducerIds(Box::new(e)))?;
                    fresh_id = Some(allocated);
                }
                InitStep::AbortFirst(record) => {
                    tracing::info!(
                        transactional_id = id,
                        "aborting the open transaction of a fenced producer"
                    );
                    self.store(&mut held, id, record).await?;
                    drop(held);
                    self.stats
                        .aborts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.complete(id).await?;
                }
                InitStep::Complete => {
                    drop(held);
                    self.complete(id).await?;
                }
            }
            self.complete_all(prepared).await;
        }
        Err(TxnError::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn: the transaction now covers these partitions
    /// and groups.
    pub async fn add(
        &self,
        id: &str,
        producer: ProducerIdentity,
        partitions: &[TxnPartition],
        groups: &[String],
    ) -> TxnResult<()> {
        let mut held = self.hold(id).await?;
        let prepared = std::mem::take(&mut held.found_prepared);
        let now = self.clock.now_ms();
        let result = match state::add(held.shard.txns.get(id), producer, partitions, groups, now) {
            Ok(Some(record)) => self.store(&mut held, id, record).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        drop(held);
        self.complete_all(prepared).await;
        result
    }

    /// Whether the partitions are part of the producer's ongoing transaction (the produce
    /// path's check, and AddPartitionsToTxn v4's verification).
    pub async fn verify(
        &self,
        id: &str,
        producer: ProducerIdentity,
        partition: &TxnPartition,
    ) -> TxnResult<bool> {
        let held = self.hold(id).await?;
        let cur = state::check_producer(held.shard.txns.get(id), producer)?;
        Ok(cur.state == state::TxnState::Ongoing && cur.partitions.contains(partition))
    }

    /// TxnOffsetCommit's check: the request comes from the id's current producer.
    pub async fn check_producer(&self, id: &str, producer: ProducerIdentity) -> TxnResult<()> {
        let held = self.hold(id).await?;
        state::check_producer(held.shard.txns.get(id), producer).map(|_| ())
    }

    /// The produce path's check, without waiting: Some(false) if this broker coordinates the
    /// id, has its state at hand, and the producer's (current) transaction is not ongoing or
    /// does not hold the partition; None when it cannot tell now (not the coordinator, the
    /// shard loading or busy, another producer id or epoch, which the log's epoch check
    /// judges).
    pub fn verify_now(
        &self,
        id: &str,
        producer: ProducerIdentity,
        partition: &TxnPartition,
    ) -> Option<bool> {
        let (fence, _) = self.groups.fence_and_epoch(&gid(id)).ok()?;
        let Compare::ModRevision { revision, .. } = fence else {
            return None;
        };
        let shard = keys::shard_of(&gid(id));
        let guard = self.shards[shard.0 as usize].try_lock().ok()?;
        if guard.revision != revision {
            return None;
        }
        let r = guard.txns.get(id)?;
        if r.producer_id != producer.producer_id || r.epoch != producer.epoch {
            return None;
        }
        Some(r.state == state::TxnState::Ongoing && r.partitions.contains(partition))
    }

    /// EndTxn: commits or aborts the producer's transaction. Answers once the markers are
    /// written; if they cannot be written now, the prepared transaction is durable and is
    /// completed later, and the answer is success (as Kafka answers once the prepare is
    /// in its log).
    pub async fn end(&self, id: &str, producer: ProducerIdentity, commit: bool) -> TxnResult<()> {
        let mut held = self.hold(id).await?;
        let prepared = std::mem::take(&mut held.found_prepared);
        let now = self.clock.now_ms();
        let step = state::end(held.shard.txns.get(id), producer, commit, now);
        let result = match step {
            Ok(EndStep::Prepare(record)) => self.store(&mut held, id, record).await.map(|()| true),
            Ok(EndStep::Done) => Ok(false),
            Err(e) => Err(e),
        };
        drop(held);
        self.complete_all(prepared).await;
        if result? {
            let counter = if commit {
                &self.stats.commits
            } else {
                &self.stats.aborts
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = self.complete(id).await {
                tracing::warn!(transactional_id = id, error = %e, "cannot complete the transaction now; retrying in the background");
            }
        }
        Ok(())
    }

    /// Writes the markers of a prepared transaction and completes it. Does nothing if it is
    /// not prepared, or is being completed by another task here.
    pub async fn complete(&self, id: &str) -> TxnResult<()> {
        let (markers, before) = {
            let mut held = self.hold(id).await?;
            let Some(record) = held.shard.txns.get(id).cloned() else {
                return Ok(());
            };
            if !record.state.is_prepare() || !held.shard.completing.insert(id.to_owned()) {
                return Ok(());
            }
            let markers = Markers {
                transactional_id: id.to_owned(),
                producer_id: record.producer_id,
                epoch: record.epoch,
                commit: record.state == state::TxnState::PrepareCommit,
                coordinator_epoch: i32::try_from(held.epoch).unwrap_or(i32::MAX),
                partitions: record.partitions.iter().cloned().collect(),
                groups: record.groups.iter().cloned().collect(),
            };
            (markers, record)
        };
        let written = self.markers.write_markers(&markers).await;
        let mut held = self.hold(id).await?;
        held.shard.completing.remove(id);
        written?;
        if held.shard.txns.get(id) != Some(&before) {
            // Taken over and changed meanwhile: the new owner completes it.
            return Ok(());
        }
        let record = state::complete(&before, self.clock.now_ms());
        self.store(&mut held, id, record).await
    }

    async fn complete_all(&self, ids: Vec<String>) {
        for id in ids {
            if let Err(e) = self.complete(&id).await {
                tracing::warn!(transactional_id = %id, error = %e, "cannot complete a prepared transaction; retrying later");
            }
        }
    }

    /// One round of the timer: loads shards taken over, completes prepared transactions and
    /// aborts those that outlived their timeout (bumping the epoch, which fences the
    /// producer that left them).
    pub async fn tick(&self) {
        let now = self.clock.now_ms();
        for shard in (0..SHARDS).map(ShardId) {
            let Some((revision, _)) = self.groups.shard_fence(shard) else {
                continue;
            };
            let (expired, prepared) = match self.lock_loaded(shard, revision).await {
                Ok((guard, _)) => {
                    let expired: Vec<String> = guard
                        .txns
                        .iter()
                        .filter(|(_, r)| state::expired(r, now))
                        .map(|(id, _)| id.clone())
                        .collect();
                    let prepared: Vec<String> = guard
                        .txns
                        .iter()
                        .filter(|(id, r)| r.state.is_prepare() && !guard.completing.contains(*id))
                        .map(|(id, _)| id.clone())
                        .collect();
                    (expired, prepared)
                }
                Err(e) => {
                    tracing::warn!(shard = shard.0, error = %e, "cannot load the shard's transactions");
                    continue;
                }
            };
            for id in expired {
                if let Err(e) = self.abort_expired(&id).await {
                    tracing::warn!(transactional_id = %id, error = %e, "cannot abort an expired transaction");
                }
            }
            self.complete_all(prepared).await;
        }
    }

    async fn abort_expired(&self, id: &str) -> TxnResult<()> {
        {
            let mut held = self.hold(id).await?;
            let now = self.clock.now_ms();
            let Some(cur) = held.shard.txns.get(id) else {
                return Ok(());
            };
            if !state::expired(cur, now) {
                return Ok(());
            }
            let record = state::fence_abort(cur, now)?;
            tracing::info!(
                transactional_id = id,
                timeout_ms = record.timeout_ms,
                "aborting a transaction that outlived its timeout"
            );
            self.store(&mut held, id, record).await?;
        }
        self.stats
            .timeouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .aborts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.complete(id).await
    }

    /// Runs [`Self::tick`] every cleanup interval until `stop` turns true.
    pub async fn run_timers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.cleanup_interval_ms.unsigned_abs());
        loop {
            if *stop.borrow() {
                return;
            }
            self.tick().await;
            tokio::select! {
                _ = self.clock.sleep(every) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// The transactional ids of the owned shards, with their state.
    pub async fn list(&self) -> Vec<TxnListing> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            if !self.groups.shard_loaded(ShardId(shard)) {
                continue;
            }
            let guard = self.shards[shard as usize].lock().await;
            out.extend(guard.txns.iter().map(|(id, r)| TxnListing {
                transactional_id: id.clone(),
                record: r.clone(),
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// One transactional id's state; None if it has none.
    pub async fn describe(&self, id: &str) -> TxnResult<Option<TxnRecord>> {
        let held = self.hold(id).await?;
        Ok(held.shard.txns.get(id).cloned())
    }
}
