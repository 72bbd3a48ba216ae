//! The commit stage of a flush: each part's turn (the exact-base check), the fenced
//! metadata transactions, conflict resolution after an unknown outcome, and applying what
//! committed to the partition's state.

use super::{backoff, earlier_flush_failed, fail, Planned, Ready};
use crate::error::{Error, Result};
use crate::log::keys;
use crate::log::producers::ProducerStates;
use crate::log::state::{ChunkRecord, PartitionRecord};
use crate::log::{lock, Appended, Role, Shared};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Compare, MetadataError, Txn, TxnOp};
use crate::types::PartitionKey;

impl Shared {
    /// A part's turn to commit (every flush ahead of it has finished): it commits only if
    /// the partition is still led under the same record and its extent stands exactly where
    /// the part was built on. Parts holding only retries are answered here.
    pub(in crate::log::flush) fn ready_to_commit(&self, p: Planned, id: u64) -> Option<Ready> {
        let key = p.key;
        let Ok(partition) = self.partition(key) else {
            fail(p.replies, || Error::UnknownPartition(key));
            return None;
        };
        let state = lock(&partition);
        let led = matches!(state.role, Role::Leader | Role::HandingOver)
            && state.leader_revision == p.leader_revision;
        let failure: Option<fn(PartitionKey) -> Error> = if !led {
            Some(Error::NotLeader)
        } else if state.stale {
            Some(|_| {
                Error::Metadata(MetadataError::Unavailable {
                    message: "the outcome of an earlier commit of this partition is unknown".into(),
                })
            })
        } else if p.chunk.is_none() {
            // Retries: their originals are committed if the extent has passed them.
            let (end, start) = (state.record.log_end_offset, state.record.log_start_offset);
            drop(state);
            for (reply, at) in p.replies {
                let answer = if at < end {
                    Ok(Appended {
                        base_offset: at,
                        log_start_offset: start,
                    })
                } else {
                    Err(earlier_flush_failed())
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            return None;
        } else if state.record.log_end_offset != p.base {
            Some(|_| earlier_flush_failed())
        } else {
            None
        };
        if let Some(e) = failure {
            drop(state);
            self.break_chain(key, id);
            fail(p.replies, || e(key));
            return None;
        }
        Some(Ready {
            record: PartitionRecord {
                log_end_offset: p.end,
                ..state.record
            },
            expected_revision: state.revision,
            planned: p,
        })
    }

    /// A flush failed for a partition: the flushes built on it fail too (their commit check
    /// sees the extent short of their base), and the next flush builds on the committed
    /// extent again.
    pub(in crate::log::flush) fn break_chain(&self, key: PartitionKey, id: u64) {
        let mut projected = lock(&self.projected);
        if projected.get(&key).is_some_and(|c| c.first_flush <= id) {
            projected.remove(&key);
        }
    }

    /// The flush's partitions are no longer being flushed by it.
    pub(in crate::log::flush) fn done_flushing(&self, keys: &[PartitionKey]) {
        {
            let mut flushing = lock(&self.flushing);
            for key in keys {
                if let Some(n) = flushing.get_mut(key) {
                    *n -= 1;
                    if *n == 0 {
                        flushing.remove(key);
                    }
                }
            }
        }
        // Wakes hand-overs waiting for their partition's last flush.
        self.committed.send_modify(|n| *n += 1);
    }

    /// Commits one group atomically; partitions whose compare fails are resolved one by one.
    pub(in crate::log::flush) async fn commit_group(&self, mut group: Vec<Ready>, id: u64) {
        let mut attempt = 0;
        while !group.is_empty() {
            attempt += 1;
            let mut txn = Txn::new();
            for r in &group {
                let p = &r.planned;
                let pk = keys::partition(p.key);
                txn = txn
                    .when(Compare::ModRevision {
                        key: keys::leader(p.key),
                        revision: p.leader_revision,
                    })
                    .when(Compare::ModRevision {
                        key: pk.clone(),
                        revision: r.expected_revision,
                    })
                    .then(TxnOp::Put {
                        key: pk,
                        value: encode_json(&r.record),
                        lease: None,
                    });
                if let Some(chunk) = &p.chunk {
                    txn = txn.then(TxnOp::Put {
                        key: keys::chunk(p.key, chunk.base_offset),
                        value: encode_json(chunk),
                        lease: None,
                    });
                }
                if let Some(producers) = &p.producers {
                    txn = txn.then(TxnOp::Put {
                        key: keys::producers(p.key),
                        value: encode_json(producers),
                        lease: None,
                    });
                }
            }
            match self.meta.txn(txn).await {
                Ok(outcome) if outcome.succeeded => {
                    for r in group {
                        self.apply(r, outcome.revision, id);
                    }
                    self.committed.send_modify(|n| *n += 1);
                    return;
                }
                Ok(_) => {
                    group = self.resolve_conflicts(group, id).await;
                }
                Err(e) if e.is_retriable() && attempt < self.config.attempts => {
                    // The outcome is unknown; the retry's compare tells whether it applied.
                    tracing::debug!(attempt, error = %e, "retrying commit");
                    self.clock.sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, partitions = group.len(), "commit failed; outcome unknown");
                    let message = e.to_string();
                    for r in group {
                        self.mark_stale(r.planned.key);
                        self.break_chain(r.planned.key, id);
                        fail(r.planned.replies, || {
                            Error::Metadata(MetadataError::Unavailable {
                                message: message.clone(),
                            })
                        });
                    }
                    return;
                }
            }
        }
    }

    /// After a failed compare: keeps the partitions still ours, completes those whose commit
    /// had in fact applied (an earlier attempt with an unknown outcome), fences the rest.
    async fn resolve_conflicts(&self, group: Vec<Ready>, id: u64) -> Vec<Ready> {
        let mut retry = Vec::new();
        let mut applied = false;
        for r in group {
            let key = r.planned.key;
            match self.commit_state(&r).await {
                Ok(CommitState::Unchanged) => retry.push(r),
                Ok(CommitState::Applied(revision)) => {
                    self.apply(r, revision, id);
                    applied = true;
                }
                Ok(CommitState::Fenced) => {
                    tracing::warn!(partition = %key, "commit fenced: the partition has a new leader");
                    self.fence(key, r.planned.leader_revision);
                    self.break_chain(key, id);
                    fail(r.planned.replies, || Error::NotLeader(key));
                }
                Err(e) => {
                    self.mark_stale(key);
                    self.break_chain(key, id);
                    let message = e.to_string();
                    fail(r.planned.replies, || {
                        Error::Metadata(MetadataError::Unavailable {
                            message: message.clone(),
                        })
                    });
                }
            }
        }
        if applied {
            self.committed.send_modify(|n| *n += 1);
        }
        retry
    }

    /// Where a planned commit stands after a failed compare.
    async fn commit_state(&self, r: &Ready) -> Result<CommitState, MetadataError> {
        let p = &r.planned;
        let leader = self.meta.get(&keys::leader(p.key)).await?;
        if leader.map_or(0, |kv| kv.mod_revision) != p.leader_revision {
            return Ok(CommitState::Fenced);
        }
        match self.meta.get(&keys::partition(p.key)).await? {
            Some(kv) if kv.mod_revision == r.expected_revision => Ok(CommitState::Unchanged),
            Some(kv)
                if decode_json::<PartitionRecord>(&kv).is_ok_and(|rec| rec == r.record)
                    && self.chunk_is(p).await =>
            {
                Ok(CommitState::Applied(kv.mod_revision))
            }
            // The extent changed under a leader that did not change: only this broker writes
            // it, so this cannot happen unless state was edited by hand. Stop writing.
            _ => Ok(CommitState::Fenced),
        }
    }

    async fn chunk_is(&self, p: &Planned) -> bool {
        let Some(chunk) = &p.chunk else {
            return true;
        };
        match self.meta.get(&keys::chunk(p.key, chunk.base_offset)).await {
            Ok(Some(kv)) => decode_json::<ChunkRecord>(&kv).is_ok_and(|c| &c == chunk),
            _ => false,
        }
    }

    fn apply(&self, r: Ready, revision: i64, id: u64) {
        let Ready {
            planned: p, record, ..
        } = r;
        if let Ok(partition) = self.partition(p.key) {
            let mut state = lock(&partition);
            let mut projected = lock(&self.projected);
            if projected.get(&p.key).is_some_and(|c| c.last_flush == id) {
                // The committed extent has caught up with the chain.
                projected.remove(&p.key);
            }
            drop(projected);
            debug_assert!(record.log_end_offset > state.record.log_end_offset);
            state.record = record;
            state.revision = revision;
            if let Some(chunk) = p.chunk {
                state.index.push(chunk);
            }
            if let Some(producers) = p.producers {
                state.producers = producers;
            }
            if self.wants_compaction(state.index.unmerged()) {
                lock(&self.compactable).insert(p.key);
                self.compact_wake.notify_one();
            }
        }
        let log_start_offset = record.log_start_offset;
        for (reply, base_offset) in p.replies {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(Appended {
                    base_offset,
                    log_start_offset,
                }));
            }
        }
    }

    /// A commit planned under the leader record at `leader_revision` showed that the
    /// partition has another leader: stop leading it under that record. The watch of leader
    /// records brings the new leadership; if it already did (this broker may even lead the
    /// partition again, under a newer record), there is nothing to drop.
    fn fence(&self, key: PartitionKey, leader_revision: i64) {
        if let Ok(partition) = self.partition(key) {
            let mut state = lock(&partition);
            if state.leader_revision != leader_revision {
                return;
            }
            state.become_follower();
        }
        self.leadership_changed.send_modify(|n| *n += 1);
    }

    fn mark_stale(&self, key: PartitionKey) {
        if let Ok(partition) = self.partition(key) {
            lock(&partition).stale = true;
        }
    }

    /// Re-reads a partition whose last commit had an unknown outcome or was fenced.
    pub(in crate::log) async fn refresh_if_stale(&self, key: PartitionKey) -> Result<()> {
        let Ok(partition) = self.partition(key) else {
            return Ok(());
        };
        let expected = {
            let p = lock(&partition);
            if !p.stale {
                return Ok(());
            }
            p.leader_revision
        };
        let leader = self.meta.get(&keys::leader(key)).await?;
        let (record, revision) = match self.meta.get(&keys::partition(key)).await? {
            Some(kv) => (decode_json::<PartitionRecord>(&kv)?, kv.mod_revision),
            None => (PartitionRecord::default(), 0),
        };
        let chunks = self.meta.range(&keys::partition_chunks_prefix(key)).await?;
        let mut list = Vec::with_capacity(chunks.kvs.len());
        for kv in &chunks.kvs {
            list.push(decode_json::<ChunkRecord>(kv)?);
        }
        let producers = match self.meta.get(&keys::producers(key)).await? {
            Some(kv) => decode_json(&kv)?,
            None => ProducerStates::default(),
        };
        let mut state = lock(&partition);
        if state.leader_revision != expected || !state.stale {
            // The watch changed the leadership while this read ran; it took care of it.
            return Ok(());
        }
        if leader.map_or(0, |kv| kv.mod_revision) != expected {
            // Leadership moved meanwhile: not ours to refresh.
            state.become_follower();
            return Ok(());
        }
        state.record = record;
        state.revision = revision;
        state.index = crate::log::ChunkIndex::from_chunks(list);
        state.producers = producers;
        state.stale = false;
        Ok(())
    }
}

enum CommitState {
    /// Nothing of the commit applied and the partition is still ours: retry.
    Unchanged,
    /// An earlier attempt with an unknown outcome applied, at this revision.
    Applied(i64),
    /// Another leader owns the partition.
    Fenced,
}
