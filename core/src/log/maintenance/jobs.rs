//! What the maintenance task and those who want its work share: the lock that lets one
//! checkpoint writer at a time, its wake-up, and the DeleteRecords requests waiting for a
//! round.

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
}
