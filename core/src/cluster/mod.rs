//! The cluster: brokers registered under leases, one controller elected among them, and the
//! assignment of partitions and coordinator shards to live brokers (DESIGN.md section 5).
//!
//! Every broker watches the cluster's keys and applies what they say: a leader record that
//! names this broker's incarnation makes it load and lead the partition; one that names
//! another makes it drop the partition (its commits are fenced by the record's revision
//! anyway). The controller alone assigns: partitions and shards of brokers that are gone go
//! to live brokers at once, and the cluster is balanced gradually by asking leaders to hand
//! partitions over, which they do after flushing. A broker shutting down marks itself
//! draining, waits until it leads nothing, and releases its lease.

pub mod backups;
mod controller;
pub mod plan;
pub mod records;
mod upkeep;
mod watcher;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};

use crate::error::{Error, Result};
use crate::group::{GroupCoordinator, ShardRecord};
use crate::log::LogService;
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Clock, Compare, LeaseId, MetadataError, MetadataStore, Txn, TxnOp};
use crate::schema::keys;
use crate::settings;
use crate::types::{BrokerId, PartitionKey};

pub use records::{BrokerRecord, ControllerRecord, ListenerEndpoint, MoveRecord};
pub use upkeep::StoreHealth;

/// Settings of a broker's membership, validated by the app's config layer.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `None`: the lowest id no live broker holds is taken.
    pub broker_id: Option<BrokerId>,
    /// Where clients reach this broker (its first listener).
    pub host: String,
    pub port: u16,
    /// Every listener, the first included.
    pub listeners: Vec<ListenerEndpoint>,
    pub rack: Option<String>,
    /// Lease of the registration: a broker that stops renewing it is gone after this long.
    pub lease_ttl: Duration,
    /// Hand-overs under way at once when balancing.
    pub max_moves: usize,
    /// How long a shutting-down broker waits for its partitions to be handed over.
    pub drain_timeout: Duration,
    /// How often the metadata store's status (size, alarms) is read.
    pub metadata_status_interval: Duration,
    /// How often the controller compacts the metadata store's history, and how much of it
    /// (by age) it keeps.
    pub metadata_compaction_interval: Duration,
    pub metadata_compaction_retention: Duration,
    /// How often the controller backs the metadata up to the object store (zero: never),
    /// and how many backups it keeps.
    pub metadata_backup_interval: Duration,
    pub metadata_backup_retention: usize,
}

/// The registry's defaults (`crate::settings`).
impl Default for ClusterConfig {
    fn default() -> Self {
        let ms = |s: &crate::settings::Setting| Duration::from_millis(s.default_int() as u64);
        ClusterConfig {
            broker_id: None,
            host: "127.0.0.1".into(),
            port: 9092,
            listeners: Vec::new(),
            rack: None,
            lease_ttl: ms(&settings::BROKER_SESSION_TIMEOUT_MS),
            max_moves: settings::CONTROLLER_MAX_MOVES.default_int() as usize,
            drain_timeout: ms(&settings::SHUTDOWN_DRAIN_TIMEOUT_MS),
            metadata_status_interval: ms(&settings::METADATA_STATUS_INTERVAL_MS),
            metadata_compaction_interval: ms(&settings::METADATA_COMPACTION_INTERVAL_MS),
            metadata_compaction_retention: ms(&settings::METADATA_COMPACTION_RETENTION_MS),
            metadata_backup_interval: ms(&settings::METADATA_BACKUP_INTERVAL_MS),
            metadata_backup_retention: settings::METADATA_BACKUP_RETENTION.default_int() as usize,
        }
    }
}

/// A broker's registration: its id, lease and incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub id: BrokerId,
    pub lease: LeaseId,
    pub incarnation: u64,
}

fn new_incarnation() -> u64 {
    // Random, never 0 (0 marks standalone ownership).
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}

impl Registration {
    /// Registers this broker under a new lease. With a configured id, waits (up to two lease
    /// TTLs) for a previous registration of that id to expire: a broker restarted after
    /// kill -9 finds its predecessor's lease still running. Without one, takes the lowest
    /// id no live broker holds.
    pub async fn register(
        meta: &dyn MetadataStore,
        clock: &dyn Clock,
        config: &ClusterConfig,
    ) -> Result<Registration> {
        let lease = meta.grant_lease(config.lease_ttl).await?;
        let incarnation = new_incarnation();
        let deadline = clock.now_ms() + 2 * config.lease_ttl.as_millis() as i64 + 1_000;
        let mut warned = false;
        loop {
            let id = match config.broker_id {
                Some(id) => id,
                None => lowest_free_id(meta).await?,
            };
            let record = BrokerRecord {
                id,
                host: config.host.clone(),
                port: config.port,
                rack: config.rack.clone(),
                incarnation,
                draining: false,
                listeners: config.listeners.clone(),
            };
            if put_registration(meta, &record, lease, true).await? {
                tracing::info!(broker = id.0, incarnation, "registered");
                return Ok(Registration {
                    id,
                    lease,
                    incarnation,
                });
            }
            if config.broker_id.is_none() {
                continue;
            }
            if clock.now_ms() > deadline {
                let _ = meta.revoke_lease(lease).await;
                return Err(Error::Metadata(MetadataError::Fatal {
                    message: format!(
                        "broker id {} is registered by another live broker (its lease did not expire within {} ms)",
                        id.0,
                        2 * config.lease_ttl.as_millis()
                    ),
                }));
            }
            if !warned {
                tracing::warn!(
                    broker = id.0,
                    "broker id is still registered (a previous process?); waiting for its lease to expire"
                );
                warned = true;
            }
            meta.keep_alive(lease).await?;
            clock.sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn lowest_free_id(meta: &dyn MetadataStore) -> Result<BrokerId> {
    let live: HashSet<BrokerId> = meta
        .range(&keys::brokers_prefix())
        .await?
        .kvs
        .iter()
        .filter_map(|kv| keys::parse_broker(&kv.key))
        .collect();
    Ok((0..)
        .map(BrokerId)
        .find(|id| !live.contains(id))
        .unwrap_or(BrokerId(0)))
}

/// Writes the broker record under the lease; `create` requires the key to be absent.
async fn put_registration(
    meta: &dyn MetadataStore,
    record: &BrokerRecord,
    lease: LeaseId,
    create: bool,
) -> Result<bool> {
    let key = keys::broker(record.id);
    let mut txn = Txn::new();
    if create {
        txn = txn.when(Compare::ModRevision {
            key: key.clone(),
            revision: 0,
        });
    }
    let outcome = meta
        .txn(txn.then(TxnOp::Put {
            key,
            value: encode_json(record),
            lease: Some(lease),
        }))
        .await?;
    Ok(outcome.succeeded)
}

/// What this broker knows of the cluster, from the watch.
#[derive(Debug, Default, Clone)]
pub(crate) struct View {
    pub brokers: BTreeMap<BrokerId, BrokerRecord>,
    pub controller: Option<(ControllerRecord, i64)>,
    pub moves: BTreeMap<PartitionKey, (MoveRecord, i64)>,
    pub shards: BTreeMap<u32, (ShardRecord, i64)>,
    pub leaders: BTreeMap<PartitionKey, (crate::log::LeaderRecord, i64)>,
}

pub(crate) struct Inner {
    pub config: ClusterConfig,
    pub meta: Arc<dyn MetadataStore>,
    pub clock: Arc<dyn Clock>,
    pub log: LogService,
    pub groups: Arc<GroupCoordinator>,
    pub registration: Mutex<Registration>,
    pub view: RwLock<View>,
    /// Highest store revision the watcher has applied.
    pub applied: watch::Sender<i64>,
    pub controller_wake: Notify,
    /// Whether the metadata store answered the last keep-alive.
    pub metadata_ok: AtomicBool,
    pub draining: AtomicBool,
    /// Partitions with a hand-over under way here.
    pub handing_over: Mutex<HashSet<PartitionKey>>,
    /// The metadata store's status and compactions.
    pub health: RwLock<StoreHealth>,
}

impl Inner {
    pub fn registration(&self) -> Registration {
        *self.registration.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read_view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read_health(&self) -> std::sync::RwLockReadGuard<'_, StoreHealth> {
        self.health.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_health(&self) -> std::sync::RwLockWriteGuard<'_, StoreHealth> {
        self.health.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this broker (this incarnation) is the controller.
    pub fn is_controller(&self) -> bool {
        let reg = self.registration();
        self.read_view()
            .controller
            .is_some_and(|(c, _)| c.broker == reg.id && c.incarnation == reg.incarnation)
    }
}

/// Handle to this broker's membership; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cluster {
    /// Starts the keep-alive, the watch and the controller of a registered broker.
    pub async fn start(
        config: ClusterConfig,
        registration: Registration,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        log: LogService,
        groups: Arc<GroupCoordinator>,
    ) -> Result<Cluster> {
        let (applied, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            config,
            meta,
            clock,
            log,
            groups,
            registration: Mutex::new(registration),
            view: RwLock::new(View::default()),
            applied,
            controller_wake: Notify::new(),
            metadata_ok: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            handing_over: Mutex::new(HashSet::new()),
            health: RwLock::new(StoreHealth::default()),
        });
        // The first sync happens before serving: Metadata answers from the view.
        let streams = watcher::sync(&inner).await?;
        let tasks = vec![
            tokio::spawn(watcher::run(inner.clone(), streams)),
            tokio::spawn(keep_alive(inner.clone())),
            tokio::spawn(controller::run(inner.clone())),
            tokio::spawn(upkeep::run(inner.clone())),
        ];
        Ok(Cluster {
            inner,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    pub fn broker_id(&self) -> BrokerId {
        self.inner.registration().id
    }

    /// Live brokers (draining ones included: they still answer until they leave).
    pub fn brokers(&self) -> Vec<BrokerRecord> {
        self.inner.read_view().brokers.values().cloned().collect()
    }

    pub fn broker(&self, id: BrokerId) -> Option<BrokerRecord> {
        self.inner.read_view().brokers.get(&id).cloned()
    }

    pub fn controller(&self) -> Option<BrokerId> {
        self.inner.read_view().controller.map(|(c, _)| c.broker)
    }

    /// Whether this broker (this incarnation) is the controller now.
    pub fn is_controller(&self) -> bool {
        self.inner.is_controller()
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The live broker coordinating a shard, if any.
    pub fn shard_owner(&self, shard: u32) -> Option<BrokerRecord> {
        let view = self.inner.read_view();
        let (record, _) = view.shards.get(&shard)?;
        view.brokers
            .get(&record.owner)
            .filter(|b| b.incarnation == record.incarnation)
            .cloned()
    }

    /// Whether the metadata store answered the last keep-alive.
    pub fn metadata_ok(&self) -> bool {
        self.inner.metadata_ok.load(Ordering::SeqCst)
    }

    /// Changes whenever the watcher applied something.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.applied.subscribe()
    }

    /// Whether every partition and shard has a live owner and what this broker owns is
    /// loaded.
    pub fn settled(&self) -> bool {
        let inner = &self.inner;
        let reg = inner.registration();
        let view = inner.read_view();
        if view.controller.is_none() {
            return false;
        }
        let live =
            |id: BrokerId, inc: u64| view.brokers.get(&id).is_some_and(|b| b.incarnation == inc);
        let shards_ok = (0..crate::group::keys::SHARDS).all(|s| {
            view.shards
                .get(&s)
                .is_some_and(|(r, _)| live(r.owner, r.incarnation))
        });
        if !shards_ok {
            return false;
        }
        let partitions_ok = inner.log.topics().iter().all(|t| {
            inner
                .log
                .leadership_of(t.id)
                .iter()
                .all(|(_, r, _)| r.leader.is_some_and(|l| live(l, r.incarnation)))
        });
        drop(view);
        partitions_ok
            && inner.log.loading_partitions() == 0
            && inner
                .groups
                .owned_shards()
                .iter()
                .all(|s| inner.groups.shard_loaded(*s))
            && reg.id == inner.registration().id
    }

    /// Waits until [`Cluster::settled`] or the timeout; returns whether it settled.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let mut applied = self.inner.applied.subscribe();
        let mut changes = self.inner.log.subscribe_leadership();
        let deadline = self.inner.clock.now_ms() + timeout.as_millis() as i64;
        loop {
            if self.settled() {
                return true;
            }
            let left = deadline - self.inner.clock.now_ms();
            if left <= 0 {
                return false;
            }
            tokio::select! {
                _ = applied.changed() => {}
                _ = changes.changed() => {}
                _ = self.inner.clock.sleep(Duration::from_millis(left.min(50) as u64)) => {}
            }
        }
    }

    /// Graceful departure, first half: marks this broker draining so the controller moves
    /// its partitions and shards away (each hand-over flushes first), and waits until it
    /// leads nothing, no other broker can take over, or the drain timeout passes.
    pub async fn drain(&self) {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::SeqCst);
        let reg = inner.registration();
        let record = inner.read_view().brokers.get(&reg.id).cloned();
        if let Some(mut record) = record {
            record.draining = true;
            if let Err(e) = put_registration(inner.meta.as_ref(), &record, reg.lease, false).await {
                tracing::warn!(error = %e, "cannot mark this broker draining");
                return;
            }
        }
        let started = inner.clock.now_ms();
        let mut changes = inner.log.subscribe_leadership();
        let mut applied = inner.applied.subscribe();
        loop {
            let others = inner
                .read_view()
                .brokers
                .values()
                .any(|b| b.id != reg.id && !b.draining);
            let holding = inner.log.led_partitions().len() + inner.groups.owned_shards().len();
            if holding == 0 || !others {
                tracing::info!(
                    partitions_left = holding,
                    ms = inner.clock.now_ms() - started,
                    "drained"
                );
                return;
            }
            let left =
                inner.config.drain_timeout.as_millis() as i64 - (inner.clock.now_ms() - started);
            if left <= 0 {
                tracing::warn!(partitions_left = holding, "drain timed out");
                return;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = applied.changed() => {}
                _ = inner.clock.sleep(Duration::from_millis(left.min(200) as u64)) => {}
            }
        }
    }

    /// Second half: stops the cluster's tasks and releases the lease, which removes this
    /// broker's registration (and the controller key, if it held it) at once.
    pub async fn leave(&self) {
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        let reg = self.inner.registration();
        if let Err(e) = self.inner.meta.revoke_lease(reg.lease).await {
            tracing::warn!(error = %e, "cannot release the lease; it expires by itself");
        }
    }
}

/// Renews the lease every third of its TTL. A lost lease (expired while this broker was
/// paused or cut off) means other brokers may have taken over: everything is dropped and
/// the broker registers again under a new incarnation; the controller reassigns.
async fn keep_alive(inner: Arc<Inner>) {
    let period = (inner.config.lease_ttl / 3).max(Duration::from_millis(100));
    loop {
        inner.clock.sleep(period).await;
        let reg = inner.registration();
        match inner.meta.keep_alive(reg.lease).await {
            Ok(()) => {
                if !inner.metadata_ok.swap(true, Ordering::SeqCst) {
                    tracing::info!("metadata store reachable again");
                }
            }
            Err(MetadataError::LeaseNotFound(_)) => {
                tracing::warn!(
                    broker = reg.id.0,
                    "registration lease lost; dropping all leadership and registering again"
                );
                inner.log.release_all();
                inner.groups.release_all_shards();
                let config = ClusterConfig {
                    broker_id: Some(reg.id),
                    ..inner.config.clone()
                };
                match Registration::register(inner.meta.as_ref(), inner.clock.as_ref(), &config)
                    .await
                {
                    Ok(new) => {
                        *inner.registration.lock().unwrap_or_else(|e| e.into_inner()) = new;
                        inner.log.set_incarnation(new.incarnation);
                        if inner.draining.load(Ordering::SeqCst) {
                            let record = inner.read_view().brokers.get(&reg.id).cloned();
                            if let Some(mut r) = record {
                                r.incarnation = new.incarnation;
                                r.draining = true;
                                let _ = put_registration(inner.meta.as_ref(), &r, new.lease, false)
                                    .await;
                            }
                        }
                        watcher::reapply(&inner);
                        inner.controller_wake.notify_one();
                    }
                    Err(e) => {
                        inner.metadata_ok.store(false, Ordering::SeqCst);
                        tracing::error!(error = %e, "cannot register again; retrying");
                    }
                }
            }
            Err(e) => {
                if inner.metadata_ok.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "metadata store unreachable: lease not renewed");
                }
            }
        }
    }
}

/// Decodes a record, logging (not failing on) a corrupt one.
pub(crate) fn decode_or_warn<T: serde::de::DeserializeOwned>(
    kv: &crate::ports::KeyValue,
) -> Option<T> {
    match decode_json(kv) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "ignoring a corrupt cluster record");
            None
        }
    }
}
