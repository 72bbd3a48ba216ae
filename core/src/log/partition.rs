//! The partitions this broker knows: each one's leadership, role and (where it leads) committed
//! extent, and the table of them.
//!
//! Lock order: the table's map, then one partition's mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

use super::state::{ChunkIndex, LeaderRecord, PartitionRecord as Record};
use super::{lock, producers};
use crate::error::{Error, Result};
use crate::topic::TopicRecord;
use crate::types::{Offset, PartitionId, PartitionKey, TopicId};

/// What this broker does with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Another broker leads it, or nobody does; only its leadership is known here.
    Follower,
    /// Named leader; its extent and chunks are being read.
    Loading,
    /// Leads it: appends, commits, reads.
    Leader,
    /// Hands it over: accepts no appends, flushes what is pending, then writes the new
    /// leader.
    HandingOver,
}

/// Where a partition's checkpoint stands, as this broker last wrote (or read) it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Checkpointed {
    /// Mod revision of the checkpoint key (0 = absent): the next checkpoint write compares it.
    pub(super) revision: i64,
    /// Bumped by every change a checkpoint must record (a commit, a merge, a new log start).
    pub(super) changes: u64,
    /// `changes` as of the last checkpoint written.
    pub(super) written: u64,
    /// The highest flush sequence of this incarnation that holds the partition (0 = none).
    pub(super) last_flush: u64,
}

#[derive(Debug)]
pub(super) struct Partition {
    pub(super) leadership: LeaderRecord,
    /// Mod revision of the leader record as last seen: identifies the leadership a flush was
    /// built under (0 = absent).
    pub(super) leader_revision: i64,
    pub(super) role: Role,
    /// The committed extent.
    pub(super) record: Record,
    pub(super) index: ChunkIndex,
    /// Idempotent producers' sequences, as committed.
    pub(super) producers: producers::ProducerStates,
    pub(super) checkpoint: Checkpointed,
}

impl Partition {
    pub(super) fn follower(leadership: LeaderRecord, leader_revision: i64) -> Partition {
        Partition {
            leadership,
            leader_revision,
            role: Role::Follower,
            record: Record::default(),
            index: ChunkIndex::default(),
            producers: producers::ProducerStates::default(),
            checkpoint: Checkpointed::default(),
        }
    }

    /// Leadership is lost: pending appends fail at the next flush, the index is dropped.
    pub(super) fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.index = ChunkIndex::default();
        self.record = Record::default();
        self.producers = producers::ProducerStates::default();
        self.checkpoint = Checkpointed::default();
    }

    /// Whether commits and maintenance of this partition may go on here.
    pub(super) fn writable(&self) -> bool {
        matches!(self.role, Role::Leader | Role::HandingOver)
    }

    /// Whether something changed that the last checkpoint does not hold.
    pub(super) fn dirty(&self) -> bool {
        self.checkpoint.changes != self.checkpoint.written
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark; never below the log start (retention may pass an open transaction's first
    /// records, as in Kafka).
    pub(super) fn last_stable_offset(&self) -> Offset {
        let (start, hw) = (self.record.log_start_offset, self.record.log_end_offset);
        self.producers
            .first_unstable()
            .map_or(hw, |f| f.max(start).min(hw))
    }
}

/// Every partition this broker knows, by key.
pub(super) struct Table {
    map: RwLock<HashMap<PartitionKey, Arc<Mutex<Partition>>>>,
    /// Bumped whenever a partition's leadership changes here.
    leadership: watch::Sender<u64>,
}

impl Table {
    pub(super) fn new() -> Table {
        let (leadership, _) = watch::channel(0);
        Table {
            map: RwLock::new(HashMap::new()),
            leadership,
        }
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, HashMap<PartitionKey, Arc<Mutex<Partition>>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<PartitionKey, Arc<Mutex<Partition>>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, key: PartitionKey) -> Result<Arc<Mutex<Partition>>> {
        let partitions = self.read();
        partitions
            .get(&key)
            .cloned()
            .ok_or(Error::UnknownPartition(key))
    }

    pub(super) fn check_leader(&self, key: PartitionKey) -> Result<()> {
        let p = self.get(key)?;
        let p = lock(&p);
        match p.role {
            Role::Leader => Ok(()),
            Role::Loading => Err(Error::LeaderLoading(key)),
            Role::Follower if p.leadership.leader.is_none() => Err(Error::LeaderNotAvailable(key)),
            Role::Follower | Role::HandingOver => Err(Error::NotLeader(key)),
        }
    }

    /// Adds the partitions of a topic not known yet (a new topic, or partitions added to
    /// one), as followers; known partitions keep their state.
    pub(super) fn install_topic(&self, topic: &TopicRecord) -> Vec<PartitionKey> {
        let mut partitions = self.write();
        let mut added = Vec::new();
        for key in topic_partitions(topic) {
            partitions.entry(key).or_insert_with(|| {
                added.push(key);
                Arc::new(Mutex::new(Partition::follower(LeaderRecord::default(), 0)))
            });
        }
        added
    }

    pub(super) fn remove_topic(&self, id: TopicId) {
        let mut partitions = self.write();
        partitions.retain(|k, _| k.topic != id);
    }

    /// A partition's leadership changed here.
    pub(super) fn leadership_changed(&self) {
        self.leadership.send_modify(|n| *n += 1);
    }

    /// Changes whenever a partition's leadership changes here.
    pub(super) fn watch_leadership(&self) -> watch::Receiver<u64> {
        self.leadership.subscribe()
    }
}

pub(super) fn topic_partitions(topic: &TopicRecord) -> impl Iterator<Item = PartitionKey> + '_ {
    (0..topic.partitions).map(move |p| PartitionKey {
        topic: topic.id,
        partition: PartitionId(p),
    })
}
