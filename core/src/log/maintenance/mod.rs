//! Maintenance of the partitions this broker leads, in rounds: checkpoints, segment merges,
//! retention and DeleteRecords. One round writes one checkpoint object for every partition
//! that changed since its last checkpoint, and their checkpoint records in a few
//! transactions (many partitions each, fenced like a flush); the flush records the round
//! covers are then deleted.
//!
//! Every `log.cleaner.backoff.ms` a round also cleans the partitions of compacted topics
//! (`clean.rs`), and every `log.retention.check.interval.ms` it enforces retention. A round
//! that runs only for those checkpoints only the partitions it changed.
//!
//! A round runs every `checkpoint_interval_ms`, when this broker's uncovered flush records
//! reach `checkpoint_max_records`, for a DeleteRecords request, for a hand-over (the leaving
//! partition alone) and at shutdown. Rounds, takeover checkpoints and hand-overs hold the
//! maintenance lock, so checkpoints of a partition are written one at a time.

mod admin;
mod clean;
mod clean_plan;
mod cleanup;
mod coalesce;
mod jobs;
mod merge;
mod retention;

use admin::AdminJobs;
pub use admin::DeleteBefore;
use clean::CleanedSegments;
pub use clean_plan::Policy as CleanPolicy;
pub(in crate::log) use jobs::Jobs;
pub use retention::Retention;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;

use super::producers::ProducerStates;
use super::state::{ChunkIndex, ChunkRecord};
use super::{lock, PartitionRecord, Shared};
use crate::checkpoint_format::{CheckpointObjectBuilder, Section};
use crate::error::{Error, Result};
use crate::ports::{Compare, MetadataError, PutMode, Txn, TxnOp};
use crate::retry::{Backoff, Retry};
use crate::schema::{keys, Checkpoint, SectionRef, SegmentRecord, Tail};
use crate::types::{Offset, PartitionKey};

/// Partitions per checkpoint transaction: two compares (checkpoint, leader record) and one
/// or two puts each, plus the fence, below etcd's 128 per list.
const CHECKPOINTS_PER_TXN: usize = 60;

/// Metadata operations (puts and deletes) of one checkpoint transaction at most, below
/// etcd's 128 per list.
const OPS_PER_TXN: usize = 120;

/// Partitions merged at once in a round.
const MERGES_AT_ONCE: usize = 4;

/// Time a round spends starting merges, at most.
const MERGE_BUDGET_MS: i64 = 10_000;

/// Waits after failed rounds in a row: 100 ms, doubling up to 1.6 s.
const ROUND_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(1_600));

/// What a round covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::log) enum Round {
    /// Retention when `retention` is set; the log cleaner when `clean` is. When `all_dirty`
    /// is set (the checkpoint interval, or flush records piling up), merges and coalescing,
    /// and every dirty partition is checkpointed; otherwise only the partitions the round
    /// changed, so that the cleaner's and retention's own schedules add no checkpoints of
    /// partitions they leave alone.
    Periodic {
        retention: bool,
        clean: bool,
        all_dirty: bool,
    },
    /// One partition, about to be handed over.
    HandOver(PartitionKey),
    /// Every dirty partition, at shutdown.
    Final,
}

/// A partition's state as a checkpoint will record it.
#[derive(Debug)]
pub(in crate::log) struct Snapshot {
    pub key: PartitionKey,
    pub leader_revision: i64,
    /// The checkpoint key's mod revision the write expects.
    pub checkpoint_revision: i64,
    pub record: PartitionRecord,
    pub index: ChunkIndex,
    pub producers: ProducerStates,
    /// The partition's change counter when the snapshot was taken.
    pub changes: u64,
    /// A segment this round merged: its key is written with the checkpoint.
    pub new_segment: Option<ChunkRecord>,
    /// Chunks this round coalesced (each replaces the small chunks it covers).
    pub coalesced: Vec<ChunkRecord>,
    /// The round moved the log start: segment keys below it go afterwards.
    pub moved_start: bool,
    /// Segments the log cleaner rewrote in the round, with those they replace.
    pub cleaned: Option<CleanedSegments>,
}

impl Snapshot {
    /// Metadata operations its checkpoint takes: the checkpoint, a merged segment, and a put
    /// or delete per segment key a clean replaced.
    fn ops(&self) -> usize {
        1 + usize::from(self.new_segment.is_some())
            + self.cleaned.as_ref().map_or(0, |c| {
                c.replacements.iter().map(|(bases, _)| bases.len()).sum()
            })
    }
}

pub(in crate::log) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.checkpoint_interval_ms.max(1) as i64;
    let retention_every = shared.config.retention_check_ms.max(1) as i64;
    let clean_every = shared.config.cleaner_backoff_ms.max(1) as i64;
    let now = shared.clock.now_ms();
    let mut next_round = now + interval;
    let mut next_retention = now + retention_every;
    let mut next_clean = now + clean_every;
    let mut failures = Retry::new(&*shared.clock, ROUND_BACKOFF);
    loop {
        let next = next_round.min(next_retention).min(next_clean);
        let wait = (next - shared.clock.now_ms()).max(0) as u64;
        let woken = tokio::select! {
            _ = shared.maintenance.wake.notified() => true,
            _ = shared.clock.sleep(Duration::from_millis(wait)) => false,
        };
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let now = shared.clock.now_ms();
        let retention = now >= next_retention;
        let clean = now >= next_clean;
        let all_dirty = woken || now >= next_round;
        match shared
            .checkpoint_round(Round::Periodic {
                retention,
                clean,
                all_dirty,
            })
            .await
        {
            Ok(()) => {
                failures.reset();
                let now = shared.clock.now_ms();
                if all_dirty {
                    next_round = now + interval;
                }
                if retention {
                    next_retention = now + retention_every;
                }
                if clean {
                    next_clean = now + clean_every;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, failures = failures.attempt(), "checkpoint round failed");
                failures.wait().await;
            }
        }
    }
}

impl Shared {
    /// A flush committed: when this broker's uncovered flush records pile up, a round covers
    /// them before the next interval.
    pub(in crate::log) fn note_uncovered(&self, committed_seq: u64) {
        let covered = self.maintenance.covering(lock(&self.writer).covered_seq);
        if committed_seq.saturating_sub(covered) >= self.config.checkpoint_max_records {
            self.maintenance.wake();
        }
    }

    /// Runs one round (see the module docs).
    pub(in crate::log) async fn checkpoint_round(&self, round: Round) -> Result<()> {
        let _maintenance = self.maintenance.hold().await;
        self.round(round).await.map(drop)
    }

    /// Checkpoints a partition about to be handed over, so that its next leader reads no
    /// flush record of this broker for it. The caller holds the maintenance lock.
    pub(in crate::log) async fn write_final_checkpoint(&self, key: PartitionKey) -> Result<()> {
        if self.round(Round::HandOver(key)).await? == 1 {
            Ok(())
        } else {
            Err(Error::Metadata(MetadataError::Unavailable {
                message: format!("cannot checkpoint {key} before handing it over"),
            }))
        }
    }

    /// A round, with the maintenance lock held; returns how many checkpoints committed.
    async fn round(&self, round: Round) -> Result<usize> {
        self.refresh_checkpoint_revisions().await;
        // Read before the snapshots: every flush up to it is in them (later ones may be too,
        // which a reader recognises by their end offsets).
        let covered = lock(&self.writer).committed_seq;
        let all_dirty = matches!(
            round,
            Round::Final
                | Round::Periodic {
                    all_dirty: true,
                    ..
                }
        );
        if all_dirty {
            self.maintenance.set_covering(covered);
        }
        let jobs = match round {
            Round::HandOver(_) => Vec::new(),
            _ => std::mem::take(&mut *lock(&self.maintenance.admin)),
        };
        let mut new_starts: BTreeMap<PartitionKey, Offset> = BTreeMap::new();
        let mut answers = Vec::new();
        for job in jobs {
            match self.delete_records_target(&job) {
                Ok(Some(target)) => {
                    new_starts.insert(job.partition, target);
                    answers.push((job, target));
                }
                Ok(None) => {
                    let start = self.log_start(job.partition);
                    let _ = job.reply.send(start);
                }
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if let Round::Periodic {
            retention: true, ..
        } = round
        {
            for (key, start) in self.retention_targets() {
                let s = new_starts.entry(key).or_insert(start);
                *s = (*s).max(start);
            }
        }
        let (merged, coalesced) = match round {
            Round::Periodic {
                all_dirty: true, ..
            } => {
                let merged = self.merges().await;
                let coalesced = self.coalesce(&merged, MERGE_BUDGET_MS).await;
                (merged, coalesced)
            }
            _ => (BTreeMap::new(), BTreeMap::new()),
        };
        let cleaned = match round {
            Round::Periodic { clean: true, .. } => self.cleans(MERGE_BUDGET_MS).await,
            _ => BTreeMap::new(),
        };
        let changes = Changes {
            new_starts: &new_starts,
            merged: &merged,
            coalesced: &coalesced,
            cleaned: &cleaned,
        };
        let snapshots = self.snapshots(round, &changes);
        let all_taken = snapshots.len();
        let committed = if snapshots.is_empty() {
            Vec::new()
        } else {
            self.write_checkpoints(&snapshots, false).await?
        };
        let complete = committed.len() == all_taken;
        let committed: Vec<(&Snapshot, i64)> = committed
            .iter()
            .map(|(i, r)| (&snapshots[*i], *r))
            .collect();
        for (s, revision) in &committed {
            self.apply_checkpoint(s, *revision);
        }
        for (job, target) in answers {
            let done = committed.iter().any(|(s, _)| s.key == job.partition);
            let _ = job.reply.send(if done {
                tracing::info!(partition = %job.partition, log_start = target.0, "records deleted");
                Ok(target)
            } else {
                Err(Error::NotLeader(job.partition))
            });
        }
        if complete && all_dirty {
            self.delete_covered(covered).await;
        }
        self.drop_segments_below(&committed).await;
        Ok(committed.len())
    }

    /// The merges of a round: several partitions at once, and none started after
    /// [`MERGE_BUDGET_MS`], so that a backlog of merges (a thousand partitions reaching the
    /// chunk bound together) delays the round's checkpoints, and the cleanup of the flush
    /// records they cover, by that long at most. The rest wait for the next round.
    async fn merges(&self) -> BTreeMap<PartitionKey, ChunkRecord> {
        let started = self.clock.now_ms();
        let candidates = self.merge_candidates();
        let mut merged = BTreeMap::new();
        // Boxed one by one: a stream of closures borrowing `self` defeats the compiler's
        // Send check of the spawned maintenance task.
        type Run<'a> = BoxFuture<'a, (PartitionKey, Result<Option<ChunkRecord>>)>;
        let runs: Vec<Run<'_>> = candidates
            .into_iter()
            .map(|key| -> Run<'_> { Box::pin(async move { (key, self.merge(key).await) }) })
            .collect();
        let mut runs = futures::stream::iter(runs).buffer_unordered(MERGES_AT_ONCE);
        while let Some((key, outcome)) = runs.next().await {
            match outcome {
                Ok(Some(segment)) => {
                    merged.insert(key, segment);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = %key, error = %e, "segment merge failed"),
            }
            if self.clock.now_ms() - started >= MERGE_BUDGET_MS {
                // Merges still under way are dropped: a segment they uploaded is garbage that
                // nothing references, collected like a failed flush's object.
                break;
            }
        }
        merged
    }

    /// Snapshots of the partitions the round checkpoints, with their new log starts and the
    /// segments merged, chunks coalesced and segments cleaned in the round applied.
    fn snapshots(&self, round: Round, changes: &Changes<'_>) -> Vec<Snapshot> {
        let Changes {
            new_starts,
            merged,
            coalesced,
            cleaned,
        } = *changes;
        let keys: Vec<PartitionKey> = match round {
            Round::HandOver(key) => vec![key],
            _ => {
                let map = self.partitions.read();
                map.keys().copied().collect()
            }
        };
        let forced: BTreeSet<PartitionKey> = new_starts
            .keys()
            .chain(merged.keys())
            .chain(coalesced.keys())
            .chain(cleaned.keys())
            .copied()
            .collect();
        let mut out = Vec::new();
        for key in keys {
            let Ok(partition) = self.partitions.get(key) else {
                continue;
            };
            let p = lock(&partition);
            let wanted = match round {
                Round::HandOver(_) => true,
                Round::Final
                | Round::Periodic {
                    all_dirty: true, ..
                } => p.dirty() || forced.contains(&key),
                Round::Periodic { .. } => forced.contains(&key),
            };
            // A checkpoint whose last write had an unknown outcome waits for its re-read.
            if !p.writable() || !wanted || p.checkpoint.revision < 0 {
                continue;
            }
            let mut record = p.record;
            let mut index = p.index.clone();
            let mut moved_start = false;
            if let Some(segment) = merged.get(&key) {
                let bases: Vec<Offset> = index
                    .unmerged_chunks()
                    .take_while(|c| c.last_offset <= segment.last_offset)
                    .map(|c| c.base_offset)
                    .collect();
                index.replace(&bases, segment.clone());
            }
            // Likewise a clean whose segments no longer line up is dropped.
            let cleaned = cleaned
                .get(&key)
                .filter(|c| replace_cleaned(&mut index, c))
                .cloned();
            // Chunks that no longer line up (the log changed meanwhile) are not replaced; the
            // new object is then garbage.
            let coalesced = coalesced
                .get(&key)
                .filter(|new| index.replace_chunks(new))
                .cloned()
                .unwrap_or_default();
            if let Some(start) = new_starts.get(&key) {
                if *start > record.log_start_offset {
                    record.log_start_offset = (*start).min(record.log_end_offset);
                    index.truncate_before(record.log_start_offset);
                    moved_start = true;
                }
            }
            out.push(Snapshot {
                key,
                leader_revision: p.leader_revision,
                checkpoint_revision: p.checkpoint.revision,
                record,
                index,
                producers: {
                    let mut producers = p.producers.clone();
                    producers.prune_aborted(record.log_start_offset);
                    if let Some(c) = &cleaned {
                        producers.retire_aborted(&c.retired);
                    }
                    producers
                },
                changes: p.checkpoint.changes,
                new_segment: merged.get(&key).cloned(),
                coalesced,
                moved_start,
                cleaned,
            });
        }
        out
    }

    /// Writes the checkpoints of `snapshots`: one checkpoint object for their sections, then
    /// transactions of up to [`CHECKPOINTS_PER_TXN`] partitions, each comparing the fence and
    /// every checkpoint key it replaces. A takeover's checkpoints name this broker from its
    /// next flush on; a round's cover the flushes committed when it began. Returns what
    /// committed: the snapshots' indexes, with each checkpoint key's new revision.
    pub(in crate::log) async fn write_checkpoints(
        &self,
        snapshots: &[Snapshot],
        takeover: bool,
    ) -> Result<Vec<(usize, i64)>> {
        if lock(&self.writer).fenced {
            self.sync_fence().await?;
        }
        let (incarnation, after, fence) = {
            let w = lock(&self.writer);
            let after = if takeover {
                w.next_seq - 1
            } else {
                w.committed_seq
            };
            (w.incarnation, after, w.fence_revision)
        };
        let mut builder = CheckpointObjectBuilder::new(self.config.broker_id);
        let mut sections: Vec<Option<crate::checkpoint_format::Placed>> = Vec::new();
        for s in snapshots {
            let chunks: Vec<ChunkRecord> = s.index.unmerged_chunks().cloned().collect();
            if chunks.is_empty() && s.producers.is_empty() {
                sections.push(None);
                continue;
            }
            let section = Section {
                chunks,
                producers: s.producers.clone(),
            };
            sections.push(Some(builder.add(s.key, &section)));
        }
        let object_key = keys::checkpoint_object(self.config.broker_id, uuid::Uuid::now_v7());
        if !builder.is_empty() {
            let (object, _) = builder.finish();
            self.store
                .put(&object_key, object, PutMode::Create)
                .await
                .map_err(Error::Store)?;
        }
        let mut committed = Vec::with_capacity(snapshots.len());
        let items: Vec<(usize, &Snapshot, Option<crate::checkpoint_format::Placed>)> = snapshots
            .iter()
            .zip(sections)
            .enumerate()
            .map(|(i, (s, p))| (i, s, p))
            .collect();
        for group in txn_groups(&items) {
            let mut txn = Txn::new().when(Compare::ModRevision {
                key: keys::fence(self.config.broker_id),
                revision: fence,
            });
            for (_, s, placed) in group {
                let epoch = self
                    .partitions
                    .get(s.key)
                    .map(|p| lock(&p).leadership.leader_epoch)
                    .unwrap_or_default();
                let checkpoint = Checkpoint {
                    leader_epoch: epoch,
                    log_start_offset: s.record.log_start_offset,
                    log_end_offset: s.record.log_end_offset,
                    tail: Tail {
                        broker: self.config.broker_id,
                        incarnation,
                        after,
                    },
                    section: placed.map(|p| SectionRef {
                        object: object_key.clone(),
                        position: p.position,
                        length: p.length,
                        crc: p.crc,
                    }),
                };
                let key = keys::checkpoint(s.key);
                txn = txn
                    .when(Compare::ModRevision {
                        key: key.clone(),
                        revision: s.checkpoint_revision,
                    })
                    // Still this broker's partition: the snapshot may predate a fence change
                    // that the fence read just above has already taken in, and a checkpoint
                    // of a partition taken over would let the flush records it covers go
                    // while the new leader reads them.
                    .when(Compare::ModRevision {
                        key: keys::leader(s.key),
                        revision: s.leader_revision,
                    })
                    .then(TxnOp::Put {
                        key,
                        value: checkpoint.encode(),
                        lease: None,
                    });
                if let Some(segment) = &s.new_segment {
                    txn = txn.then(TxnOp::Put {
                        key: keys::segment(s.key, segment.base_offset),
                        value: SegmentRecord::encode(segment),
                        lease: None,
                    });
                }
                for (bases, segment) in s.cleaned.iter().flat_map(|c| &c.replacements) {
                    txn = txn.then(TxnOp::Put {
                        key: keys::segment(s.key, segment.base_offset),
                        value: SegmentRecord::encode(segment),
                        lease: None,
                    });
                    for base in bases.iter().filter(|b| **b != segment.base_offset) {
                        txn = txn.then(TxnOp::Delete {
                            key: keys::segment(s.key, *base),
                        });
                    }
                }
            }
            match self.meta.txn(txn).await {
                Ok(o) if o.succeeded => {
                    committed.extend(group.iter().map(|(i, _, _)| (*i, o.revision)));
                }
                Ok(_) => {
                    self.checkpoint_conflict(group.iter().map(|(_, s, _)| *s))
                        .await;
                }
                Err(e @ MetadataError::NoSpace { .. }) => {
                    self.metadata_full.store(true, Ordering::SeqCst);
                    return Err(e.into());
                }
                Err(e) => {
                    // Unknown outcome: the next write's compare tells; re-read then.
                    tracing::warn!(error = %e, partitions = group.len(), "checkpoint commit failed");
                    for (_, s, _) in group {
                        self.forget_checkpoint_revision(s.key);
                    }
                }
            }
        }
        Ok(committed)
    }

    /// A checkpoint transaction's compare failed: the fence changed, or a checkpoint key did
    /// (another broker took a partition over). Finds out which, and drops what was lost.
    async fn checkpoint_conflict<'a>(&self, group: impl Iterator<Item = &'a Snapshot>) {
        let fence = lock(&self.writer).fence_revision;
        let current = self
            .meta
            .get(&keys::fence(self.config.broker_id))
            .await
            .ok()
            .flatten()
            .map_or(0, |kv| kv.mod_revision);
        if current != fence {
            lock(&self.writer).fenced = true;
            if let Err(e) = self.sync_fence().await {
                tracing::warn!(error = %e, "cannot re-read the fence");
            }
            return;
        }
        for s in group {
            let now = self
                .meta
                .get(&keys::checkpoint(s.key))
                .await
                .ok()
                .flatten()
                .map_or(0, |kv| kv.mod_revision);
            if now != s.checkpoint_revision {
                // Adopt it if it is our own write whose reply was lost; otherwise the
                // partition belongs to someone else now.
                self.forget_checkpoint_revision(s.key);
            }
        }
    }

    /// The checkpoint key changed without this broker knowing the result: the next write
    /// re-reads it. If it names this incarnation it was our own write; otherwise another
    /// broker took the partition over and this one stops leading it.
    fn forget_checkpoint_revision(&self, key: PartitionKey) {
        if let Ok(p) = self.partitions.get(key) {
            lock(&p).checkpoint.revision = -1;
        }
        self.maintenance.wake();
    }

    /// A checkpoint committed: the partition's state follows it.
    fn apply_checkpoint(&self, s: &Snapshot, revision: i64) {
        let Ok(partition) = self.partitions.get(s.key) else {
            return;
        };
        let mut p = lock(&partition);
        if p.leader_revision != s.leader_revision || !p.writable() {
            return;
        }
        p.checkpoint.revision = revision;
        p.checkpoint.written = s.changes;
        if let Some(segment) = &s.new_segment {
            let bases: Vec<Offset> = p
                .index
                .unmerged_chunks()
                .take_while(|c| c.last_offset <= segment.last_offset)
                .map(|c| c.base_offset)
                .collect();
            p.index.replace(&bases, segment.clone());
            self.stats.segments.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = &s.cleaned {
            if replace_cleaned(&mut p.index, c) {
                // With the markers the clean removed: a read listing the chunks before this
                // still finds them, and an entry without its marker is never read.
                p.producers.retire_aborted(&c.retired);
                self.stats.cleaner_runs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .cleaned_bytes
                    .fetch_add(c.bytes_read, Ordering::Relaxed);
                self.stats
                    .cleaned_records
                    .fetch_add(c.removed, Ordering::Relaxed);
            } else {
                // As for coalesced chunks: cannot happen while rounds hold the lock.
                tracing::error!(partition = %s.key, "cleaned segments do not line up with the partition's index");
            }
        }
        if !s.coalesced.is_empty() && !p.index.replace_chunks(&s.coalesced) {
            // Cannot happen while rounds hold the maintenance lock: only a round changes the
            // chunks a snapshot covers. The old chunks stay readable until garbage collection
            // finds them unreferenced; say so loudly.
            tracing::error!(partition = %s.key, "coalesced chunks do not line up with the partition's index");
        }
        if s.record.log_start_offset > p.record.log_start_offset {
            p.record.log_start_offset = s.record.log_start_offset;
            let start = p.record.log_start_offset;
            p.index.truncate_before(start);
            p.producers.prune_aborted(start);
            tracing::info!(partition = %s.key, log_start = start.0, "log start moved");
        }
    }

    fn log_start(&self, key: PartitionKey) -> Result<Offset> {
        let p = self.partitions.get(key)?;
        let p = lock(&p);
        Ok(p.record.log_start_offset)
    }
}

/// What a round changed, by partition, for its snapshots.
struct Changes<'a> {
    new_starts: &'a BTreeMap<PartitionKey, Offset>,
    merged: &'a BTreeMap<PartitionKey, ChunkRecord>,
    coalesced: &'a BTreeMap<PartitionKey, Vec<ChunkRecord>>,
    cleaned: &'a BTreeMap<PartitionKey, CleanedSegments>,
}

/// Replaces in `index` the segments a clean rewrote by the new ones; false, changing nothing,
/// if they no longer line up (every replaced base a segment of the index, each new segment
/// spanning exactly the ones it replaces).
fn replace_cleaned(index: &mut ChunkIndex, cleaned: &CleanedSegments) -> bool {
    let lines_up = cleaned.replacements.iter().all(|(bases, new)| {
        let found: Option<Vec<&ChunkRecord>> = bases
            .iter()
            .map(|b| {
                index
                    .find(*b)
                    .filter(|c| c.base_offset == *b && c.segment.is_some())
            })
            .collect();
        found.is_some_and(|f| {
            f.first().is_some_and(|c| c.base_offset == new.base_offset)
                && f.last().is_some_and(|c| c.last_offset == new.last_offset)
        })
    });
    if lines_up {
        for (bases, new) in &cleaned.replacements {
            index.replace(bases, new.clone());
        }
    }
    lines_up
}

/// The snapshots' checkpoint transactions: up to [`CHECKPOINTS_PER_TXN`] partitions and
/// [`OPS_PER_TXN`] operations each (one partition alone may exceed the latter).
fn txn_groups<'a, T>(items: &'a [(usize, &Snapshot, T)]) -> Vec<&'a [(usize, &'a Snapshot, T)]> {
    let mut groups = Vec::new();
    let (mut start, mut ops) = (0, 0);
    for (i, (_, s, _)) in items.iter().enumerate() {
        let n = s.ops();
        if i > start && (i - start >= CHECKPOINTS_PER_TXN || ops + n > OPS_PER_TXN) {
            groups.push(&items[start..i]);
            start = i;
            ops = 0;
        }
        ops += n;
    }
    if start < items.len() {
        groups.push(&items[start..]);
    }
    groups
}
