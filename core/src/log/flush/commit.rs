//! The commit stage of a flush: each part's turn (the exact-base check), the flush's one
//! metadata transaction, resolving an unknown outcome, and applying what committed.
//!
//! The transaction compares the broker's fence and that the flush record's key is absent,
//! and puts the record. Its outcome can be unknown (a timeout): the next flush of a partition
//! would then assign offsets on top of state that may or may not include this one. So the
//! outcome is resolved before the pipeline goes on: by reading the key, and if it is absent,
//! by writing a tombstone in its place, after which the original can no longer apply.

use super::{earlier_flush_failed, fail, Planned, Reply, FLUSH_BACKOFF};
use crate::error::Error;
use crate::log::{lock, Appended, Role, Shared};
use crate::ports::{Compare, MetadataError, Txn, TxnOp};
use crate::retry::Retry;
use crate::schema::{keys, FlushPart, FlushRecord};
use crate::types::{Millis, Offset, PartitionKey};

/// A flush whose parts passed their turn, ready to commit.
pub(super) struct Flush {
    pub id: u64,
    pub object: String,
    pub index: (u64, u32),
    pub created_ms: Millis,
    pub parts: Vec<Planned>,
}

/// Written where a flush record with an unknown outcome did not land, so it never can.
const TOMBSTONE: &[u8] = b"";

/// Failed attempts at resolving an unknown outcome after which a broker that is shutting
/// down gives up (otherwise resolving goes on while the store is unreachable).
const RESOLVE_ATTEMPTS_WHEN_SHUTTING_DOWN: u32 = 5;

enum Outcome {
    Committed,
    /// The fence changed: the broker lost something.
    Fenced,
    /// Nothing was applied.
    Failed(MetadataError),
}

impl Shared {
    /// A part's turn to commit (every flush ahead of it has finished): it commits only if
    /// the partition is still led under the same leadership and its extent stands exactly
    /// where the part was built on. Parts holding only retries are answered here.
    pub(in crate::log::flush) fn ready_to_commit(&self, p: Planned, id: u64) -> Option<Planned> {
        let key = p.key;
        let Ok(partition) = self.partitions.get(key) else {
            fail(p.replies, || Error::UnknownPartition(key));
            return None;
        };
        let state = lock(&partition);
        let led = matches!(state.role, Role::Leader | Role::HandingOver)
            && state.leader_revision == p.leader_revision;
        if !led {
            drop(state);
            self.break_chain(key, id);
            fail(p.replies, || Error::NotLeader(key));
            return None;
        }
        if p.chunk.is_none() {
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
        }
        if state.record.log_end_offset != p.base {
            drop(state);
            self.break_chain(key, id);
            fail(p.replies, earlier_flush_failed);
            return None;
        }
        Some(p)
    }

    /// A flush failed for a partition: the flushes built on it fail too (their commit check
    /// sees the extent short of their base), and the next flush builds on the committed
    /// extent again.
    pub(in crate::log::flush) fn break_chain(&self, key: PartitionKey, id: u64) {
        let mut projected = lock(&self.flush.projected);
        if projected.get(&key).is_some_and(|c| c.first_flush <= id) {
            projected.remove(&key);
        }
    }

    /// The flush's partitions are no longer being flushed by it.
    pub(in crate::log::flush) fn done_flushing(&self, keys: &[PartitionKey]) {
        {
            let mut flushing = lock(&self.flush.flushing);
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
        self.flush.committed.send_modify(|n| *n += 1);
    }

    /// Commits a flush with one transaction and applies it, or fails its appends.
    pub(in crate::log::flush) async fn commit_flush(&self, flush: Flush) {
        if lock(&self.writer).fenced {
            if let Err(e) = self.sync_fence().await {
                tracing::warn!(error = %e, "cannot read the fence; failing the flush");
                self.fail_flush(flush, |_| Error::Metadata(unavailable(&e.to_string())));
                return;
            }
        }
        // Parts whose leadership the fence sync just dropped are not written.
        let (parts, lost): (Vec<Planned>, Vec<Planned>) =
            flush.parts.into_iter().partition(|p| self.still_led(p));
        for p in lost {
            self.break_chain(p.key, flush.id);
            fail(p.replies, || Error::NotLeader(p.key));
        }
        if parts.is_empty() {
            return;
        }
        let flush = Flush { parts, ..flush };
        let (seq, incarnation, fence) = {
            let mut w = lock(&self.writer);
            let seq = w.next_seq;
            w.next_seq += 1;
            (seq, w.incarnation, w.fence_revision)
        };
        let record = FlushRecord {
            object: flush.object.clone(),
            index_position: flush.index.0,
            index_length: flush.index.1,
            created_ms: flush.created_ms,
            parts: flush
                .parts
                .iter()
                .map(|p| FlushPart {
                    partition: p.key,
                    end: p.end,
                })
                .collect(),
        };
        let key = keys::flush(self.config.broker_id, incarnation, seq);
        let outcome = self.write_flush_record(&key, &record, fence).await;
        match outcome {
            Outcome::Committed => self
                .metadata_full
                .store(false, std::sync::atomic::Ordering::SeqCst),
            Outcome::Failed(MetadataError::NoSpace { .. }) => self
                .metadata_full
                .store(true, std::sync::atomic::Ordering::SeqCst),
            _ => {}
        }
        match outcome {
            Outcome::Committed => self.apply_flush(flush, seq),
            Outcome::Fenced => {
                tracing::warn!(
                    seq,
                    "flush fenced: this broker lost partitions it was flushing"
                );
                lock(&self.writer).fenced = true;
                self.fail_flush(flush, Error::NotLeader);
            }
            Outcome::Failed(e) => {
                tracing::warn!(seq, error = %e, "flush commit failed");
                let message = e.to_string();
                let no_space = matches!(e, MetadataError::NoSpace { .. });
                self.fail_flush(flush, move |_| {
                    Error::Metadata(if no_space {
                        MetadataError::NoSpace {
                            message: message.clone(),
                        }
                    } else {
                        unavailable(&message)
                    })
                });
            }
        }
    }

    fn still_led(&self, p: &Planned) -> bool {
        self.partitions.get(p.key).is_ok_and(|partition| {
            let state = lock(&partition);
            state.writable() && state.leader_revision == p.leader_revision
        })
    }

    fn fail_flush(&self, flush: Flush, err: impl Fn(PartitionKey) -> Error) {
        for p in flush.parts {
            self.break_chain(p.key, flush.id);
            let key = p.key;
            fail(p.replies, || err(key));
        }
    }

    /// Writes the flush record: fenced, create-only. Retries a transient failure; resolves an
    /// unknown outcome before returning (see the module docs).
    async fn write_flush_record(&self, key: &str, record: &FlushRecord, fence: i64) -> Outcome {
        let value = record.encode();
        let txn = Txn::new()
            .when(Compare::ModRevision {
                key: keys::fence(self.config.broker_id),
                revision: fence,
            })
            .when(Compare::ModRevision {
                key: key.to_owned(),
                revision: 0,
            })
            .then(TxnOp::Put {
                key: key.to_owned(),
                value: value.clone(),
                lease: None,
            });
        let mut attempts = Retry::new(&*self.clock, FLUSH_BACKOFF).limit(self.config.attempts);
        loop {
            // Only a failed attempt leads to another, and its outcome is unknown.
            let unknown = attempts.attempt() > 1;
            match self.meta.txn(txn.clone()).await {
                Ok(o) if o.succeeded => return Outcome::Committed,
                Ok(_) if !unknown => return Outcome::Fenced,
                // An earlier attempt may have applied: the key tells.
                Ok(_) => return self.resolve(key, &value).await,
                Err(e @ MetadataError::NoSpace { .. }) if !unknown => return Outcome::Failed(e),
                Err(e) if e.is_retriable() && !attempts.exhausted() => {
                    tracing::debug!(attempt = attempts.attempt(), error = %e, "retrying flush commit");
                    attempts.wait().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flush commit outcome unknown; resolving it");
                    return self.resolve(key, &value).await;
                }
            }
        }
    }

    /// Finds out whether a flush record with an unknown outcome landed, making sure that if
    /// it did not, it never will. Keeps trying while the store is unreachable: the next
    /// flush cannot be built on an unknown state.
    async fn resolve(&self, key: &str, value: &bytes::Bytes) -> Outcome {
        let tombstone = Txn::create(key.to_owned(), bytes::Bytes::from_static(TOMBSTONE), None);
        let mut attempts = Retry::new(&*self.clock, FLUSH_BACKOFF);
        loop {
            match self.meta.get(key).await {
                Ok(Some(kv)) if kv.value == *value => return Outcome::Committed,
                Ok(Some(_)) => {
                    // A tombstone of ours, or a value no one else writes: not ours to apply.
                    return Outcome::Failed(unavailable("the commit did not land"));
                }
                Ok(None) => match self.meta.txn(tombstone.clone()).await {
                    Ok(o) if o.succeeded => {
                        return Outcome::Failed(unavailable("the commit did not land"));
                    }
                    // It landed meanwhile: the next read sees it.
                    Ok(_) => continue,
                    Err(e) => tracing::debug!(error = %e, "cannot resolve the flush commit yet"),
                },
                Err(e) => tracing::debug!(error = %e, "cannot read the flush record yet"),
            }
            let shutting_down = self.shutting_down.load(std::sync::atomic::Ordering::SeqCst);
            if shutting_down && attempts.attempt() >= RESOLVE_ATTEMPTS_WHEN_SHUTTING_DOWN {
                // Either way is safe: a new leader reads the records that landed.
                return Outcome::Failed(unavailable("shutting down with a commit unresolved"));
            }
            attempts.wait().await;
        }
    }

    /// The flush committed: the extents move, the appends are answered.
    fn apply_flush(&self, flush: Flush, seq: u64) {
        let id = flush.id;
        for p in flush.parts {
            let Planned {
                key,
                end,
                chunk,
                producers,
                replies,
                ..
            } = p;
            let mut log_start_offset = Offset::ZERO;
            if let Ok(partition) = self.partitions.get(key) {
                let mut state = lock(&partition);
                let mut projected = lock(&self.flush.projected);
                if projected.get(&key).is_some_and(|c| c.last_flush == id) {
                    // The committed extent has caught up with the chain.
                    projected.remove(&key);
                }
                drop(projected);
                debug_assert!(end > state.record.log_end_offset);
                let from = state.record.log_end_offset;
                state.record.log_end_offset = end;
                if let Some(chunk) = chunk {
                    state.index.push(chunk);
                }
                if let Some(producers) = producers {
                    state.producers.adopt(producers, from);
                }
                state.checkpoint.changes += 1;
                state.checkpoint.last_flush = seq;
                log_start_offset = state.record.log_start_offset;
            }
            answer(replies, log_start_offset);
        }
        let uncovered = {
            let mut w = lock(&self.writer);
            w.committed_seq = seq;
            seq
        };
        self.flush.committed.send_modify(|n| *n += 1);
        self.note_uncovered(uncovered);
    }
}

fn answer(replies: Vec<(Reply, Offset)>, log_start_offset: Offset) {
    for (reply, base_offset) in replies {
        if let Some(reply) = reply {
            let _ = reply.send(Ok(Appended {
                base_offset,
                log_start_offset,
            }));
        }
    }
}

fn unavailable(message: &str) -> MetadataError {
    MetadataError::Unavailable {
        message: message.to_owned(),
    }
}
