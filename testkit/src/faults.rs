//! Fault-injecting wrappers around the ports, for tests of what the log does when storage
//! misbehaves. Each wrapper passes calls through to the real adapter unless a fault is armed.

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, ObjectMeta, ObjectStore, PutMode, RangeResult,
    StoreError, StoreStatus, Txn, TxnOutcome, WatchStream,
};

/// Holds the next call that passes it, once armed, until the test lets it go on or fail.
#[derive(Debug, Default)]
struct Gate(Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<bool>)>>);

impl Gate {
    fn arm(&self) -> Held {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((reached_tx, release_rx));
        Held { reached, release }
    }

    /// Waits while the call is held; true when it must fail.
    async fn pass(&self) -> bool {
        let armed = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((reached, release)) = armed else {
            return false;
        };
        let _ = reached.send(());
        release.await.unwrap_or(false)
    }
}

/// The test's side of a held call.
#[derive(Debug)]
pub struct Held {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<bool>,
}

impl Held {
    /// Waits until the held call has arrived (and is waiting).
    pub async fn reached(&mut self) {
        let _ = (&mut self.reached).await;
    }

    /// Lets the held call go on.
    pub fn release(self) {
        let _ = self.release.send(false);
    }

    /// Makes the held call fail.
    pub fn fail(self) {
        let _ = self.release.send(true);
    }
}

/// Counts operations and fails the next `fail_puts` PUTs with a transient error.
#[derive(Debug)]
pub struct FaultyObjectStore {
    inner: Arc<dyn ObjectStore>,
    /// PUTs that will fail before one is let through.
    pub fail_puts: AtomicUsize,
    /// Latency added to every PUT.
    put_delay: Mutex<Duration>,
    /// Operations left before every further one fails (`usize::MAX` = never).
    healthy_ops: AtomicUsize,
    hold: Gate,
    puts_under_way: AtomicUsize,
    /// The most PUTs seen under way at once.
    pub max_concurrent_puts: AtomicUsize,
    pub puts: AtomicU64,
    pub gets: AtomicU64,
}

impl FaultyObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<FaultyObjectStore> {
        Arc::new(FaultyObjectStore {
            inner,
            fail_puts: AtomicUsize::new(0),
            put_delay: Mutex::new(Duration::ZERO),
            healthy_ops: AtomicUsize::new(usize::MAX),
            hold: Gate::default(),
            puts_under_way: AtomicUsize::new(0),
            max_concurrent_puts: AtomicUsize::new(0),
            puts: AtomicU64::new(0),
            gets: AtomicU64::new(0),
        })
    }

    /// Holds the next PUT until the test releases it or fails it (with a fatal error, so
    /// that the caller does not retry it).
    pub fn hold_next_put(&self) -> Held {
        self.hold.arm()
    }

    pub fn fail_next_puts(&self, n: usize) {
        self.fail_puts.store(n, Ordering::SeqCst);
    }

    /// After `n` more operations of any kind, every operation fails with a transient error
    /// (a store that goes away for good); `None` heals it.
    pub fn fail_after(&self, n: Option<usize>) {
        self.healthy_ops
            .store(n.unwrap_or(usize::MAX), Ordering::SeqCst);
    }

    fn gone(&self) -> Result<(), StoreError> {
        let left = self
            .healthy_ops
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                usize::MAX | 0 => None,
                n => Some(n - 1),
            })
            .unwrap_or_else(|n| n);
        if left == 0 {
            return Err(StoreError::Transient {
                message: "injected: object store gone".into(),
            });
        }
        Ok(())
    }

    pub fn set_put_delay(&self, delay: Duration) {
        *self.put_delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    async fn put_inner(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let delay = *self.put_delay.lock().unwrap_or_else(|e| e.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.hold.pass().await {
            return Err(StoreError::Fatal {
                message: "injected put failure (held)".into(),
            });
        }
        self.gone()?;
        if Self::take_fault(&self.fail_puts) {
            return Err(StoreError::Transient {
                message: "injected put failure".into(),
            });
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, data, mode).await
    }

    fn take_fault(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let now = self.puts_under_way.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent_puts.fetch_max(now, Ordering::SeqCst);
        let result = self.put_inner(key, data, mode).await;
        self.puts_under_way.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.gone()?;
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.gone()?;
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.gone()?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.gone()?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.gone()?;
        self.inner.delete(key).await
    }
}

/// How the next transactions fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnFault {
    /// The transaction is not applied and the caller gets `Unavailable`.
    FailBefore,
    /// The transaction is applied but the caller gets `Unavailable` (a timed-out response).
    FailAfter,
}

#[derive(Debug)]
pub struct FaultyMetadataStore {
    inner: Arc<dyn MetadataStore>,
    faults: Mutex<Vec<TxnFault>>,
    hold: Gate,
    /// While set, every call fails without reaching the store (a network partition).
    cut_off: AtomicBool,
    pub txns: AtomicU64,
}

impl FaultyMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>) -> Arc<FaultyMetadataStore> {
        Arc::new(FaultyMetadataStore {
            inner,
            faults: Mutex::new(Vec::new()),
            hold: Gate::default(),
            cut_off: AtomicBool::new(false),
            txns: AtomicU64::new(0),
        })
    }

    /// Makes the store unreachable (`true`: every call fails `Unavailable` without reaching
    /// it, lease renewals included) or reachable again.
    pub fn set_cut_off(&self, cut_off: bool) {
        self.cut_off.store(cut_off, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), MetadataError> {
        if self.cut_off.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(())
    }

    /// Holds the next transaction before it reaches the store, until the test releases it
    /// (or fails it, as `FailBefore`): lets a test change the store between a caller's
    /// reads and its commit.
    pub fn hold_next_txn(&self) -> Held {
        self.hold.arm()
    }

    /// Arms faults for the next transactions, in order.
    pub fn fail_next_txns(&self, faults: &[TxnFault]) {
        let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.clear();
        f.extend(faults.iter().rev());
    }
}

fn unavailable() -> MetadataError {
    MetadataError::Unavailable {
        message: "injected metadata failure".into(),
    }
}

#[async_trait]
impl MetadataStore for FaultyMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.reachable()?;
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.reachable()?;
        self.inner.range(prefix).await
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        self.reachable()?;
        self.inner.range_from(prefix, start).await
    }

    async fn compact(&self, revision: i64) -> Result<(), MetadataError> {
        self.reachable()?;
        self.inner.compact(revision).await
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        self.reachable()?;
        self.inner.status().await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        self.reachable()?;
        self.txns.fetch_add(1, Ordering::SeqCst);
        if self.hold.pass().await {
            return Err(unavailable());
        }
        let fault = self.faults.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match fault {
            None => self.inner.txn(txn).await,
            Some(TxnFault::FailBefore) => Err(unavailable()),
            Some(TxnFault::FailAfter) => {
                self.inner.txn(txn).await?;
                Err(unavailable())
            }
        }
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        self.reachable()?;
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.reachable()?;
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.reachable()?;
        self.inner.revoke_lease(lease).await
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        self.reachable()?;
        self.inner.watch(prefix).await
    }
}
