//! Topic registry, start-up loading and leadership of partitions.

use std::collections::{BTreeMap, HashMap};

use super::state::LeaderRecord;
use super::{lock, LogService, Role, Shared};
use crate::error::{Error, Result};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{ClockExt, Compare, MetadataStoreExt, Txn, TxnOp};
use crate::schema::keys;
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

impl Shared {
    /// Loads the topics and the leader records of their partitions: every partition starts
    /// as a follower, but for one whose record already names this incarnation, which loads.
    /// In standalone mode the log then takes every partition itself.
    pub(super) async fn load(&self) -> Result<()> {
        self.migrate_legacy().await?;
        // Partition keys before topics: a topic's key is written before any key below it,
        // so a partition whose topic is missing afterwards belongs to a deleted topic.
        let leaders = self.meta.range(&keys::leaders_prefix()).await?;
        let checkpoints = self.meta.range(&keys::checkpoints_prefix()).await?;
        let topics = self.meta.range(&keys::topics_prefix()).await?;
        let mut seen: std::collections::BTreeSet<TopicId> = std::collections::BTreeSet::new();
        seen.extend(
            leaders
                .kvs
                .iter()
                .filter_map(|kv| keys::parse_leader(&kv.key).map(|k| k.topic)),
        );
        seen.extend(
            checkpoints
                .kvs
                .iter()
                .filter_map(|kv| keys::parse_checkpoint(&kv.key).map(|k| k.topic)),
        );
        let mut all = Vec::new();
        for kv in &topics.kvs {
            let t: TopicRecord = decode_json(kv)?;
            self.partitions.install_topic(&t);
            all.extend(super::partition::topic_partitions(&t));
            self.topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t);
        }
        for kv in &leaders.kvs {
            if let Some(key) = keys::parse_leader(&kv.key) {
                let record: LeaderRecord = decode_json(kv)?;
                if self.names_us(&record) {
                    // Given to this incarnation between its registration and this read (a
                    // restarted broker gets its orphaned partitions back at once): loaded
                    // now, as the watch would have it. Recorded as a follower's, the
                    // watch's sync would find the record known and never load it.
                    if self.set_leadership(key, record, kv.mod_revision, true) {
                        self.queue_takeover(key, kv.mod_revision);
                    }
                } else if let Ok(p) = self.partitions.get(key) {
                    let mut p = lock(&p);
                    p.leadership = record;
                    p.leader_revision = kv.mod_revision;
                }
            }
        }
        self.remove_orphans(seen).await?;
        if self.standalone {
            self.take_leadership(&all).await?;
        }
        tracing::info!(
            topics = topics.kvs.len(),
            partitions = all.len(),
            "log loaded"
        );
        Ok(())
    }

    /// Deletes the keys of partitions whose topic is gone: a checkpoint that raced the topic's
    /// deletion can leave them, and they would keep objects from collection.
    async fn remove_orphans(&self, seen: std::collections::BTreeSet<TopicId>) -> Result<()> {
        let known: std::collections::HashSet<TopicId> = {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            topics.by_id.keys().copied().collect()
        };
        for topic in seen.into_iter().filter(|t| !known.contains(t)) {
            tracing::warn!(topic = %topic, "removing metadata of a deleted topic");
            self.meta.txn(delete_topic_keys(Txn::new(), topic)).await?;
        }
        Ok(())
    }

    /// Standalone mode: records this broker as leader of the partitions with a new epoch
    /// (epoch 0 for a partition that never had a leader), then loads them.
    pub(super) async fn take_leadership(&self, partitions: &[PartitionKey]) -> Result<()> {
        for group in partitions.chunks(LEADERSHIP_GROUP) {
            let mut txn = Txn::new();
            let mut updates = Vec::with_capacity(group.len());
            for key in group {
                let p = self.partitions.get(*key)?;
                let p = lock(&p);
                let record = LeaderRecord {
                    leader: Some(self.config.broker_id),
                    leader_epoch: if p.leader_revision == 0 {
                        p.leadership.leader_epoch
                    } else {
                        p.leadership.leader_epoch.next()
                    },
                    incarnation: self.incarnation(),
                };
                let k = keys::leader(*key);
                txn = txn
                    .when(Compare::ModRevision {
                        key: k.clone(),
                        revision: p.leader_revision,
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
                    message: "leader records changed while taking leadership".into(),
                }));
            }
            for (key, record) in updates {
                if self.set_leadership(key, record, outcome.revision, true) {
                    self.queue_takeover(key, outcome.revision);
                }
            }
        }
        // Serves once loaded: wait for the takeovers.
        let mut changed = self.partitions.watch_leadership();
        loop {
            let loading = partitions.iter().any(|k| {
                self.partitions
                    .get(*k)
                    .is_ok_and(|p| lock(&p).role == Role::Loading)
            });
            if !loading {
                return Ok(());
            }
            let waited = self
                .clock
                .timeout(std::time::Duration::from_secs(60), changed.changed())
                .await;
            if waited.is_err() {
                return Err(Error::Timeout(60_000));
            }
        }
    }
}

/// Adds to `txn` the deletion of every key of a topic's partitions.
pub(super) fn delete_topic_keys(txn: Txn, topic: TopicId) -> Txn {
    txn.then(TxnOp::DeletePrefix {
        prefix: keys::topic_leaders_prefix(topic),
    })
    .then(TxnOp::DeletePrefix {
        prefix: keys::topic_checkpoints_prefix(topic),
    })
    .then(TxnOp::DeletePrefix {
        prefix: keys::topic_segments_prefix(topic),
    })
    // Keys of the first release's layout (see `migrate`).
    .then(TxnOp::DeletePrefix {
        prefix: format!("{}{topic}/", keys::legacy::partitions_prefix()),
    })
    .then(TxnOp::DeletePrefix {
        prefix: format!("{}{topic}/", keys::legacy::chunks_prefix()),
    })
    .then(TxnOp::DeletePrefix {
        prefix: format!("{}{topic}/", keys::legacy::producers_prefix()),
    })
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

    /// Learns a topic (created here or seen in the metadata store) or a change of it; its
    /// new partitions start as followers. Returns the partitions added.
    pub fn install_topic(&self, record: TopicRecord) -> Vec<PartitionKey> {
        let added = self.shared.partitions.install_topic(&record);
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = topics.get_by_id(record.id).map(|t| t.name.clone()) {
            if old != record.name {
                topics.remove(&old);
            }
        }
        topics.insert(record);
        added
    }

    /// Forgets a deleted topic and its partitions (pending appends to them fail).
    pub fn forget_topic(&self, name: &str, id: TopicId) {
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if topics.by_name.get(name).is_some_and(|t| t.id == id) {
            topics.remove(name);
        }
        drop(topics);
        self.shared.partitions.remove_topic(id);
    }

    pub async fn create_topic(&self, req: CreateTopic) -> Result<TopicRecord> {
        topic::validate_new_name(&req.name)?;
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
            .txn(Txn::create(key, encode_json(&record), None))
            .await?;
        if !outcome.succeeded {
            return Err(Error::TopicAlreadyExists(req.name));
        }
        self.install_topic(record.clone());
        if self.shared.standalone {
            let partitions: Vec<PartitionKey> =
                super::partition::topic_partitions(&record).collect();
            self.shared.take_leadership(&partitions).await?;
        }
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
            .txn(delete_topic_keys(
                Txn::new()
                    .when(Compare::ModRevision {
                        key: topic_key.clone(),
                        revision: kv.mod_revision,
                    })
                    .then(TxnOp::Delete { key: topic_key }),
                stored.id,
            ))
            .await?;
        if !outcome.succeeded {
            return Err(Error::UnknownTopic(name.to_owned()));
        }
        self.forget_topic(name, stored.id);
        tracing::info!(topic = %name, id = %stored.id, "topic deleted");
        Ok(stored)
    }
}
