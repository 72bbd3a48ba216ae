//! DeleteRecords: a request moves a partition's log start; the next checkpoint round records
//! it (the checkpoint is where the log start lives) and answers the request once it
//! committed.

use std::sync::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::log::{lock, LogService, Shared};
use crate::types::{Offset, PartitionKey};

/// How often a waiting DeleteRecords looks whether the broker is shutting down.
const SHUTDOWN_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// Where DeleteRecords moves a partition's log start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBefore {
    /// Everything committed so far.
    HighWatermark,
    Offset(Offset),
}

/// A DeleteRecords request waiting for a checkpoint round.
pub(in crate::log) struct DeleteRecordsJob {
    /// Lets a requester take back a job no round has started.
    id: uuid::Uuid,
    pub partition: PartitionKey,
    before: DeleteBefore,
    pub reply: oneshot::Sender<Result<Offset>>,
}

/// Queue of DeleteRecords requests, drained by checkpoint rounds.
pub(super) type AdminJobs = Mutex<Vec<DeleteRecordsJob>>;

impl LogService {
    /// Moves a partition's log start to `before` (DeleteRecords); returns the new log start
    /// (the low watermark). Offsets above the high watermark are out of range; offsets at or
    /// below the current log start change nothing.
    pub async fn delete_records(
        &self,
        partition: PartitionKey,
        before: DeleteBefore,
    ) -> Result<Offset> {
        let shared = &self.shared;
        shared.partitions.check_leader(partition)?;
        if shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::ShuttingDown);
        }
        let (reply, mut answer) = oneshot::channel();
        let id = uuid::Uuid::new_v4();
        lock(&shared.maintenance.admin).push(DeleteRecordsJob {
            id,
            partition,
            before,
            reply,
        });
        shared.maintenance.wake();
        loop {
            tokio::select! {
                result = &mut answer => return result.unwrap_or(Err(Error::ShuttingDown)),
                _ = shared.clock.sleep(SHUTDOWN_CHECK) => {}
            }
            // A stopping broker runs no more rounds: take the job back if none started it.
            if shared
                .shutting_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                let mut jobs = lock(&shared.maintenance.admin);
                if let Some(i) = jobs.iter().position(|j| j.id == id) {
                    jobs.swap_remove(i);
                    return Err(Error::ShuttingDown);
                }
            }
        }
    }
}

impl Shared {
    /// The log start a DeleteRecords job asks for; None when it changes nothing.
    pub(in crate::log) fn delete_records_target(
        &self,
        job: &DeleteRecordsJob,
    ) -> Result<Option<Offset>> {
        let p = self.partitions.get(job.partition)?;
        let p = lock(&p);
        if !p.writable() {
            return Err(Error::NotLeader(job.partition));
        }
        let (start, end) = (p.record.log_start_offset, p.record.log_end_offset);
        let target = match job.before {
            DeleteBefore::HighWatermark => end,
            DeleteBefore::Offset(o) => o,
        };
        if target > end {
            return Err(Error::OffsetOutOfRange {
                offset: target,
                start,
                end,
            });
        }
        Ok((target > start).then_some(target))
    }
}
