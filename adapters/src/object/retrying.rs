//! Wrappers that bound every object-store request by a timeout ([`TimeoutObjectStore`], placed
//! innermost so that metrics and health see timeouts as transient errors) and retry the
//! idempotent ones (reads, listing, deletes, overwrites) on transient errors with exponential
//! backoff on a [`Clock`] ([`RetryingObjectStore`], outermost).
//!
//! Create-if-absent puts are attempted once: after an unknown outcome only the caller knows
//! whether an `AlreadyExists` on a retry is its own earlier write (the flusher's keys are
//! unique, so it does know and retries itself).

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{Clock, ObjectMeta, ObjectStore, PutMode, StoreError};
use kafscale_core::retry::{retry, Backoff};
use kafscale_core::settings;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::SystemClock;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Bound on one request.
    pub timeout: Duration,
    /// Attempts of an idempotent request, the first included.
    pub attempts: u32,
    /// Waits between the attempts.
    pub backoff: Backoff,
}

/// The registry's `object.store.timeout.ms` and `object.store.retries` defaults.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_millis(settings::OBJECT_STORE_TIMEOUT_MS.default_int() as u64),
            attempts: settings::OBJECT_STORE_RETRIES.default_int() as u32 + 1,
            // The attempts bound the wait, so it needs no cap of its own.
            backoff: Backoff::uncapped(Duration::from_millis(50)),
        }
    }
}

#[derive(Debug)]
pub struct RetryingObjectStore {
    inner: Arc<dyn ObjectStore>,
    policy: RetryPolicy,
    /// Times the waits between attempts.
    clock: Arc<dyn Clock>,
}

impl RetryingObjectStore {
    /// Waits on the system clock.
    pub fn new(inner: Arc<dyn ObjectStore>, policy: RetryPolicy) -> RetryingObjectStore {
        RetryingObjectStore {
            inner,
            policy,
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Waits on `clock` instead.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> RetryingObjectStore {
        self.clock = clock;
        self
    }

    async fn retried<T, F, Fut>(&self, op: &str, key: &str, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let retriable = |e: &StoreError, attempt| {
            let again = e.is_retriable();
            if again {
                tracing::debug!(op, key, attempt, error = %e, "retrying object store request");
            }
            again
        };
        let (backoff, attempts) = (self.policy.backoff, self.policy.attempts);
        retry(&*self.clock, backoff, attempts, retriable, |_| f()).await
    }
}

#[async_trait]
impl ObjectStore for RetryingObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        match mode {
            PutMode::Create => self.inner.put(key, data, mode).await,
            PutMode::Overwrite => {
                self.retried("put", key, || self.inner.put(key, data.clone(), mode))
                    .await
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.retried("get", key, || self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.retried("get", key, || self.inner.get_range(key, range.clone()))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.retried("head", key, || self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.retried("list", prefix, || self.inner.list(prefix))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.retried("delete", key, || self.inner.delete(key)).await
    }
}

/// Bounds every request by a timeout; a request that takes longer fails as transient.
#[derive(Debug)]
pub struct TimeoutObjectStore {
    inner: Arc<dyn ObjectStore>,
    timeout: Duration,
}

impl TimeoutObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>, timeout: Duration) -> TimeoutObjectStore {
        TimeoutObjectStore { inner, timeout }
    }

    async fn bounded<T, F>(&self, op: &str, key: &str, f: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Transient {
                message: format!("{op} {key} timed out after {:?}", self.timeout),
            }),
        }
    }
}

#[async_trait]
impl ObjectStore for TimeoutObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.bounded("put", key, self.inner.put(key, data, mode))
            .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.bounded("get", key, self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.bounded("get", key, self.inner.get_range(key, range))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.bounded("head", key, self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.bounded("list", prefix, self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bounded("delete", key, self.inner.delete(key)).await
    }
}
