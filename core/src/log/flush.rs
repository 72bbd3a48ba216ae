//! The flusher: gathers pending batches, writes one object for all partitions, commits it
//! with one metadata transaction (a flush record, under the broker's fence), then answers
//! the appends.
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

use super::producers::ProducerStates;
use super::state::ChunkRecord;
use super::{lock, Appended, Shared};
use crate::error::{Error, Result};
use crate::object_format::{ChunkEntry, FlushObjectBuilder};
use crate::ports::{PutMode, StoreError};
use crate::retry::{retry, Backoff};
use crate::schema::keys;
use crate::types::{Millis, Offset, PartitionKey};

mod commit;
mod pipeline;
mod sequence;

pub(super) use pipeline::{PendingBatch, Pipeline};
use sequence::{sequence, Sequenced};

/// Flushes under way at once (building, uploading or committing).
pub const FLUSHES_IN_FLIGHT: usize = 3;

type Reply = Option<oneshot::Sender<Result<Appended>>>;

/// Where a partition's extent will stand once the flushes under way for it commit: the base
/// of its next flush. A chain of flushes builds on it; the chain ends when its last flush
/// commits, or breaks (and is dropped) when any of its flushes fails for the partition.
#[derive(Debug, Clone)]
struct Projected {
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

/// A flush built and ready to upload.
struct Built {
    id: u64,
    object: Bytes,
    /// Where the object's index lies (position, length).
    index: (u64, u32),
    created_ms: Millis,
    parts: Vec<(Planned, Option<ChunkEntry>)>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let mut in_flight: VecDeque<JoinHandle<()>> = VecDeque::new();
    // Completion of the newest flush under way: the next one commits after it.
    let mut newest: Option<oneshot::Receiver<()>> = None;
    let mut next_id = 0u64;
    loop {
        while in_flight.front().is_some_and(JoinHandle::is_finished) {
            in_flight.pop_front();
        }
        let stopping = shared.shutting_down.load(Ordering::SeqCst);
        let (ready, wait_ms) = {
            let pending = lock(&shared.flush.pending);
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
            let taken = std::mem::take(&mut *lock(&shared.flush.pending));
            {
                let mut flushing = lock(&shared.flush.flushing);
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
                shared2.flush.buffered.fetch_sub(bytes, Ordering::SeqCst);
                shared2.done_flushing(&keys);
                let _ = done.send(());
            }));
            continue;
        }
        if stopping {
            drain(&mut in_flight).await;
            return;
        }
        let wait = wait_ms.unwrap_or(60_000);
        tokio::select! {
            _ = shared.flush.wake.notified() => {}
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
    let created_ms = shared.clock.now_ms();
    let mut builder = FlushObjectBuilder::new(shared.config.broker_id, created_ms, size);
    let mut parts: Vec<(Planned, Option<ChunkEntry>)> = Vec::new();
    for (key, pending) in batches {
        let Ok(partition) = shared.partitions.get(key) else {
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
            let projected = lock(&shared.flush.projected)
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
            let mut projected = lock(&shared.flush.projected);
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
    let (object, _, index) = builder.finish();
    Some(Built {
        id,
        object,
        index,
        created_ms,
        parts,
    })
}

/// Uploads a built flush, waits for the flush ahead of it to finish, then commits its parts.
async fn complete(shared: &Arc<Shared>, built: Built, ahead: Option<oneshot::Receiver<()>>) {
    let Built {
        id,
        object,
        index,
        created_ms,
        parts,
    } = built;
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
    let mut ready: Vec<Planned> = Vec::with_capacity(parts.len());
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
    if !ready.is_empty() {
        let flush = commit::Flush {
            id,
            object: object_key.clone(),
            index,
            created_ms,
            parts: ready,
        };
        shared.commit_flush(flush).await;
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
        retry(
            &*self.clock,
            FLUSH_BACKOFF,
            self.config.attempts,
            |e: &StoreError, attempt| {
                let again = e.is_retriable();
                if again {
                    tracing::debug!(object = %key, attempt, error = %e, "retrying upload");
                }
                again
            },
            |attempt| {
                let put = self.store.put(key, object.clone(), PutMode::Create);
                async move {
                    match put.await {
                        // The key is unique to this flush: after an attempt with an unknown
                        // outcome, "already exists" means that attempt landed.
                        Err(StoreError::AlreadyExists { .. }) if attempt > 1 => Ok(()),
                        other => other,
                    }
                }
            },
        )
        .await
    }
}

/// Waits between attempts at a flush's upload and commit: 100 ms, doubling up to 3.2 s.
pub(super) const FLUSH_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(3_200));
