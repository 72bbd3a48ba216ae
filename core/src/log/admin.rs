//! Administrative changes: topic configs, partition counts, and the end offsets of leader
//! epochs (DeleteRecords is in `maintenance`).
//!
//! Topic record changes are written with a compare on the topic key's mod revision, so that
//! two brokers changing the same topic cannot lose an update; the local state is updated only
//! after the write succeeded (other brokers learn it from the metadata store).

use std::collections::BTreeMap;

use super::{LogService, ReadRequest, Shared};
use crate::batch;
use crate::error::{Error, Result};
use crate::ports::metadata::encode_json;
use crate::ports::{Compare, MetadataError, MetadataStoreExt, Txn, TxnOp};
use crate::schema::keys;
use crate::topic::{self, TopicRecord};
use crate::topic_config::{self, ConfigOp};
use crate::types::{LeaderEpoch, Offset, PartitionKey};

/// Attempts at a topic record update that keeps losing the race with other writers.
const TOPIC_UPDATE_ATTEMPTS: u32 = 5;

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
        self.shared.partitions.check_leader(partition)?;
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
        let added = self.partitions.install_topic(topic);
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
}
