//! The parts of a single-process metadata store that do not depend on where the key-values
//! live: the write lock, leases and their expiry sweeper, watches, and running backend calls
//! on the blocking pool when the backend does I/O.

use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, RangeResult, StoreStatus, Txn, TxnOp, TxnOutcome, WatchStream,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::leases::LeaseTable;
use super::state::{self, Applied};
use super::watch::WatchHub;

/// Where the key-values live.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Whether calls block on I/O and must run on tokio's blocking pool.
    const BLOCKING: bool;

    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError>;
    fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.range_from(prefix, prefix)
    }
    /// Keys under `prefix` from `start` on, with the revision of the same snapshot.
    fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError>;
    /// Size of what the backend keeps, its revision and number of keys.
    fn status(&self) -> Result<StoreStatus, MetadataError>;
    /// Applies `txn` with [`state::apply`] atomically (and durably, for a durable backend).
    /// Called with the engine's write lock held; `txn` is validated unless internal.
    fn commit(&self, txn: &Txn, live_leases: &HashSet<LeaseId>) -> Result<Applied, MetadataError>;
}

pub(crate) struct Engine<B> {
    backend: B,
    /// Held across check, commit, lease bookkeeping and watch publication, so commits are
    /// serial, watchers see them in revision order and a lease cannot be revoked between
    /// the check of a put that attaches to it and the commit.
    write: Mutex<()>,
    /// Separate from `write` so keep-alives do not wait behind an fsync. Lock order:
    /// `write`, then `leases`, then `watchers`.
    leases: Mutex<LeaseTable>,
    watchers: Mutex<WatchHub>,
    /// Wakes the lease sweeper when a lease is granted (its deadline may be the earliest).
    sweep_wake: Arc<Notify>,
    sweeper: Mutex<Option<AbortHandle>>,
}

impl<B> std::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl<B> Drop for Engine<B> {
    fn drop(&mut self) {
        if let Some(handle) = lock(&self.sweeper).take() {
            handle.abort();
        }
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the data
/// consistent before anything in it can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: Backend> Engine<B> {
    pub(crate) fn new(backend: B) -> Arc<Engine<B>> {
        Arc::new(Engine {
            backend,
            write: Mutex::new(()),
            leases: Mutex::new(LeaseTable::new()),
            watchers: Mutex::new(WatchHub::default()),
            sweep_wake: Arc::new(Notify::new()),
            sweeper: Mutex::new(None),
        })
    }

    async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Engine<B>) -> Result<R, MetadataError> + Send + 'static,
    ) -> Result<R, MetadataError> {
        if !B::BLOCKING {
            return f(self);
        }
        let engine = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| MetadataError::Fatal {
                message: format!("metadata task failed: {e}"),
            })?
    }

    pub(crate) async fn get(
        self: &Arc<Self>,
        key: &str,
    ) -> Result<Option<KeyValue>, MetadataError> {
        let key = key.to_owned();
        self.run(move |e| e.backend.get(&key)).await
    }

    pub(crate) async fn range(
        self: &Arc<Self>,
        prefix: &str,
    ) -> Result<RangeResult, MetadataError> {
        let prefix = prefix.to_owned();
        self.run(move |e| e.backend.range(&prefix)).await
    }

    pub(crate) async fn range_from(
        self: &Arc<Self>,
        prefix: &str,
        start: &str,
    ) -> Result<RangeResult, MetadataError> {
        let (prefix, start) = (prefix.to_owned(), start.to_owned());
        self.run(move |e| e.backend.range_from(&prefix, &start))
            .await
    }

    pub(crate) async fn status(self: &Arc<Self>) -> Result<StoreStatus, MetadataError> {
        self.run(move |e| e.backend.status()).await
    }

    pub(crate) async fn txn(self: &Arc<Self>, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        state::validate(&txn)?;
        self.run(move |e| e.commit(&txn)).await
    }

    fn commit(&self, txn: &Txn) -> Result<TxnOutcome, MetadataError> {
        let _write = lock(&self.write);
        let wanted = txn.ops.iter().filter_map(|op| match op {
            TxnOp::Put { lease, .. } => *lease,
            _ => None,
        });
        let live = lock(&self.leases).live(wanted, Instant::now());
        let applied = self.backend.commit(txn, &live)?;
        self.publish(&applied);
        Ok(applied.outcome)
    }

    fn publish(&self, applied: &Applied) {
        if applied.changes.is_empty() {
            return;
        }
        lock(&self.leases).apply(&applied.changes);
        lock(&self.watchers).publish(applied.changes.iter().map(|c| &c.event));
    }

    pub(crate) async fn grant_lease(
        self: &Arc<Self>,
        ttl: Duration,
    ) -> Result<LeaseId, MetadataError> {
        if ttl.is_zero() {
            return Err(MetadataError::InvalidRequest {
                message: "lease ttl must be positive".to_owned(),
            });
        }
        self.ensure_sweeper();
        let id = lock(&self.leases).grant(ttl, Instant::now());
        self.sweep_wake.notify_one();
        Ok(id)
    }

    pub(crate) fn keep_alive(&self, id: LeaseId) -> Result<(), MetadataError> {
        lock(&self.leases).keep_alive(id, Instant::now())
    }

    pub(crate) async fn revoke_lease(self: &Arc<Self>, id: LeaseId) -> Result<(), MetadataError> {
        self.run(move |e| {
            let _write = lock(&e.write);
            let keys = lock(&e.leases)
                .keys(id)
                .ok_or(MetadataError::LeaseNotFound(id))?;
            e.delete_keys(keys)?;
            lock(&e.leases).remove(id);
            Ok(())
        })
        .await
    }

    /// Deletes keys of a lease that is gone, in one transaction. Caller holds `write`.
    fn delete_keys(&self, keys: Vec<String>) -> Result<(), MetadataError> {
        if keys.is_empty() {
            return Ok(());
        }
        let ops = keys.into_iter().map(|key| TxnOp::Delete { key }).collect();
        let txn = Txn {
            compares: Vec::new(),
            ops,
        };
        // Internal: not subject to the per-request limits, a lease may hold many keys.
        let applied = self.backend.commit(&txn, &HashSet::new())?;
        self.publish(&applied);
        Ok(())
    }

    fn expire_due(&self) -> Result<(), MetadataError> {
        let _write = lock(&self.write);
        let expired = lock(&self.leases).expired(Instant::now());
        for (id, keys) in expired {
            tracing::debug!(lease = id.0, keys = keys.len(), "metadata lease expired");
            self.delete_keys(keys)?;
            lock(&self.leases).remove(id);
        }
        Ok(())
    }

    pub(crate) fn watch(&self, prefix: &str) -> WatchStream {
        lock(&self.watchers).subscribe(prefix)
    }

    /// Starts the expiry task on first use, so that stores without leases need no task and
    /// can be built outside a runtime.
    fn ensure_sweeper(self: &Arc<Self>) {
        let mut sweeper = lock(&self.sweeper);
        if sweeper.is_none() {
            let task = tokio::spawn(sweep(Arc::downgrade(self), Arc::clone(&self.sweep_wake)));
            *sweeper = Some(task.abort_handle());
        }
    }
}

/// Deletes the keys of expired leases when their deadline passes. Holds the engine only
/// weakly; it is aborted when the engine is dropped.
async fn sweep<B: Backend>(engine: Weak<Engine<B>>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = match engine.upgrade() {
            Some(engine) => lock(&engine.leases).next_deadline(),
            None => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut notified => continue,
                }
            }
            None => {
                notified.await;
                continue;
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if let Err(error) = engine.run(|e| e.expire_due()).await {
            tracing::warn!(%error, "metadata lease expiry failed, retrying");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Implements the metadata port for a store whose `engine` field is an [`Engine`]: the
/// memory and embedded stores differ only in their backend.
macro_rules! forward_to_engine {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl kafscale_core::ports::MetadataStore for $store {
            async fn get(
                &self,
                key: &str,
            ) -> Result<Option<kafscale_core::ports::KeyValue>, kafscale_core::ports::MetadataError>
            {
                self.engine.get(key).await
            }

            async fn range(
                &self,
                prefix: &str,
            ) -> Result<kafscale_core::ports::RangeResult, kafscale_core::ports::MetadataError>
            {
                self.engine.range(prefix).await
            }

            async fn range_from(
                &self,
                prefix: &str,
                start: &str,
            ) -> Result<kafscale_core::ports::RangeResult, kafscale_core::ports::MetadataError>
            {
                self.engine.range_from(prefix, start).await
            }

            async fn txn(
                &self,
                txn: kafscale_core::ports::Txn,
            ) -> Result<kafscale_core::ports::TxnOutcome, kafscale_core::ports::MetadataError> {
                self.engine.txn(txn).await
            }

            /// Only the current value of each key is kept: there is no history to compact.
            async fn compact(
                &self,
                _revision: i64,
            ) -> Result<(), kafscale_core::ports::MetadataError> {
                Ok(())
            }

            async fn status(
                &self,
            ) -> Result<kafscale_core::ports::StoreStatus, kafscale_core::ports::MetadataError>
            {
                self.engine.status().await
            }

            async fn grant_lease(
                &self,
                ttl: std::time::Duration,
            ) -> Result<kafscale_core::ports::LeaseId, kafscale_core::ports::MetadataError> {
                self.engine.grant_lease(ttl).await
            }

            async fn keep_alive(
                &self,
                lease: kafscale_core::ports::LeaseId,
            ) -> Result<(), kafscale_core::ports::MetadataError> {
                self.engine.keep_alive(lease)
            }

            async fn revoke_lease(
                &self,
                lease: kafscale_core::ports::LeaseId,
            ) -> Result<(), kafscale_core::ports::MetadataError> {
                self.engine.revoke_lease(lease).await
            }

            async fn watch(
                &self,
                prefix: &str,
            ) -> Result<kafscale_core::ports::WatchStream, kafscale_core::ports::MetadataError>
            {
                Ok(self.engine.watch(prefix))
            }
        }
    };
}
pub(crate) use forward_to_engine;
