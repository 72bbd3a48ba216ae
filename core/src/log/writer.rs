//! This broker's write identity: the incarnation its flush records are keyed by, the fence
//! every commit compares, and the sequence of its flushes.
//!
//! The fence is `fences/<broker>`: the controller rewrites it whenever it takes a partition
//! or shard away from this broker without a completed hand-over. A commit that finds it
//! changed has lost something: the flush fails, and before anything is committed again the
//! broker re-reads the fence and every leader record, and drops what it no longer leads. The
//! leader records are read after the fence, so they show every change the new fence stood
//! for: nothing is written for a partition after another broker could have taken it over.

use std::collections::BTreeMap;

use super::{lock, Role, Shared};
use crate::error::Result;
use crate::log::state::LeaderRecord;
use crate::ports::metadata::decode_json;
use crate::ports::Txn;
use crate::schema::keys;
use crate::types::PartitionKey;

/// See the module docs.
#[derive(Debug)]
pub(super) struct Writer {
    pub incarnation: u64,
    /// Mod revision of the fence key as last read: every commit compares it.
    pub fence_revision: i64,
    /// Set when a commit found the fence changed: nothing commits until it is re-read.
    pub fenced: bool,
    /// The next flush's sequence number (flush record keys of this incarnation).
    pub next_seq: u64,
    /// The highest sequence whose commit has been applied here, in order.
    pub committed_seq: u64,
    /// Flush records of this incarnation up to this sequence are covered by checkpoints
    /// (and deleted).
    pub covered_seq: u64,
    /// Partitions taken from this broker without a hand-over, with the last flush of theirs:
    /// its records stay until their new leader has checkpointed them.
    pub lost: BTreeMap<PartitionKey, u64>,
}

impl Writer {
    pub fn new(incarnation: u64) -> Writer {
        Writer {
            incarnation,
            fence_revision: 0,
            fenced: true,
            next_seq: 1,
            committed_seq: 0,
            covered_seq: 0,
            lost: BTreeMap::new(),
        }
    }
}

/// A random incarnation, never 0.
pub(super) fn random_incarnation() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}

impl Shared {
    pub(super) fn incarnation(&self) -> u64 {
        lock(&self.writer).incarnation
    }

    /// Whether a leader record names this broker's current incarnation.
    pub(super) fn names_us(&self, record: &LeaderRecord) -> bool {
        record.leader == Some(self.config.broker_id) && record.incarnation == self.incarnation()
    }

    /// Reads the fence (creating it on first use) and, after it, every leader record; drops
    /// the partitions this broker no longer leads. Commits may go on afterwards.
    pub(super) async fn sync_fence(&self) -> Result<()> {
        let key = keys::fence(self.config.broker_id);
        let revision = match self.meta.get(&key).await? {
            Some(kv) => kv.mod_revision,
            None => {
                let outcome = self
                    .meta
                    .txn(Txn::create(
                        key.clone(),
                        bytes::Bytes::from_static(b"{}"),
                        None,
                    ))
                    .await?;
                if outcome.succeeded {
                    outcome.revision
                } else {
                    self.meta.get(&key).await?.map_or(0, |kv| kv.mod_revision)
                }
            }
        };
        let leaders = self.meta.range(&keys::leaders_prefix()).await?;
        let mut dropped = 0;
        for kv in &leaders.kvs {
            let Some(partition) = keys::parse_leader(&kv.key) else {
                continue;
            };
            let Ok(record) = decode_json::<LeaderRecord>(kv) else {
                continue;
            };
            let Ok(p) = self.partitions.get(partition) else {
                continue;
            };
            let mut p = lock(&p);
            if p.role != Role::Follower && !self.names_us(&record) {
                let last = p.checkpoint.last_flush;
                p.become_follower();
                p.leadership = record;
                p.leader_revision = kv.mod_revision;
                drop(p);
                if last > 0 {
                    lock(&self.writer).lost.insert(partition, last);
                }
                dropped += 1;
            }
        }
        {
            let mut w = lock(&self.writer);
            w.fence_revision = revision;
            w.fenced = false;
        }
        if dropped > 0 {
            tracing::warn!(
                partitions = dropped,
                "fenced: partitions were taken from this broker without a hand-over"
            );
            self.partitions.leadership_changed();
        }
        Ok(())
    }

    /// Takes a new incarnation (after registering again): flush records from now on are keyed
    /// by it, and the fence is read again before the next commit.
    pub(super) fn new_incarnation(&self, incarnation: u64) {
        let mut w = lock(&self.writer);
        *w = Writer::new(incarnation);
        drop(w);
        self.gc.add_live((self.config.broker_id, incarnation));
    }
}

impl super::LogService {
    /// The incarnation of this broker's registration (the cluster registered again after
    /// losing its lease). Everything it led was released before.
    pub fn set_incarnation(&self, incarnation: u64) {
        self.shared.new_incarnation(incarnation);
    }

    /// The incarnation flush records are keyed by.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation()
    }
}
