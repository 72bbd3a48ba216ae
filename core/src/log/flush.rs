//! The flusher: gathers pending batches, writes one object for all partitions, commits it
//! with one fenced metadata transaction per group of partitions, then answers the appends.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::keys;
use super::producers::{ProducerStates, SeqCheck};
use super::state::{ChunkRecord, PartitionRecord};
use super::{lock, Appended, PendingBatch, Shared};
use crate::error::{Error, Result};
use crate::object_format::{ChunkEntry, FlushObjectBuilder};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Compare, MetadataError, PutMode, StoreError, Txn, TxnOp};
use crate::types::{Offset, PartitionKey};

/// Partitions per commit transaction: two compares (leader and extent) and up to three puts
/// (extent, chunk, producer state) each, so both the compare and the operation lists stay
/// below etcd's 128 per transaction.
const COMMIT_GROUP: usize = 40;

/// One partition's part of a flush.
struct Planned {
    key: PartitionKey,
    /// The fence: the leader record's revision when the flush was planned.
    leader_revision: i64,
    expected_revision: i64,
    record: PartitionRecord,
    chunk: ChunkRecord,
    /// The producer state after this commit, when idempotent producers wrote.
    producers: Option<ProducerStates>,
    /// Each waiting append with the offset its batch got.
    replies: Vec<(
        Option<tokio::sync::oneshot::Sender<Result<Appended>>>,
        Offset,
    )>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let check = shared.config.retention_check_ms.max(1) as i64;
    let mut next_retention = shared.clock.now_ms() + check;
    loop {
        // DeleteRecords rewrites partition records: run it between flushes (see `admin`).
        shared.run_admin_jobs().await;
        let stopping = shared.shutting_down.load(Ordering::SeqCst);
        let (ready, wait_ms) = {
            let pending = lock(&shared.pending);
            match pending.since {
                None => (false, None),
                Some(since) => {
                    let due = since + shared.config.flush_ms as i64;
                    let now = shared.clock.now_ms();
                    if stopping || pending.bytes >= shared.config.flush_bytes || now >= due {
                        (true, None)
                    } else {
                        (false, Some((due - now) as u64))
                    }
                }
            }
        };
        if ready {
            let taken = std::mem::take(&mut *lock(&shared.pending));
            lock(&shared.flushing).extend(taken.batches.keys().copied());
            flush(&shared, taken.batches).await;
            lock(&shared.flushing).clear();
            // Wakes hand-overs waiting for their partition's last flush.
            shared.committed.send_modify(|n| *n += 1);
            continue;
        }
        if stopping {
            return;
        }
        let now = shared.clock.now_ms();
        if now >= next_retention {
            shared.enforce_retention().await;
            next_retention = shared.clock.now_ms() + check;
            continue;
        }
        let until_retention = (next_retention - now) as u64;
        let wait = wait_ms.map_or(until_retention, |ms| ms.min(until_retention));
        tokio::select! {
            _ = shared.flush_wake.notified() => {}
            _ = shared.clock.sleep(Duration::from_millis(wait)) => {}
        }
    }
}

fn fail(
    replies: Vec<(
        Option<tokio::sync::oneshot::Sender<Result<Appended>>>,
        Offset,
    )>,
    err: impl Fn() -> Error,
) {
    for (reply, _) in replies {
        if let Some(reply) = reply {
            // The requester may have gone away (timeout, closed connection); nothing to do.
            let _ = reply.send(Err(err()));
        }
    }
}

fn fail_batches(batches: Vec<PendingBatch>, err: impl Fn() -> Error) {
    fail(
        batches
            .into_iter()
            .map(|b| (b.reply, Offset::ZERO))
            .collect(),
        err,
    );
}

async fn flush(shared: &Arc<Shared>, batches: BTreeMap<PartitionKey, Vec<PendingBatch>>) {
    let size: usize = batches.values().flatten().map(|b| b.batch.len()).sum();
    let mut builder = FlushObjectBuilder::new(shared.config.broker_id, shared.clock.now_ms(), size);
    let mut planned: Vec<(Planned, ChunkEntry)> = Vec::new();
    for (key, pending) in batches {
        if let Err(e) = shared.refresh_if_stale(key).await {
            tracing::warn!(partition = %key, error = %e, "cannot refresh partition state");
            fail_batches(pending, || Error::NotLeader(key));
            continue;
        }
        let Ok(partition) = shared.partition(key) else {
            fail_batches(pending, || Error::UnknownPartition(key));
            continue;
        };
        let (record, revision, leadership, leader_revision, committed) = {
            let p = lock(&partition);
            if !p.writable() {
                drop(p);
                fail_batches(pending, || Error::NotLeader(key));
                continue;
            }
            (
                p.record,
                p.revision,
                p.leadership,
                p.leader_revision,
                p.producers.clone(),
            )
        };
        let base = record.log_end_offset;
        let now = shared.clock.now_ms();
        let Sequenced {
            kept: pending,
            in_flush_duplicates,
            producers,
        } = sequence(pending, committed, base, record.log_start_offset, now);
        if pending.is_empty() {
            continue;
        }
        let producers = producers.map(|mut p| {
            p.expire(now - shared.config.producer_expiration_ms);
            p
        });
        let entry = match builder.add_chunk(
            key.topic,
            key.partition,
            base,
            leadership.leader_epoch,
            pending.iter().map(|b| b.batch.as_ref()),
        ) {
            Ok(entry) => entry,
            Err(e) => {
                // Batches were validated on append; this is a bug, not bad input.
                tracing::error!(partition = %key, error = %e, "validated batch failed to encode");
                fail_batches(pending, || Error::CorruptBatch(e.clone()));
                continue;
            }
        };
        let mut next = base;
        let mut replies: Vec<_> = pending
            .into_iter()
            .map(|b| {
                let at = next;
                next = next.plus(b.header.offset_count());
                (b.reply, at)
            })
            .collect();
        debug_assert_eq!(next, entry.last_offset.next());
        replies.extend(in_flush_duplicates);
        let new_record = PartitionRecord {
            log_end_offset: entry.last_offset.next(),
            ..record
        };
        planned.push((
            Planned {
                key,
                leader_revision,
                expected_revision: revision,
                record: new_record,
                chunk: ChunkRecord::from_entry("", &entry),
                producers,
                replies,
            },
            entry,
        ));
    }
    if planned.is_empty() {
        return;
    }
    let (object, _) = builder.finish();
    let object_key = keys::flush_object(shared.config.broker_id, uuid::Uuid::now_v7());
    let started = shared.clock.now_ms();
    if let Err(e) = shared.upload(&object_key, object.clone()).await {
        tracing::warn!(object = %object_key, error = %e, "flush upload failed");
        for (p, _) in planned {
            let message = e.to_string();
            fail(p.replies, || {
                Error::Store(StoreError::Transient {
                    message: message.clone(),
                })
            });
        }
        return;
    }
    let uploaded = shared.clock.now_ms();
    let partitions = planned.len();
    shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .flushed_bytes
        .fetch_add(object.len() as u64, Ordering::Relaxed);
    let mut planned: Vec<Planned> = planned
        .into_iter()
        .map(|(mut p, entry)| {
            p.chunk.object = object_key.clone();
            shared.cache.insert(
                &object_key,
                entry.position,
                object.slice(entry.range().start as usize..entry.range().end as usize),
            );
            p
        })
        .collect();
    while !planned.is_empty() {
        let rest = planned.split_off(planned.len().min(COMMIT_GROUP));
        shared.commit_group(planned).await;
        planned = rest;
    }
    let done = shared.clock.now_ms();
    shared.observer.flushed(super::FlushReport {
        bytes: object.len(),
        partitions,
        upload_ms: (uploaded - started).max(0) as u64,
        commit_ms: (done - uploaded).max(0) as u64,
    });
    tracing::debug!(object = %object_key, bytes = object.len(), ms = done - started, "flush committed");
}

impl Shared {
    async fn upload(&self, key: &str, object: Bytes) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.put(key, object.clone(), PutMode::Create).await {
                Ok(()) => return Ok(()),
                // The key is unique to this flush: after an attempt with an unknown outcome,
                // "already exists" means that attempt landed.
                Err(StoreError::AlreadyExists { .. }) if attempt > 1 => return Ok(()),
                Err(e) if e.is_retriable() && attempt < self.config.attempts => {
                    tracing::debug!(object = %key, attempt, error = %e, "retrying upload");
                    self.clock.sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits one group atomically; partitions whose compare fails are resolved one by one.
    async fn commit_group(&self, mut group: Vec<Planned>) {
        let mut attempt = 0;
        while !group.is_empty() {
            attempt += 1;
            let mut txn = Txn::new();
            for p in &group {
                let pk = keys::partition(p.key);
                txn = txn
                    .when(Compare::ModRevision {
                        key: keys::leader(p.key),
                        revision: p.leader_revision,
                    })
                    .when(Compare::ModRevision {
                        key: pk.clone(),
                        revision: p.expected_revision,
                    })
                    .then(TxnOp::Put {
                        key: pk,
                        value: encode_json(&p.record),
                        lease: None,
                    })
                    .then(TxnOp::Put {
                        key: keys::chunk(p.key, p.chunk.base_offset),
                        value: encode_json(&p.chunk),
                        lease: None,
                    });
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
                    for p in group {
                        self.apply(p, outcome.revision);
                    }
                    self.committed.send_modify(|n| *n += 1);
                    return;
                }
                Ok(_) => {
                    group = self.resolve_conflicts(group).await;
                }
                Err(e) if e.is_retriable() && attempt < self.config.attempts => {
                    // The outcome is unknown; the retry's compare tells whether it applied.
                    tracing::debug!(attempt, error = %e, "retrying commit");
                    self.clock.sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, partitions = group.len(), "commit failed; outcome unknown");
                    let message = e.to_string();
                    for p in group {
                        self.mark_stale(p.key);
                        fail(p.replies, || {
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
    async fn resolve_conflicts(&self, group: Vec<Planned>) -> Vec<Planned> {
        let mut retry = Vec::new();
        let mut applied = false;
        for p in group {
            match self.commit_state(&p).await {
                Ok(CommitState::Unchanged) => retry.push(p),
                Ok(CommitState::Applied(revision)) => {
                    self.apply(p, revision);
                    applied = true;
                }
                Ok(CommitState::Fenced) => {
                    tracing::warn!(partition = %p.key, "commit fenced: the partition has a new leader");
                    self.fence(p.key, p.leader_revision);
                    fail(p.replies, || Error::NotLeader(p.key));
                }
                Err(e) => {
                    self.mark_stale(p.key);
                    let message = e.to_string();
                    fail(p.replies, || {
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
    async fn commit_state(&self, p: &Planned) -> Result<CommitState, MetadataError> {
        let leader = self.meta.get(&keys::leader(p.key)).await?;
        if leader.map_or(0, |kv| kv.mod_revision) != p.leader_revision {
            return Ok(CommitState::Fenced);
        }
        match self.meta.get(&keys::partition(p.key)).await? {
            Some(kv) if kv.mod_revision == p.expected_revision => Ok(CommitState::Unchanged),
            Some(kv)
                if decode_json::<PartitionRecord>(&kv).is_ok_and(|r| r == p.record)
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
        match self
            .meta
            .get(&keys::chunk(p.key, p.chunk.base_offset))
            .await
        {
            Ok(Some(kv)) => decode_json::<ChunkRecord>(&kv).is_ok_and(|c| c == p.chunk),
            _ => false,
        }
    }

    fn apply(&self, p: Planned, revision: i64) {
        if let Ok(partition) = self.partition(p.key) {
            let mut state = lock(&partition);
            debug_assert!(p.record.log_end_offset > state.record.log_end_offset);
            state.record = p.record;
            state.revision = revision;
            state.index.push(p.chunk);
            if let Some(producers) = p.producers {
                state.producers = producers;
            }
            if self.wants_compaction(state.index.unmerged()) {
                lock(&self.compactable).insert(p.key);
                self.compact_wake.notify_one();
            }
        }
        let log_start_offset = p.record.log_start_offset;
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
    pub(super) async fn refresh_if_stale(&self, key: PartitionKey) -> Result<()> {
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
        state.index = super::ChunkIndex::from_chunks(list);
        state.producers = producers;
        state.stale = false;
        Ok(())
    }
}

/// A partition's pending batches after the idempotence check.
struct Sequenced {
    /// To append, in order.
    kept: Vec<PendingBatch>,
    /// Retries of batches kept in this same flush: answered with their offset at commit.
    in_flush_duplicates: Vec<(
        Option<tokio::sync::oneshot::Sender<Result<Appended>>>,
        Offset,
    )>,
    /// The producer state once `kept` is committed; `None` when no idempotent producer wrote.
    producers: Option<ProducerStates>,
}

/// Checks the sequence of each idempotent batch against the committed state and the batches
/// ahead of it: retries of committed batches are answered at once with their offset,
/// out-of-order or fenced batches are refused.
fn sequence(
    pending: Vec<PendingBatch>,
    committed: ProducerStates,
    base: Offset,
    log_start_offset: Offset,
    now: crate::types::Millis,
) -> Sequenced {
    if pending.iter().all(|b| b.header.producer_id < 0) {
        return Sequenced {
            kept: pending,
            in_flush_duplicates: Vec::new(),
            producers: None,
        };
    }
    let mut working = committed.clone();
    let mut next = base;
    let mut kept = Vec::with_capacity(pending.len());
    let mut in_flush_duplicates = Vec::new();
    for b in pending {
        match working.check(&b.header) {
            SeqCheck::Append => {
                working.record(&b.header, next, now);
                next = next.plus(b.header.offset_count());
                kept.push(b);
            }
            SeqCheck::Duplicate(at) if at < base => {
                if let Some(reply) = b.reply {
                    let _ = reply.send(Ok(Appended {
                        base_offset: at,
                        log_start_offset,
                    }));
                }
            }
            SeqCheck::Duplicate(at) => in_flush_duplicates.push((b.reply, at)),
            SeqCheck::Reject(e) => {
                tracing::debug!(error = %e, "idempotent batch refused");
                if let Some(reply) = b.reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
    Sequenced {
        kept,
        in_flush_duplicates,
        producers: Some(working),
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

pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(6))
}
