//! Administrative changes: topic configs, partition counts, deleting records, and the end
//! offsets of leader epochs.
//!
//! Topic record changes are written with a compare on the topic key's mod revision, so that
//! two brokers changing the same topic cannot lose an update; the local state is updated only
//! after the write succeeded (other brokers learn it from the metadata store).
//!
//! Deleting records rewrites the partition record, which every flush commit of the partition
//! compares. It therefore runs inside the flusher task with no flush under way (the pipeline
//! drained first), like retention: a request is queued and the flusher answers it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

use super::keys;
use super::state::PartitionRecord;
use super::{lock, LogService, ReadRequest, Shared};
use crate::batch;
use crate::error::{Error, Result};
use crate::ports::metadata::encode_json;
use crate::ports::{Compare, MetadataError, MetadataStoreExt, Txn, TxnOp};
use crate::topic::{self, TopicRecord};
use crate::topic_config::{self, ConfigOp};
use crate::types::{LeaderEpoch, Offset, PartitionKey};

/// Attempts at a topic record update that keeps losing the race with other writers.
const TOPIC_UPDATE_ATTEMPTS: u32 = 5;
/// How often a waiting DeleteRecords looks whether the broker is shutting down.
const SHUTDOWN_CHECK: std::time::Duration = std::time::Duration::from_millis(200);
/// Chunk keys deleted per transaction, below etcd's 128 operations.
const DELETES_PER_TXN: usize = 100;

/// How a topic's configs change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// The topic's configs become exactly these (Kafka's AlterConfigs).
    Replace(BTreeMap<String, String>),
    /// Each named config changes (Kafka's IncrementalAlterConfigs).
    Incremental(Vec<(String, ConfigOp)>),
}

#[derive(Debug, Clone)]
pub struct AlterTopicConfigs {
    pub topic: String,
    pub change: ConfigChange,
    /// Only validate; change nothing.
    pub validate_only: bool,
}

#[derive(Debug, Clone)]
pub struct CreatePartitions {
    pub topic: String,
    /// The new total number of partitions; must be larger than the current one.
    pub count: i32,
    /// Only validate; change nothing.
    pub validate_only: bool,
}

/// Where DeleteRecords moves a partition's log start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBefore {
    /// Everything committed so far.
    HighWatermark,
    Offset(Offset),
}

/// A DeleteRecords request waiting for the flusher.
pub(super) struct DeleteRecordsJob {
    /// Lets a requester take back a job the flusher has not started.
    id: uuid::Uuid,
    partition: PartitionKey,
    before: DeleteBefore,
    reply: oneshot::Sender<Result<Offset>>,
}

/// Queue of DeleteRecords requests, drained by the flusher with no flush under way.
pub(super) type AdminJobs = Mutex<Vec<DeleteRecordsJob>>;

impl LogService {
    /// Changes a topic's configs; returns the topic as it is (or would be) afterwards.
    pub async fn alter_topic_configs(&self, req: AlterTopicConfigs) -> Result<TopicRecord> {
        let log = self.shared.config.clone();
        self.update_topic(&req.topic, req.validate_only, |t| {
            let configs = match &req.change {
                ConfigChange::Replace(configs) => {
                    topic::validate_configs(configs)?;
                    configs.clone()
                }
                ConfigChange::Incremental(ops) => topic_config::apply_ops(&t.configs, ops, &log)?,
            };
            Ok(TopicRecord {
                configs,
                ..t.clone()
            })
        })
        .await
    }

    /// Grows a topic to `count` partitions; the new ones start empty, led by this broker.
    pub async fn create_partitions(&self, req: CreatePartitions) -> Result<TopicRecord> {
        topic::validate_partitions(req.count)?;
        let updated = self
            .update_topic(&req.topic, req.validate_only, |t| {
                if req.count <= t.partitions {
                    return Err(Error::InvalidPartitions(req.count));
                }
                Ok(TopicRecord {
                    partitions: req.count,
                    ..t.clone()
                })
            })
            .await?;
        if !req.validate_only {
            tracing::info!(topic = %updated.name, partitions = updated.partitions, "partitions added");
        }
        Ok(updated)
    }

    /// Moves a partition's log start to `before` (DeleteRecords); returns the new log start
    /// (the low watermark). Offsets above the high watermark are out of range; offsets at or
    /// below the current log start change nothing.
    pub async fn delete_records(
        &self,
        partition: PartitionKey,
        before: DeleteBefore,
    ) -> Result<Offset> {
        let shared = &self.shared;
        shared.check_leader(partition)?;
        if shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::ShuttingDown);
        }
        let (reply, mut answer) = oneshot::channel();
        let id = uuid::Uuid::new_v4();
        lock(&shared.admin_jobs).push(DeleteRecordsJob {
            id,
            partition,
            before,
            reply,
        });
        shared.flush_wake.notify_one();
        loop {
            tokio::select! {
                result = &mut answer => return result.unwrap_or(Err(Error::ShuttingDown)),
                _ = shared.clock.sleep(SHUTDOWN_CHECK) => {}
            }
            // A stopping flusher may have looked at the queue for the last time before the
            // job arrived: take it back if it was not started. A started job is answered.
            if shared
                .shutting_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                let mut jobs = lock(&shared.admin_jobs);
                if let Some(i) = jobs.iter().position(|j| j.id == id) {
                    jobs.swap_remove(i);
                    return Err(Error::ShuttingDown);
                }
            }
        }
    }

    /// The end offset of `epoch` in a partition this broker leads: the first offset written
    /// in a later epoch, or the high watermark when no later epoch wrote anything. `None`
    /// when the epoch is newer than the current one.
    ///
    /// The log never truncates, so the answer is never below data already served. The
    /// boundary is found by a binary search over the batches' partition leader epochs, which
    /// never decrease along the log.
    pub async fn epoch_end_offset(
        &self,
        partition: PartitionKey,
        epoch: LeaderEpoch,
    ) -> Result<Option<Offset>> {
        self.shared.check_leader(partition)?;
        let info = self.partition_info(partition)?;
        if epoch > info.leader_epoch {
            return Ok(None);
        }
        if epoch == info.leader_epoch {
            return Ok(Some(info.high_watermark));
        }
        // Invariant: batches ending below `lo` have epochs <= `epoch`; the first batch of a
        // later epoch starts at or below `hi`.
        let mut lo = info.log_start_offset;
        let mut hi = info.high_watermark;
        while lo < hi {
            let mid = Offset(lo.0 + (hi.0 - lo.0) / 2);
            let read = self
                .read(ReadRequest {
                    partition,
                    offset: mid,
                    max_bytes: 1,
                    min_one_batch: true,
                    current_leader_epoch: None,
                })
                .await;
            let records = match read {
                Ok(r) => r.records,
                // Retention moved the log start meanwhile: nothing below it is served.
                Err(Error::OffsetOutOfRange { start, .. }) if start > lo => {
                    lo = start.min(hi);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if records.is_empty() {
                break;
            }
            let header = batch::peek_header(&records)?;
            if header.partition_leader_epoch > epoch.0 {
                hi = Offset(header.base_offset).max(lo);
            } else {
                lo = Offset(header.last_offset() + 1);
            }
        }
        Ok(Some(hi))
    }

    /// Reads the topic record, applies `change` and writes it back with a compare on the
    /// record's mod revision, retrying when another writer changed it meanwhile.
    async fn update_topic<F>(
        &self,
        name: &str,
        validate_only: bool,
        change: F,
    ) -> Result<TopicRecord>
    where
        F: Fn(&TopicRecord) -> Result<TopicRecord>,
    {
        topic::validate_name(name)?;
        let key = keys::topic(name);
        for _ in 0..TOPIC_UPDATE_ATTEMPTS {
            let Some((stored, kv)) = self.shared.meta.get_json::<TopicRecord>(&key).await? else {
                return Err(Error::UnknownTopic(name.to_owned()));
            };
            let updated = change(&stored)?;
            if validate_only {
                return Ok(updated);
            }
            if updated == stored {
                self.install_updated_topic(&updated).await?;
                return Ok(updated);
            }
            let outcome = self
                .shared
                .meta
                .txn(
                    Txn::new()
                        .when(Compare::ModRevision {
                            key: key.clone(),
                            revision: kv.mod_revision,
                        })
                        .then(TxnOp::Put {
                            key: key.clone(),
                            value: encode_json(&updated),
                            lease: None,
                        }),
                )
                .await?;
            if outcome.succeeded {
                self.install_updated_topic(&updated).await?;
                return Ok(updated);
            }
            tracing::debug!(topic = %name, "topic changed concurrently; retrying the update");
        }
        Err(Error::Metadata(MetadataError::Unavailable {
            message: format!("topic {name} keeps changing concurrently; retry"),
        }))
    }
}

impl LogService {
    async fn install_updated_topic(&self, topic: &TopicRecord) -> Result<()> {
        if self.topic(&topic.name).is_some_and(|t| t.id != topic.id) {
            // Deleted and re-created elsewhere: installing it is for the topic watch.
            tracing::debug!(topic = %topic.name, "not installing a topic re-created elsewhere");
            return Ok(());
        }
        self.shared.install_updated_topic(topic).await
    }
}

impl Shared {
    /// Makes a topic record just written (or found current) the local state: its configs,
    /// and partitions it has beyond those known here, which this broker then leads.
    async fn install_updated_topic(&self, topic: &TopicRecord) -> Result<()> {
        let added = self.install_topic(topic);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.clone());
        // In a cluster the controller assigns the new partitions.
        if self.standalone && !added.is_empty() {
            self.take_leadership(&added).await?;
        }
        Ok(())
    }

    /// Answers the queued DeleteRecords requests. Called by the flusher with no flush under way, so
    /// that the partition record it rewrites is not being committed at the same time.
    pub(super) async fn run_admin_jobs(&self) {
        let jobs = std::mem::take(&mut *lock(&self.admin_jobs));
        for job in jobs {
            let result = self.move_log_start(job.partition, job.before).await;
            // The requester may have timed out; nothing to do then.
            let _ = job.reply.send(result);
        }
    }

    async fn move_log_start(&self, key: PartitionKey, before: DeleteBefore) -> Result<Offset> {
        self.refresh_if_stale(key).await?;
        // Serialised with compaction and retention, which replace chunk keys too.
        let _maintenance = self.maintenance.lock().await;
        let partition = self.partition(key)?;
        let (record, revision, leader_revision, doomed) = {
            let p = lock(&partition);
            if !p.writable() {
                return Err(Error::NotLeader(key));
            }
            let (start, end) = (p.record.log_start_offset, p.record.log_end_offset);
            let target = match before {
                DeleteBefore::HighWatermark => end,
                DeleteBefore::Offset(o) => o,
            };
            if target > end {
                return Err(Error::OffsetOutOfRange {
                    offset: target,
                    start,
                    end,
                });
            }
            if target <= start {
                return Ok(start);
            }
            let doomed: Vec<Offset> = p
                .index
                .from_offset(Offset::ZERO)
                .take_while(|c| c.last_offset < target)
                .map(|c| c.base_offset)
                .collect();
            let record = PartitionRecord {
                log_start_offset: target,
                ..p.record
            };
            (record, p.revision, p.leader_revision, doomed)
        };
        let pk = keys::partition(key);
        let mut batches = doomed.chunks(DELETES_PER_TXN - 1);
        let mut txn = Txn::new()
            .when(Compare::ModRevision {
                key: keys::leader(key),
                revision: leader_revision,
            })
            .when(Compare::ModRevision {
                key: pk.clone(),
                revision,
            })
            .then(TxnOp::Put {
                key: pk,
                value: encode_json(&record),
                lease: None,
            });
        for base in batches.next().unwrap_or_default() {
            txn = txn.then(TxnOp::Delete {
                key: keys::chunk(key, *base),
            });
        }
        let outcome = self.meta.txn(txn).await;
        let revision = match outcome {
            Ok(o) if o.succeeded => o.revision,
            Ok(_) => {
                lock(&partition).stale = true;
                return Err(Error::NotLeader(key));
            }
            Err(e) => {
                lock(&partition).stale = true;
                return Err(e.into());
            }
        };
        {
            let mut p = lock(&partition);
            p.record = record;
            p.revision = revision;
            p.index.truncate_before(record.log_start_offset);
        }
        tracing::info!(partition = %key, log_start = record.log_start_offset.0, "records deleted");
        // The rest are below the new log start: nothing reads them, and only the maintenance
        // lock holders (which we are) would touch them.
        for group in batches {
            let mut txn = Txn::new();
            for base in group {
                txn = txn.then(TxnOp::Delete {
                    key: keys::chunk(key, *base),
                });
            }
            if let Err(e) = self.meta.txn(txn).await {
                tracing::warn!(partition = %key, error = %e, "cannot delete chunk keys below the log start");
                break;
            }
        }
        Ok(record.log_start_offset)
    }
}
