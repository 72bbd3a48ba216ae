//! The partition log of one broker: appends gathered into group-commit flushes, committed
//! extents, reads by offset and timestamp.
//!
//! An append is answered only after the flush object holding it is in the object store and
//! the one metadata transaction of its flush succeeded under the broker's fence (DESIGN.md,
//! section 3). Offsets are assigned when the flush object is built, from the committed log
//! end, so an offset is never reused: a failed flush commits nothing.
//!
//! The parts, each with one job:
//! - `partition`: the partitions known here (leadership, role, committed extent) and their table;
//! - `flush`: the pipeline (gather, build, upload, commit in order, answer);
//! - `writer`: this broker's write identity (incarnation, fence, flush sequence);
//! - `takeover`: loading partitions this broker was given (checkpoint + flush records after);
//! - `leadership`: the leader records as seen, hand-overs;
//! - `maintenance`: checkpoint rounds, segment merges, retention, DeleteRecords, and the
//!   cleanup of covered flush records;
//! - `gc`: objects nothing references;
//! - `read`, `cache`: reads; `topics`, `admin`: the catalog.
//!
//! `Shared` holds one part per job: `partition::Table`, `flush::Pipeline`, `writer::Writer`,
//! `maintenance::Jobs`, `takeover::Queue`, `gc::Collector`, the catalog's `topics::Topics`
//! and the `cache::ChunkCache`, beside the settings and ports.
//!
//! # Lock order
//! A thread holds at most these, in this order, and never across an `.await`:
//! `topics` -> `partitions.map` -> one partition's mutex -> `flush.projected` ->
//! `flush.pending` -> `flush.flushing` -> `writer` -> `takeovers.waiting`. The async
//! `maintenance.lock` (`maintenance::Jobs::hold`) is taken before any of them and held across
//! awaits (one maintenance job at a time). `maintenance.admin` and `gc.live_incarnations`
//! are taken alone.

mod admin;
mod cache;
mod config;
mod flush;
pub(crate) mod gc;
mod leadership;
mod maintenance;
mod migrate;
mod partition;
pub(crate) mod producer_ids;
pub mod producers;
mod read;
pub mod state;
mod takeover;
mod timestamps;
mod topics;
mod writer;

use bytes::Bytes;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::batch;
use crate::error::{Error, Result};
use crate::ports::{Clock, MetadataStore, ObjectStore};
use crate::types::{BrokerId, LeaderEpoch, Offset, PartitionKey};

pub use admin::{AlterTopicConfigs, ConfigChange, CreatePartitions};
pub use config::LogConfig;
pub use gc::GcStats;
pub use maintenance::{CleanPolicy, DeleteBefore, Retention};
pub use read::{ReadRequest, ReadResult};
pub use state::{ChunkIndex, ChunkRecord, LeaderRecord, PartitionRecord};
pub use timestamps::TimestampedOffset;
pub use topics::CreateTopic;

use cache::ChunkCache;
use partition::Role;

/// What an acknowledged append got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    pub log_start_offset: Offset,
}

pub struct AppendRequest {
    pub partition: PartitionKey,
    pub batch: Bytes,
    /// Whether the caller waits for the commit (acks != 0).
    pub wait: bool,
}

/// Resolves when the append is committed or has failed.
pub type AppendTicket = oneshot::Receiver<Result<Appended>>;

/// What one flush did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    pub bytes: usize,
    pub partitions: usize,
    pub upload_ms: u64,
    pub commit_ms: u64,
}

/// Receives measurements of the log's work (metrics live outside core).
pub trait LogObserver: Send + Sync + 'static {
    fn flushed(&self, report: FlushReport);
}

/// Ignores every measurement.
#[derive(Debug, Default)]
pub struct NoObserver;

impl LogObserver for NoObserver {
    fn flushed(&self, _report: FlushReport) {}
}

/// Running totals of the log's background work.
#[derive(Debug, Default)]
pub struct LogStats {
    pub flushes: std::sync::atomic::AtomicU64,
    pub flushed_bytes: std::sync::atomic::AtomicU64,
    pub segments: std::sync::atomic::AtomicU64,
    /// Small chunks rewritten into coalesced ones.
    pub coalesced: std::sync::atomic::AtomicU64,
    /// Cleans of compacted partitions committed.
    pub cleaner_runs: std::sync::atomic::AtomicU64,
    /// Segment bytes those cleans read.
    pub cleaned_bytes: std::sync::atomic::AtomicU64,
    /// Records those cleans removed.
    pub cleaned_records: std::sync::atomic::AtomicU64,
}

/// Extent and leadership of a partition as this broker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: Offset,
}

/// The engine's parts, each owned by the module that does its job; see the module docs for
/// the lock order between them.
struct Shared {
    // Settings and ports.
    config: LogConfig,
    /// Single-node use without a cluster: the log leads every partition itself.
    standalone: bool,
    store: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn LogObserver>,

    // The parts.
    /// The catalog: topics by name and id.
    topics: RwLock<topics::Topics>,
    /// Every partition known here: leadership, role, committed extent.
    partitions: partition::Table,
    /// The flush pipeline: pending batches, flushes under way, their projected extents.
    flush: flush::Pipeline,
    /// This broker's write identity: incarnation, fence, flush sequence.
    writer: Mutex<writer::Writer>,
    /// Checkpoint rounds, merges, retention and DeleteRecords: one at a time.
    maintenance: maintenance::Jobs,
    /// Partitions given to this broker and waiting to be loaded.
    takeovers: takeover::Queue,
    /// Whether this broker collects garbage, and the incarnations that are live.
    gc: gc::Collector,
    /// Chunk bytes kept for reads.
    cache: ChunkCache,
    /// Producer ids reserved by this broker and not handed out yet.
    producer_ids: tokio::sync::Mutex<producer_ids::IdBlock>,

    // State of the whole log.
    /// Flush objects uploaded and segments built, for metrics.
    stats: LogStats,
    shutting_down: std::sync::atomic::AtomicBool,
    /// The metadata store refused the last write for lack of space (until a write succeeds).
    metadata_full: std::sync::atomic::AtomicBool,
}

/// Handle to a broker's log; cheap to clone.
#[derive(Clone)]
pub struct LogService {
    shared: Arc<Shared>,
    flusher: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Background tasks beside the flusher: garbage collection, maintenance (checkpoints,
    /// merges, retention) and takeovers.
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // State behind these locks is updated in single assignments; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogService {
    /// Loads topics from the metadata store, takes leadership of every partition itself
    /// (standalone: one broker, no cluster; for tests and tools) and starts the flusher.
    pub async fn open(
        config: LogConfig,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<LogService> {
        Self::start(config, store, meta, clock, Arc::new(NoObserver), true).await
    }

    /// Loads topics and who leads their partitions, and starts the flusher. Leadership comes
    /// from the cluster: [`LogService::observe_leadership`] tells the log what the leader
    /// records say.
    pub async fn open_clustered(
        config: LogConfig,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn LogObserver>,
    ) -> Result<LogService> {
        Self::start(config, store, meta, clock, observer, false).await
    }

    /// [`LogService::open`] with an observer of flushes (for metrics).
    pub async fn open_observed(
        config: LogConfig,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn LogObserver>,
    ) -> Result<LogService> {
        Self::start(config, store, meta, clock, observer, true).await
    }

    async fn start(
        config: LogConfig,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn LogObserver>,
        standalone: bool,
    ) -> Result<LogService> {
        let incarnation = if config.incarnation == 0 {
            writer::random_incarnation()
        } else {
            config.incarnation
        };
        let shared = Arc::new(Shared {
            cache: ChunkCache::new(config.cache_bytes),
            maintenance: maintenance::Jobs::default(),
            writer: Mutex::new(writer::Writer::new(incarnation)),
            takeovers: takeover::Queue::default(),
            gc: gc::Collector::new(standalone, (config.broker_id, incarnation)),
            metadata_full: std::sync::atomic::AtomicBool::new(false),
            stats: LogStats::default(),
            observer,
            config,
            store,
            meta,
            clock,
            topics: RwLock::new(topics::Topics::default()),
            partitions: partition::Table::new(),
            flush: flush::Pipeline::new(),
            standalone,
            producer_ids: tokio::sync::Mutex::new(producer_ids::IdBlock::default()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        shared.sync_fence().await?;
        let tasks = vec![
            tokio::spawn(takeover::run(shared.clone())),
            tokio::spawn(gc::run(shared.clone())),
            tokio::spawn(maintenance::run(shared.clone())),
        ];
        let flusher = tokio::spawn(flush::run(shared.clone()));
        let log = LogService {
            shared,
            flusher: Arc::new(Mutex::new(Some(flusher))),
            tasks: Arc::new(Mutex::new(tasks)),
        };
        log.shared.load().await?;
        Ok(log)
    }

    pub fn broker_id(&self) -> BrokerId {
        self.shared.config.broker_id
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// The log's clock: the time a batch appended now is appended at (`LogAppendTime`).
    pub fn now_ms(&self) -> crate::Millis {
        self.shared.clock.now_ms()
    }

    /// Validates a batch and queues it for the next flush. The order of calls is the order
    /// of offsets within a partition.
    pub fn append(&self, req: AppendRequest) -> Result<Option<AppendTicket>> {
        let shared = &self.shared;
        if shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::ShuttingDown);
        }
        if req.batch.len() > shared.config.max_batch_bytes {
            return Err(Error::BatchTooLarge {
                size: req.batch.len(),
                max: shared.config.max_batch_bytes,
            });
        }
        let header = batch::validate_single(&req.batch)?;
        shared.partitions.check_leader(req.partition)?;
        let (reply, ticket) = if req.wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        shared.flush.queue(
            req.partition,
            flush::PendingBatch {
                batch: req.batch,
                header,
                reply,
            },
            shared.clock.as_ref(),
            shared.config.flush_bytes,
        );
        Ok(ticket)
    }

    /// Leadership (from the leader records) and, where this broker leads, the extent of a
    /// partition.
    pub fn partition_info(&self, partition: PartitionKey) -> Result<PartitionInfo> {
        let p = self.shared.partitions.get(partition)?;
        let p = lock(&p);
        let hw = p.record.log_end_offset;
        Ok(PartitionInfo {
            leader: p.leadership.leader,
            leader_epoch: p.leadership.leader_epoch,
            log_start_offset: p.record.log_start_offset,
            high_watermark: hw,
            last_stable_offset: p.last_stable_offset(),
        })
    }

    fn producer_states(&self, partition: PartitionKey) -> Result<producers::ProducerStates> {
        let p = self.shared.partitions.get(partition)?;
        let p = lock(&p);
        Ok(p.producers.clone())
    }

    /// Ok if this broker leads the partition and serves its reads.
    pub fn check_serving(&self, partition: PartitionKey) -> Result<()> {
        let p = self.shared.partitions.get(partition)?;
        let p = lock(&p);
        match p.role {
            Role::Leader | Role::HandingOver => Ok(()),
            Role::Loading => Err(Error::LeaderLoading(partition)),
            Role::Follower if p.leadership.leader.is_none() => {
                Err(Error::LeaderNotAvailable(partition))
            }
            Role::Follower => Err(Error::NotLeader(partition)),
        }
    }

    /// Checks a client's idea of the leader epoch against ours.
    pub fn check_epoch(
        &self,
        partition: PartitionKey,
        requested: Option<LeaderEpoch>,
    ) -> Result<()> {
        self.check_serving(partition)?;
        let Some(requested) = requested else {
            return Ok(());
        };
        let current = self.partition_info(partition)?.leader_epoch;
        if requested < current {
            Err(Error::FencedLeaderEpoch {
                partition,
                requested,
                current,
            })
        } else if requested > current {
            Err(Error::UnknownLeaderEpoch {
                partition,
                requested,
                current,
            })
        } else {
            Ok(())
        }
    }

    /// Waits while the produced bytes held (pending or being flushed) are at
    /// `max_buffered_bytes`: the caller stops taking produce requests until flushes finish.
    pub async fn wait_for_room(&self) {
        if self.buffered_bytes() < self.shared.config.max_buffered_bytes {
            // The usual case, on every produce request: no subscription needed.
            return;
        }
        let mut done = self.shared.flush.subscribe();
        while self.buffered_bytes() >= self.shared.config.max_buffered_bytes {
            if done.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the metadata store refused this broker's last write for lack of space (it
    /// cannot take produces until an operator makes room).
    pub fn metadata_full(&self) -> bool {
        self.shared
            .metadata_full
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A write went through: the store has room again.
    pub fn clear_metadata_full(&self) {
        self.shared
            .metadata_full
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Produced bytes pending or in flushes under way.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.flush.buffered_bytes()
    }

    /// Changes whenever a commit makes new data visible.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.flush.subscribe()
    }

    /// Running totals of flushes and compactions.
    pub fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// (bytes held, hits, misses) of the chunk cache.
    pub fn cache_stats(&self) -> (usize, u64, u64) {
        self.shared.cache.stats()
    }

    /// Stops accepting appends, flushes and commits what is pending, stops the flusher, and
    /// checkpoints what it leads so that the next leader reads little.
    pub async fn shutdown(&self) {
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.flush.wake();
        self.shared.maintenance.wake();
        let handle = lock(&self.flusher).take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "flusher task failed");
            }
        }
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in &tasks {
            task.abort();
        }
        // Until they are gone they hold the stores (an embedded store's file stays open).
        for task in tasks {
            let _ = task.await;
        }
        if let Err(e) = self
            .shared
            .checkpoint_round(maintenance::Round::Final)
            .await
        {
            tracing::warn!(error = %e, "cannot checkpoint at shutdown; the next leader reads the flush records");
        }
    }
}
