//! The state of the flush pipeline that appends, the flusher, commits and hand-overs share:
//! what is pending, what is being flushed, the extents the flushes under way project, and the
//! produced bytes held.
//!
//! Lock order inside the pipeline (after a partition's mutex): `projected` -> `pending` ->
//! `flushing`.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use super::Projected;
use crate::batch::BatchHeader;
use crate::error::Result;
use crate::log::{lock, Appended};
use crate::ports::Clock;
use crate::types::{Millis, PartitionKey};

pub(in crate::log) struct PendingBatch {
    pub batch: Bytes,
    pub header: BatchHeader,
    pub reply: Option<oneshot::Sender<Result<Appended>>>,
}

/// Batches appended since the last flush started.
#[derive(Default)]
pub(in crate::log) struct Pending {
    pub batches: BTreeMap<PartitionKey, Vec<PendingBatch>>,
    pub bytes: usize,
    /// When the oldest pending batch arrived.
    pub since: Option<Millis>,
}

pub(in crate::log) struct Pipeline {
    pub(in crate::log::flush) pending: Mutex<Pending>,
    /// Partitions of the flushes under way, with how many hold each.
    pub(in crate::log::flush) flushing: Mutex<HashMap<PartitionKey, usize>>,
    /// Extents as they will stand once the flushes under way commit.
    pub(in crate::log::flush) projected: Mutex<HashMap<PartitionKey, Projected>>,
    /// Produced bytes pending or in flushes under way (bounded by `max_buffered_bytes`).
    pub(in crate::log::flush) buffered: AtomicUsize,
    /// Wakes the flusher: new work, a threshold crossed, or shutdown.
    pub(in crate::log::flush) wake: Notify,
    /// Bumped after every commit; fetch long-polls wait on it.
    pub(in crate::log::flush) committed: watch::Sender<u64>,
}

impl Pipeline {
    pub(in crate::log) fn new() -> Pipeline {
        let (committed, _) = watch::channel(0);
        Pipeline {
            pending: Mutex::new(Pending::default()),
            flushing: Mutex::new(HashMap::new()),
            projected: Mutex::new(HashMap::new()),
            buffered: AtomicUsize::new(0),
            wake: Notify::new(),
            committed,
        }
    }

    /// Queues a validated batch for the next flush, and wakes the flusher when the batch is
    /// the first pending one or crosses `flush_bytes`.
    pub(in crate::log) fn queue(
        &self,
        key: PartitionKey,
        batch: PendingBatch,
        clock: &dyn Clock,
        flush_bytes: usize,
    ) {
        let wake = {
            let mut pending = lock(&self.pending);
            let was_empty = pending.batches.is_empty();
            pending.bytes += batch.batch.len();
            self.buffered.fetch_add(batch.batch.len(), Ordering::SeqCst);
            if pending.since.is_none() {
                pending.since = Some(clock.now_ms());
            }
            pending.batches.entry(key).or_default().push(batch);
            was_empty || pending.bytes >= flush_bytes
        };
        if wake {
            self.wake.notify_one();
        }
    }

    /// Wakes the flusher.
    pub(in crate::log) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether a partition has batches pending or in a flush under way.
    pub(in crate::log) fn holds(&self, key: PartitionKey) -> bool {
        lock(&self.pending).batches.contains_key(&key) || lock(&self.flushing).contains_key(&key)
    }

    /// Produced bytes pending or in flushes under way.
    pub(in crate::log) fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::SeqCst)
    }

    /// Changes whenever a commit makes new data visible or a flush finishes.
    pub(in crate::log) fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }
}
