//! Deleting what checkpoints made unnecessary: flush records they cover, and segment keys
//! below a partition's log start.
//!
//! A flush record (broker B, incarnation I, seq s) is covered for a partition P when P's
//! checkpoint names another tail, or names (B, I) with `after >= s`. This broker deletes its
//! own records up to the sequence its last complete round covered, except those a partition
//! it lost without a hand-over may still need: until that partition's new leader has
//! checkpointed it, the records stay. Records of incarnations that are gone (a broker that
//! died or registered again) are deleted by the controller's collection, record by record,
//! once each is covered for every partition it holds.

use std::collections::{BTreeMap, HashMap};

use super::Snapshot;
use crate::error::Result;
use crate::log::{lock, Shared};
use crate::ports::{Txn, TxnOp};
use crate::schema::{self, keys, Checkpoint, FlushRecord};
use crate::types::{BrokerId, PartitionKey};

/// Keys deleted per transaction, below etcd's 128 operations.
const DELETES_PER_TXN: usize = 100;

impl Shared {
    /// Re-reads the checkpoints whose last write had an unknown outcome: one naming this
    /// incarnation is ours (its revision is adopted); one naming another broker means the
    /// partition was taken over, and this broker stops leading it.
    pub(in crate::log) async fn refresh_checkpoint_revisions(&self) {
        let unknown: Vec<PartitionKey> = {
            let map = self.partitions.read();
            map.iter()
                .filter(|(_, p)| {
                    let p = lock(p);
                    p.writable() && p.checkpoint.revision < 0
                })
                .map(|(k, _)| *k)
                .collect()
        };
        let me = self.config.broker_id;
        let incarnation = self.incarnation();
        for key in unknown {
            let Ok(found) = self.meta.get(&keys::checkpoint(key)).await else {
                continue;
            };
            let ours = found.as_ref().and_then(|kv| {
                let c = Checkpoint::decode(&kv.value).ok()?;
                (c.tail.broker == me && c.tail.incarnation == incarnation)
                    .then_some(kv.mod_revision)
            });
            let Ok(partition) = self.partitions.get(key) else {
                continue;
            };
            let mut p = lock(&partition);
            if p.checkpoint.revision >= 0 {
                continue;
            }
            match ours {
                Some(revision) => p.checkpoint.revision = revision,
                None => {
                    tracing::warn!(partition = %key, "another broker checkpointed this partition: it was taken over");
                    let last = p.checkpoint.last_flush;
                    p.become_follower();
                    drop(p);
                    if last > 0 {
                        lock(&self.writer).lost.insert(key, last);
                    }
                    self.partitions.leadership_changed();
                }
            }
        }
    }

    /// Deletes this incarnation's flush records up to `covered`, short of what a lost
    /// partition still needs.
    pub(in crate::log) async fn delete_covered(&self, covered: u64) {
        let (incarnation, done, lost) = {
            let w = lock(&self.writer);
            (w.incarnation, w.covered_seq, w.lost.clone())
        };
        let mut upto = covered;
        for (partition, last) in lost {
            if last > done && last <= upto {
                match self.covered_elsewhere(partition, incarnation, last).await {
                    Ok(true) => {
                        lock(&self.writer).lost.remove(&partition);
                    }
                    Ok(false) => upto = upto.min(last - 1),
                    Err(e) => {
                        tracing::debug!(partition = %partition, error = %e, "cannot read a lost partition's checkpoint");
                        upto = upto.min(last - 1);
                    }
                }
            } else if last <= done {
                lock(&self.writer).lost.remove(&partition);
            }
        }
        if upto <= done {
            return;
        }
        let me = self.config.broker_id;
        let txn = Txn::new().then(TxnOp::DeleteRange {
            start: keys::flush(me, incarnation, done + 1),
            end: keys::flush(me, incarnation, upto + 1),
        });
        match self.meta.txn(txn).await {
            Ok(_) => {
                let mut w = lock(&self.writer);
                if w.incarnation == incarnation {
                    w.covered_seq = w.covered_seq.max(upto);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot delete covered flush records yet"),
        }
    }

    /// Whether a partition this broker lost has been checkpointed by another leader (or by
    /// this one past `seq`).
    async fn covered_elsewhere(
        &self,
        partition: PartitionKey,
        incarnation: u64,
        seq: u64,
    ) -> Result<bool> {
        let Some(kv) = self.meta.get(&keys::checkpoint(partition)).await? else {
            // No checkpoint at all: the topic is gone, or nobody has taken it over yet.
            return Ok(!self.topic_known(partition.topic));
        };
        let c = Checkpoint::decode(&kv.value).map_err(|e| schema::corrupt(&kv, e))?;
        Ok(covers(&c, self.config.broker_id, incarnation, seq))
    }

    /// Deletes the segment keys that fell below a partition's new log start.
    pub(in crate::log) async fn drop_segments_below(&self, committed: &[(&Snapshot, i64)]) {
        for (s, _) in committed.iter().filter(|(s, _)| s.moved_start) {
            let prefix = keys::partition_segments_prefix(s.key);
            let Ok(range) = self.meta.range(&prefix).await else {
                continue;
            };
            let doomed: Vec<String> = range
                .kvs
                .iter()
                .filter(|kv| {
                    schema::SegmentRecord::decode(&kv.value)
                        .is_ok_and(|seg| seg.last_offset < s.record.log_start_offset)
                })
                .map(|kv| kv.key.clone())
                .collect();
            for group in doomed.chunks(DELETES_PER_TXN) {
                let mut txn = Txn::new();
                for key in group {
                    txn = txn.then(TxnOp::Delete { key: key.clone() });
                }
                if let Err(e) = self.meta.txn(txn).await {
                    tracing::debug!(partition = %s.key, error = %e, "cannot delete segment keys below the log start");
                    break;
                }
            }
        }
    }

    /// Deletes the flush records of incarnations no live broker has, each once it is covered
    /// for every partition it holds. `live` is (broker, incarnation) of the brokers alive.
    pub(in crate::log) async fn delete_dead_records(
        &self,
        live: &[(BrokerId, u64)],
    ) -> Result<usize> {
        let all = self.meta.range(&keys::flushes_prefix()).await?;
        let mut checkpoints: HashMap<PartitionKey, Option<Checkpoint>> = HashMap::new();
        let mut dead: BTreeMap<(BrokerId, u64), Vec<Record>> = BTreeMap::new();
        for kv in &all.kvs {
            let Some((broker, incarnation, seq)) = keys::parse_flush(&kv.key) else {
                continue;
            };
            if live.contains(&(broker, incarnation)) {
                continue;
            }
            let record = if kv.value.is_empty() {
                FlushRecord {
                    object: String::new(),
                    index_position: 0,
                    index_length: 0,
                    created_ms: 0,
                    parts: Vec::new(),
                }
            } else {
                FlushRecord::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?
            };
            dead.entry((broker, incarnation))
                .or_default()
                .push((seq, kv.key.clone(), record));
        }
        let mut deleted = 0;
        for ((broker, incarnation), records) in dead {
            let mut doomed = Vec::new();
            for (seq, key, record) in records {
                let mut covered = true;
                for part in &record.parts {
                    let c = match checkpoints.get(&part.partition) {
                        Some(c) => c.clone(),
                        None => {
                            let c = match self.meta.get(&keys::checkpoint(part.partition)).await? {
                                Some(kv) => Some(
                                    Checkpoint::decode(&kv.value)
                                        .map_err(|e| schema::corrupt(&kv, e))?,
                                ),
                                None => None,
                            };
                            checkpoints.insert(part.partition, c.clone());
                            c
                        }
                    };
                    let ok = match &c {
                        Some(c) => covers(c, broker, incarnation, seq),
                        None => !self.topic_known(part.partition.topic),
                    };
                    if !ok {
                        covered = false;
                        break;
                    }
                }
                if covered {
                    doomed.push(key);
                }
            }
            for group in doomed.chunks(DELETES_PER_TXN) {
                let mut txn = Txn::new();
                for key in group {
                    txn = txn.then(TxnOp::Delete { key: key.clone() });
                }
                self.meta.txn(txn).await?;
                deleted += group.len();
            }
        }
        Ok(deleted)
    }

    fn topic_known(&self, topic: crate::types::TopicId) -> bool {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get_by_id(topic).is_some()
    }
}

/// A flush record: its sequence, its key, what it holds.
type Record = (u64, String, FlushRecord);

/// Whether a checkpoint covers flush `seq` of (broker, incarnation).
fn covers(c: &Checkpoint, broker: BrokerId, incarnation: u64, seq: u64) -> bool {
    c.tail.broker != broker || c.tail.incarnation != incarnation || c.tail.after >= seq
}
