//! The flusher: gathers pending batches, writes one object for all partitions, commits it
//! with one fenced metadata transaction per group of partitions, then answers the appends.
//!
//! Flushes are pipelined: while one flush uploads or commits, the next is built and uploaded
//! (up to [`FLUSHES_IN_FLIGHT`] at once), so the object store's latency does not cap the
//! throughput. Offsets of a flush are assigned on top of the flushes ahead of it (their
//! projected extent, see [`Projected`]); commits stay in flush order, and a partition's part
//! of a flush commits only if the extent is exactly where it was projected to be, so a
//! flush ahead of it that failed for that partition fails it too: no offset is skipped or
//! reused.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// Flushes under way at once (building, uploading or committing).
pub const FLUSHES_IN_FLIGHT: usize = 3;

type Reply = Option<oneshot::Sender<Result<Appended>>>;

/// Where a partition's extent will stand once the flushes under way for it commit: the base
/// of its next flush. A chain of flushes builds on it; the chain ends when its last flush
/// commits, or breaks (and is dropped) when any of its flushes fails for the partition.
#[derive(Debug, Clone)]
pub(super) struct Projected {
    end: Offset,
    /// The producer state after the chain, if an idempotent producer wrote in it.
    producers: Option<ProducerStates>,
    /// The leadership the chain was built under.
    leader_revision: i64,
    /// The first and the last flush of the chain.
    first_flush: u64,
    last_flush: u64,
}

impl Projected {
    fn new(leader_revision: i64, id: u64) -> Projected {
        Projected {
            end: Offset::ZERO,
            producers: None,
            leader_revision,
            first_flush: id,
            last_flush: id,
        }
    }
}

/// One partition's part of a flush.
struct Planned {
    key: PartitionKey,
    /// The fence: the leader record's revision when the flush was planned.
    leader_revision: i64,
    /// Where the extent must stand when this part commits, and where it will stand after.
    base: Offset,
    end: Offset,
    /// None when the part holds only retries of batches in flushes ahead of it.
    chunk: Option<ChunkRecord>,
    /// The producer state after this commit, when idempotent producers wrote.
    producers: Option<ProducerStates>,
    /// Each waiting append with the offset its batch got.
    replies: Vec<(Reply, Offset)>,
}

/// A part ready to commit: the extent record to write over the one at `expected_revision`.
struct Ready {
    planned: Planned,
    expected_revision: i64,
    record: PartitionRecord,
}

/// A flush built and ready to upload.
struct Built {
    id: u64,
    object: Bytes,
    parts: Vec<(Planned, Option<ChunkEntry>)>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let check = shared.config.retention_check_ms.max(1) as i64;
    let mut next_retention = shared.clock.now_ms() + check;
    let mut in_flight: VecDeque<JoinHandle<()>> = VecDeque::new();
    // Completion of the newest flush under way: the next one commits after it.
    let mut newest: Option<oneshot::Receiver<()>> = None;
    let mut next_id = 0u64;
    loop {
        while in_flight.front().is_some_and(JoinHandle::is_finished) {
            in_flight.pop_front();
        }
        let now = shared.clock.now_ms();
        let retention_due = now >= next_retention;
        if retention_due || !lock(&shared.admin_jobs).is_empty() {
            // DeleteRecords and retention rewrite partition records: run them with no flush
            // under way (see `admin`).
            drain(&mut in_flight).await;
            shared.run_admin_jobs().await;
            if retention_due {
                shared.enforce_retention().await;
                next_retention = shared.clock.now_ms() + check;
            }
        }
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
            if in_flight.len() >= FLUSHES_IN_FLIGHT {
                // Let the batches gather while the oldest flush finishes.
                if let Some(oldest) = in_flight.pop_front() {
                    let _ = oldest.await;
                }
                continue;
            }
            let taken = std::mem::take(&mut *lock(&shared.pending));
            {
                let mut flushing = lock(&shared.flushing);
                for key in taken.batches.keys() {
                    *flushing.entry(*key).or_default() += 1;
                }
            }
            next_id += 1;
            let keys: Vec<PartitionKey> = taken.batches.keys().copied().collect();
            let bytes = taken.bytes;
            let built = build(&shared, next_id, taken.batches).await;
            let (done, done_rx) = oneshot::channel();
            let ahead = newest.replace(done_rx);
            let shared2 = shared.clone();
            in_flight.push_back(tokio::spawn(async move {
                if let Some(built) = built {
                    complete(&shared2, built, ahead).await;
                } else if let Some(ahead) = ahead {
                    let _ = ahead.await;
                }
                shared2.buffered.fetch_sub(bytes, Ordering::SeqCst);
                shared2.done_flushing(&keys);
                let _ = done.send(());
            }));
            continue;
        }
        if stopping {
            drain(&mut in_flight).await;
            return;
        }
        let until_retention = (next_retention - shared.clock.now_ms()).max(0) as u64;
        let wait = wait_ms.map_or(until_retention, |ms| ms.min(until_retention));
        tokio::select! {
            _ = shared.flush_wake.notified() => {}
            _ = shared.clock.sleep(Duration::from_millis(wait)) => {}
        }
    }
}

async fn drain(in_flight: &mut VecDeque<JoinHandle<()>>) {
    while let Some(flush) = in_flight.pop_front() {
        if let Err(e) = flush.await {
            tracing::error!(error = %e, "flush task failed");
        }
    }
}

fn fail(replies: Vec<(Reply, Offset)>, err: impl Fn() -> Error) {
    for (reply, _) in replies {
        if let Some(reply) = reply {
            // The requester may have gone away (timeout, closed connection); nothing to do.
            let _ = reply.send(Err(err()));
        }
    }
}

/// A flush ahead of this one failed for the partition, so this one's offsets, assigned on
/// top of it, cannot be used: the producer retries.
fn earlier_flush_failed() -> Error {
    Error::Store(StoreError::Transient {
        message: "an earlier flush of this partition failed; retry".into(),
    })
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

/// Assigns offsets on top of the flushes under way, checks idempotent sequences and builds
/// the object. None when nothing is left to write.
async fn build(
    shared: &Arc<Shared>,
    id: u64,
    batches: BTreeMap<PartitionKey, Vec<PendingBatch>>,
) -> Option<Built> {
    let size: usize = batches.values().flatten().map(|b| b.batch.len()).sum();
    let mut builder = FlushObjectBuilder::new(shared.config.broker_id, shared.clock.now_ms(), size);
    let mut parts: Vec<(Planned, Option<ChunkEntry>)> = Vec::new();
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
        let (record, leadership, leader_revision, committed, projected) = {
            let p = lock(&partition);
            if !p.writable() {
                drop(p);
                fail_batches(pending, || Error::NotLeader(key));
                continue;
            }
            // Read under the partition's lock, which a commit holds while it updates both.
            let projected = lock(&shared.projected)
                .get(&key)
                .filter(|c| c.leader_revision == p.leader_revision)
                .cloned();
            (
                p.record,
                p.leadership,
                p.leader_revision,
                p.producers.clone(),
                projected,
            )
        };
        let (base, producers_before) = match &projected {
            Some(pr) => (pr.end, pr.producers.clone().unwrap_or(committed)),
            None => (record.log_end_offset, committed),
        };
        let now = shared.clock.now_ms();
        let Sequenced {
            kept: pending,
            in_flush_duplicates,
            producers,
        } = sequence(
            pending,
            producers_before,
            record.log_end_offset,
            base,
            record.log_start_offset,
            now,
        );
        if pending.is_empty() && in_flush_duplicates.is_empty() {
            continue;
        }
        let producers = producers.map(|mut p| {
            p.expire(now - shared.config.producer_expiration_ms);
            p
        });
        if pending.is_empty() {
            // Only retries of batches in flushes ahead of this one: answered in this
            // flush's turn, when those have committed.
            parts.push((
                Planned {
                    key,
                    leader_revision,
                    base,
                    end: base,
                    chunk: None,
                    producers: None,
                    replies: in_flush_duplicates,
                },
                None,
            ));
            continue;
        }
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
                fail(in_flush_duplicates, || Error::CorruptBatch(e.clone()));
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
        let end = entry.last_offset.next();
        {
            let mut projected = lock(&shared.projected);
            let chain = projected
                .entry(key)
                .and_modify(|c| {
                    if c.leader_revision != leader_revision {
                        // Left from an earlier leadership: its flushes fail on their own.
                        *c = Projected::new(leader_revision, id);
                    }
                })
                .or_insert_with(|| Projected::new(leader_revision, id));
            chain.end = end;
            chain.last_flush = id;
            if producers.is_some() {
                chain.producers = producers.clone();
            }
        }
        parts.push((
            Planned {
                key,
                leader_revision,
                base,
                end,
                chunk: Some(ChunkRecord::from_entry("", &entry)),
                producers,
                replies,
            },
            Some(entry),
        ));
    }
    if parts.is_empty() {
        return None;
    }
    let (object, _) = builder.finish();
    Some(Built { id, object, parts })
}

/// Uploads a built flush, waits for the flush ahead of it to finish, then commits its parts.
async fn complete(shared: &Arc<Shared>, built: Built, ahead: Option<oneshot::Receiver<()>>) {
    let Built { id, object, parts } = built;
    let object_key = keys::flush_object(shared.config.broker_id, uuid::Uuid::now_v7());
    let started = shared.clock.now_ms();
    let uploaded = shared.upload(&object_key, object.clone()).await;
    if let Some(ahead) = ahead {
        let _ = ahead.await;
    }
    if let Err(e) = uploaded {
        tracing::warn!(object = %object_key, error = %e, "flush upload failed");
        let message = e.to_string();
        for (p, _) in parts {
            shared.break_chain(p.key, id);
            fail(p.replies, || {
                Error::Store(StoreError::Transient {
                    message: message.clone(),
                })
            });
        }
        return;
    }
    let uploaded = shared.clock.now_ms();
    let partitions = parts.len();
    shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .flushed_bytes
        .fetch_add(object.len() as u64, Ordering::Relaxed);
    let mut ready: Vec<Ready> = Vec::with_capacity(parts.len());
    for (mut p, entry) in parts {
        if let (Some(chunk), Some(entry)) = (&mut p.chunk, entry) {
            chunk.object = object_key.clone();
            shared.cache.insert(
                &object_key,
                entry.position,
                object.slice(entry.range().start as usize..entry.range().end as usize),
            );
        }
        if let Some(r) = shared.ready_to_commit(p, id) {
            ready.push(r);
        }
    }
    while !ready.is_empty() {
        let rest = ready.split_off(ready.len().min(COMMIT_GROUP));
        shared.commit_group(ready, id).await;
        ready = rest;
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

    /// A part's turn to commit (every flush ahead of it has finished): it commits only if
    /// the partition is still led under the same record and its extent stands exactly where
    /// the part was built on. Parts holding only retries are answered here.
    fn ready_to_commit(&self, p: Planned, id: u64) -> Option<Ready> {
        let key = p.key;
        let Ok(partition) = self.partition(key) else {
            fail(p.replies, || Error::UnknownPartition(key));
            return None;
        };
        let state = lock(&partition);
        let led = matches!(state.role, super::Role::Leader | super::Role::HandingOver)
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
    fn break_chain(&self, key: PartitionKey, id: u64) {
        let mut projected = lock(&self.projected);
        if projected.get(&key).is_some_and(|c| c.first_flush <= id) {
            projected.remove(&key);
        }
    }

    /// The flush's partitions are no longer being flushed by it.
    fn done_flushing(&self, keys: &[PartitionKey]) {
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
    async fn commit_group(&self, mut group: Vec<Ready>, id: u64) {
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
    in_flush_duplicates: Vec<(Reply, Offset)>,
    /// The producer state once `kept` is committed; `None` when no idempotent producer wrote.
    producers: Option<ProducerStates>,
}

/// Checks the sequence of each idempotent batch against the state `before` it (after the
/// flushes under way) and the batches ahead of it: retries of committed batches are
/// answered at once with their offset, out-of-order or fenced batches are refused.
fn sequence(
    pending: Vec<PendingBatch>,
    before: ProducerStates,
    committed_end: Offset,
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
    let mut working = before;
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
            // Committed already: answered now. A retry of a batch in a flush under way
            // is answered when that one has committed (in this flush's turn).
            SeqCheck::Duplicate(at) if at < committed_end => {
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
