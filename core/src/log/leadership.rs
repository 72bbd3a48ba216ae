//! Leadership of partitions as the leader records say: taking a partition up (see
//! `takeover`), dropping it, and handing it over to another broker after flushing and
//! checkpointing it.

use std::time::Duration;

use super::state::LeaderRecord;
use super::{lock, LogService, Role, Shared};
use crate::error::{Error, Result};
use crate::ports::metadata::encode_json;
use crate::ports::{ClockExt, Compare, Txn, TxnOp};
use crate::schema::keys;
use crate::types::{BrokerId, PartitionKey, TopicId};

/// How long a hand-over waits for the partition's pending appends to be committed.
const HANDOVER_FLUSH_WAIT: Duration = Duration::from_secs(10);

impl Shared {
    /// Records a leader record seen at `revision`. `ours` says whether it names this broker
    /// (and its current incarnation). Returns true when the partition must now be loaded.
    pub(super) fn set_leadership(
        &self,
        key: PartitionKey,
        record: LeaderRecord,
        revision: i64,
        ours: bool,
    ) -> bool {
        let Ok(partition) = self.partitions.get(key) else {
            return false;
        };
        let (load, last_flush) = {
            let mut p = lock(&partition);
            if revision < p.leader_revision
                || (revision == p.leader_revision && p.leadership == record)
            {
                return false;
            }
            let was = p.role;
            p.leadership = record;
            p.leader_revision = revision;
            let mut last_flush = 0;
            if was != Role::Follower {
                if was != Role::Loading {
                    tracing::info!(partition = %key, epoch = record.leader_epoch.0, leader = ?record.leader, "leadership moved away");
                    last_flush = p.checkpoint.last_flush;
                }
                p.become_follower();
            }
            if ours {
                p.role = Role::Loading;
            }
            (ours, last_flush)
        };
        if last_flush > 0 {
            // This broker's flush records may hold the partition past its last checkpoint: they
            // stay until a checkpoint of the next leader covers them (as when fenced).
            let mut w = lock(&self.writer);
            let last = w.lost.entry(key).or_default();
            *last = (*last).max(last_flush);
        }
        self.partitions.leadership_changed();
        load
    }
}

impl LogService {
    /// Tells the log what the leader record of a partition says (from the cluster's watch).
    /// `ours`: it names this broker's current incarnation. Loading happens in the background.
    pub fn observe_leadership(
        &self,
        key: PartitionKey,
        record: LeaderRecord,
        revision: i64,
        ours: bool,
    ) {
        if self.shared.set_leadership(key, record, revision, ours) {
            self.shared.queue_takeover(key, revision);
        }
    }

    /// Leadership of every partition of a topic, as last seen: (partition, leader record,
    /// revision).
    pub fn leadership_of(&self, topic: TopicId) -> Vec<(PartitionKey, LeaderRecord, i64)> {
        let partitions = self.shared.partitions.read();
        let mut out: Vec<_> = partitions
            .iter()
            .filter(|(k, _)| k.topic == topic)
            .map(|(k, p)| {
                let p = lock(p);
                (*k, p.leadership, p.leader_revision)
            })
            .collect();
        out.sort_by_key(|(k, _, _)| *k);
        out
    }

    /// Partitions this broker leads, is loading or is handing over.
    pub fn led_partitions(&self) -> Vec<PartitionKey> {
        let partitions = self.shared.partitions.read();
        let mut out: Vec<_> = partitions
            .iter()
            .filter(|(_, p)| lock(p).role != Role::Follower)
            .map(|(k, _)| *k)
            .collect();
        out.sort();
        out
    }

    /// Partitions whose leadership this broker received and is still loading.
    pub fn loading_partitions(&self) -> usize {
        let partitions = self.shared.partitions.read();
        partitions
            .values()
            .filter(|p| lock(p).role == Role::Loading)
            .count()
    }

    /// Drops every partition (the broker's registration was lost: its leadership is no
    /// longer its own to use). Pending appends fail with NOT_LEADER_OR_FOLLOWER. Garbage
    /// collection stops too, until this broker is the controller again.
    pub fn release_all(&self) {
        self.set_collecting(false);
        let partitions = self.shared.partitions.read();
        for p in partitions.values() {
            let mut p = lock(p);
            if p.role != Role::Follower {
                p.become_follower();
            }
        }
        drop(partitions);
        self.shared.partitions.leadership_changed();
    }

    /// Hands a partition this broker leads over to `to`: new appends are refused, pending
    /// ones are flushed and committed, then the leader record names `to` (incarnation
    /// `to_incarnation`) with the next epoch, in one transaction with `also` (e.g. deleting
    /// the move request). The old leader's commits are fenced by that write.
    pub async fn hand_over(
        &self,
        key: PartitionKey,
        to: BrokerId,
        to_incarnation: u64,
        also: Vec<TxnOp>,
    ) -> Result<()> {
        let shared = &self.shared;
        let partition = shared.partitions.get(key)?;
        {
            let mut p = lock(&partition);
            match p.role {
                Role::Leader => p.role = Role::HandingOver,
                Role::Loading => return Err(Error::LeaderLoading(key)),
                Role::Follower | Role::HandingOver => return Err(Error::NotLeader(key)),
            }
        }
        shared.flush.wake();
        let mut committed = shared.flush.subscribe();
        let waited = shared
            .clock
            .timeout(HANDOVER_FLUSH_WAIT, async {
                loop {
                    let busy = shared.flush.holds(key);
                    if !busy {
                        return;
                    }
                    shared.flush.wake();
                    if committed.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
        {
            let mut p = lock(&partition);
            if p.role != Role::HandingOver {
                // Fenced or moved meanwhile.
                return Err(Error::NotLeader(key));
            }
            if waited.is_err() {
                p.role = Role::Leader;
                return Err(Error::Timeout(HANDOVER_FLUSH_WAIT.as_millis() as u64));
            }
        }
        // The partition's last checkpoint covers all it holds: the next leader reads no flush
        // record of this broker for it. Held until the leader record changed, so that no
        // checkpoint round writes the partition in between.
        let _maintenance = shared.maintenance.hold().await;
        let checkpointed = shared.write_final_checkpoint(key).await;
        let (current, leader_revision) = {
            let mut p = lock(&partition);
            if p.role != Role::HandingOver {
                return Err(Error::NotLeader(key));
            }
            if let Err(e) = checkpointed {
                p.role = Role::Leader;
                return Err(e);
            }
            (p.leadership, p.leader_revision)
        };
        let record = LeaderRecord {
            leader: Some(to),
            leader_epoch: current.leader_epoch.next(),
            incarnation: to_incarnation,
        };
        let mut txn = Txn::new()
            .when(Compare::ModRevision {
                key: keys::leader(key),
                revision: leader_revision,
            })
            .then(TxnOp::Put {
                key: keys::leader(key),
                value: encode_json(&record),
                lease: None,
            });
        for op in also {
            txn = txn.then(op);
        }
        let outcome = shared.meta.txn(txn).await;
        let mut p = lock(&partition);
        if p.leader_revision != leader_revision {
            // The watch brought a newer leader record meanwhile (possibly naming this broker
            // again); it decides the partition's state, not this hand-over.
            return match outcome {
                Ok(o) if o.succeeded => {
                    tracing::info!(partition = %key, to = to.0, epoch = record.leader_epoch.0, "partition handed over");
                    Ok(())
                }
                Ok(_) => Err(Error::NotLeader(key)),
                Err(e) => Err(e.into()),
            };
        }
        match outcome {
            Ok(o) if o.succeeded => {
                p.leadership = record;
                p.leader_revision = o.revision;
                p.become_follower();
                tracing::info!(partition = %key, to = to.0, epoch = record.leader_epoch.0, "partition handed over");
                drop(p);
                shared.partitions.leadership_changed();
                Ok(())
            }
            Ok(_) => {
                p.become_follower();
                Err(Error::NotLeader(key))
            }
            Err(e) => {
                // Unknown outcome: the watch tells whether the record changed; until then
                // this broker keeps the partition (its checkpoint covers everything, and its
                // next checkpoint compares the key, which the new leader rewrites).
                if p.role == Role::HandingOver {
                    p.role = Role::Leader;
                }
                Err(e.into())
            }
        }
    }

    /// Waits until every partition of the topic has a leader (as last seen here) and those
    /// this broker was given are loaded, or the timeout passes. Returns whether they are.
    pub async fn wait_for_leaders(&self, topic: TopicId, timeout: Duration) -> bool {
        let mut changed = self.shared.partitions.watch_leadership();
        let me = self.shared.config.broker_id;
        let ready = |log: &LogService| {
            let partitions = log.shared.partitions.read();
            let mut any = false;
            for (k, p) in partitions.iter() {
                if k.topic != topic {
                    continue;
                }
                any = true;
                let p = lock(p);
                let led = p.leadership.leader.is_some();
                let loaded_if_mine = p.leadership.leader != Some(me)
                    || matches!(p.role, Role::Leader | Role::HandingOver);
                if !led || p.role == Role::Loading || !loaded_if_mine {
                    return false;
                }
            }
            any
        };
        self.shared
            .clock
            .timeout(timeout, async {
                loop {
                    if ready(self) {
                        return;
                    }
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await
            .is_ok()
            || ready(self)
    }

    /// Changes whenever leadership of some partition changes here.
    pub fn subscribe_leadership(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.partitions.watch_leadership()
    }
}
