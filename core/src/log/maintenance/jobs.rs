//! What the maintenance task and those who want its work share: the lock that lets one
//! checkpoint writer at a time, its wake-up, and the DeleteRecords requests waiting for a
//! round.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{MutexGuard, Notify};

use super::AdminJobs;

#[derive(Default)]
pub(in crate::log) struct Jobs {
    /// Held by a checkpoint round, a takeover's checkpoint and a hand-over: one of them at a
    /// time writes checkpoints. Taken before any other lock of the log and held across
    /// awaits.
    lock: tokio::sync::Mutex<()>,
    /// Wakes the maintenance task: a checkpoint, a merge or a DeleteRecords is wanted.
    pub(super) wake: Notify,
    /// DeleteRecords requests for the next checkpoint round.
    pub(super) admin: AdminJobs,
    /// The flush sequence the latest checkpoint round set out to cover: flushes committed
    /// while it runs count as uncovered only beyond it, so that they do not wake a second
    /// round at once, which would checkpoint every partition again for a handful of flushes.
    covering: AtomicU64,
}

impl Jobs {
    /// Waits until no other checkpoint writer runs; the guard keeps the others out.
    pub(in crate::log) async fn hold(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Wakes the maintenance task.
    pub(in crate::log) fn wake(&self) {
        self.wake.notify_one();
    }

    /// A round starts that covers the flushes up to `seq`.
    pub(super) fn set_covering(&self, seq: u64) {
        self.covering.fetch_max(seq, Ordering::SeqCst);
    }

    /// The flushes a round covers or is covering: `covered` (what rounds finished) or more.
    pub(super) fn covering(&self, covered: u64) -> u64 {
        self.covering.load(Ordering::SeqCst).max(covered)
    }
}
