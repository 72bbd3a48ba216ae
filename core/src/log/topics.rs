//! Topic registry, start-up loading and leadership of partitions.

use std::collections::{BTreeMap, HashMap};

use super::keys;
use super::state::{ChunkRecord, PartitionRecord};
use super::{lock, LogService, Shared};
use crate::error::{Error, Result};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Compare, MetadataStoreExt, Txn, TxnOp};
use crate::topic::{self, TopicRecord};
use crate::types::{PartitionKey, TopicId};

/// Partitions per leadership transaction: one compare and one put each, below etcd's 128.
const LEADERSHIP_GROUP: usize = 100;

#[derive(Debug, Default)]
pub(super) struct Topics {
    by_name: BTreeMap<String, TopicRecord>,
    by_id: HashMap<TopicId, String>,
}

impl Topics {
    pub(super) fn insert(&mut self, t: TopicRecord) {
        self.by_id.insert(t.id, t.name.clone());
        self.by_name.insert(t.name.clone(), t);
    }

    pub(super) fn get_by_id(&self, id: TopicId) -> Option<&TopicRecord> {
        self.by_id.get(&id).and_then(|name| self.by_name.get(name))
    }

    fn remove(&mut self, name: &str) -> Option<TopicRecord> {
        let t = self.by_name.remove(name)?;
        self.by_id.remove(&t.id);
        Some(t)
    }
}

/// A request to create a topic.
#[derive(Debug, Clone)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    /// Only validate; create nothing.
    pub validate_only: bool,
}

type LoadedStates = BTreeMap<PartitionKey, (PartitionRecord, i64, Vec<ChunkRecord>)>;

impl Shared {
    pub(super) async fn load(&self) -> Result<()> {
        // Partitions and chunks before topics: a topic's key is written before any key below
        // it, so a partition whose topic is missing afterwards belongs to a deleted topic.
        let partitions = self.meta.range(&keys::partitions_prefix()).await?;
        let chunks = self.meta.range(&keys::chunks_prefix()).await?;
        let topics = self.meta.range(&keys::topics_prefix()).await?;
        let mut states: LoadedStates = BTreeMap::new();
        for kv in &partitions.kvs {
            if let Some(key) = keys::parse_partition(&kv.key) {
                let record: PartitionRecord = decode_json(kv)?;
                states.insert(key, (record, kv.mod_revision, Vec::new()));
            }
        }
        for kv in &chunks.kvs {
            if let Some((key, _)) = keys::parse_chunk(&kv.key) {
                let chunk: ChunkRecord = decode_json(kv)?;
                states.entry(key).or_default().2.push(chunk);
            }
        }
        let mut all = Vec::new();
        for kv in &topics.kvs {
            let t: TopicRecord = decode_json(kv)?;
            self.install_topic(&t, &mut states);
            all.extend(Self::topic_partitions(&t));
            self.topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t);
        }
        self.remove_orphans(&states).await?;
        self.take_leadership(&all).await?;
        tracing::info!(
            topics = topics.kvs.len(),
            partitions = all.len(),
            chunks = chunks.kvs.len(),
            "log loaded"
        );
        Ok(())
    }

    /// Deletes the keys of partitions whose topic is gone: a commit that raced the topic's
    /// deletion can leave them, and their chunk records would keep objects from collection.
    async fn remove_orphans(&self, states: &LoadedStates) -> Result<()> {
        let known: std::collections::HashSet<TopicId> = {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            topics.by_id.keys().copied().collect()
        };
        let orphans: std::collections::BTreeSet<TopicId> = states
            .keys()
            .map(|k| k.topic)
            .filter(|t| !known.contains(t))
            .collect();
        for topic in orphans {
            tracing::warn!(topic = %topic, "removing metadata of a deleted topic");
            self.meta
                .txn(
                    Txn::new()
                        .then(TxnOp::DeletePrefix {
                            prefix: keys::topic_partitions_prefix(topic),
                        })
                        .then(TxnOp::DeletePrefix {
                            prefix: keys::topic_chunks_prefix(topic),
                        }),
                )
                .await?;
        }
        Ok(())
    }

    /// Records this broker as leader of the partitions with a new epoch (epoch 0 for a
    /// partition that never had a record).
    pub(super) async fn take_leadership(&self, partitions: &[PartitionKey]) -> Result<()> {
        for group in partitions.chunks(LEADERSHIP_GROUP) {
            let mut txn = Txn::new();
            let mut updates = Vec::with_capacity(group.len());
            for key in group {
                let p = self.partition(*key)?;
                let p = lock(&p);
                let mut record = p.record;
                if p.revision != 0 {
                    record.leader_epoch = record.leader_epoch.next();
                }
                record.leader = Some(self.config.broker_id);
                let k = keys::partition(*key);
                txn = txn
                    .when(Compare::ModRevision {
                        key: k.clone(),
                        revision: p.revision,
                    })
                    .then(TxnOp::Put {
                        key: k,
                        value: encode_json(&record),
                        lease: None,
                    });
                updates.push((*key, record));
            }
            let outcome = self.meta.txn(txn).await?;
            if !outcome.succeeded {
                return Err(Error::Metadata(crate::ports::MetadataError::Fatal {
                    message: "partition records changed while taking leadership".into(),
                }));
            }
            for (key, record) in updates {
                let p = self.partition(key)?;
                let mut p = lock(&p);
                p.record = record;
                p.revision = outcome.revision;
            }
        }
        Ok(())
    }
}

impl LogService {
    pub fn topic(&self, name: &str) -> Option<TopicRecord> {
        let topics = self.shared.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<TopicRecord> {
        let topics = self.shared.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .by_id
            .get(&id)
            .and_then(|name| topics.by_name.get(name))
            .cloned()
    }

    pub fn topics(&self) -> Vec<TopicRecord> {
        let topics = self.shared.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.by_name.values().cloned().collect()
    }

    pub async fn create_topic(&self, req: CreateTopic) -> Result<TopicRecord> {
        topic::validate_name(&req.name)?;
        topic::validate_partitions(req.partitions)?;
        topic::validate_configs(&req.configs)?;
        if self.topic(&req.name).is_some() {
            return Err(Error::TopicAlreadyExists(req.name));
        }
        let record = TopicRecord {
            id: TopicId::random(),
            name: req.name.clone(),
            partitions: req.partitions,
            configs: req.configs,
            created_ms: self.shared.clock.now_ms(),
        };
        if req.validate_only {
            return Ok(record);
        }
        let key = keys::topic(&req.name);
        let outcome = self
            .shared
            .meta
            .txn(
                Txn::new()
                    .when(Compare::ModRevision {
                        key: key.clone(),
                        revision: 0,
                    })
                    .then(TxnOp::Put {
                        key,
                        value: encode_json(&record),
                        lease: None,
                    }),
            )
            .await?;
        if !outcome.succeeded {
            return Err(Error::TopicAlreadyExists(req.name));
        }
        self.shared.install_topic(&record, &mut BTreeMap::new());
        self.shared
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.clone());
        let partitions: Vec<PartitionKey> = Shared::topic_partitions(&record).collect();
        self.shared.take_leadership(&partitions).await?;
        tracing::info!(topic = %record.name, id = %record.id, partitions = record.partitions, "topic created");
        Ok(record)
    }

    /// Removes a topic's metadata; its data objects become garbage.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicRecord> {
        let record = self
            .topic(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))?;
        let topic_key = keys::topic(name);
        let current = self.shared.meta.get_json::<TopicRecord>(&topic_key).await?;
        let Some((stored, kv)) = current.filter(|(t, _)| t.id == record.id) else {
            return Err(Error::UnknownTopic(name.to_owned()));
        };
        let outcome = self
            .shared
            .meta
            .txn(
                Txn::new()
                    .when(Compare::ModRevision {
                        key: topic_key.clone(),
                        revision: kv.mod_revision,
                    })
                    .then(TxnOp::Delete { key: topic_key })
                    .then(TxnOp::DeletePrefix {
                        prefix: keys::topic_partitions_prefix(stored.id),
                    })
                    .then(TxnOp::DeletePrefix {
                        prefix: keys::topic_chunks_prefix(stored.id),
                    }),
            )
            .await?;
        if !outcome.succeeded {
            return Err(Error::UnknownTopic(name.to_owned()));
        }
        self.shared
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.shared.remove_topic(stored.id);
        tracing::info!(topic = %name, id = %stored.id, "topic deleted");
        Ok(stored)
    }
}
