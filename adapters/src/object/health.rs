//! Object-store health from what its requests experience: the error rate and latency over a
//! sliding window decide between healthy, degraded and unavailable. The broker pushes back on
//! produce (a retriable error) and fails `/readyz` while the store is unavailable.

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthState {
    Healthy = 0,
    Degraded = 1,
    Unavailable = 2,
}

#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// How far back requests count.
    pub window: Duration,
    /// Mean latency at or above which the store is degraded.
    pub degraded_latency: Duration,
    /// Error rate at or above which the store is degraded.
    pub degraded_error_rate: f64,
    /// Error rate at or above which the store is unavailable (with at least
    /// `min_requests` in the window), as is a run of `failure_run` failures in a row.
    pub unavailable_error_rate: f64,
    pub min_requests: usize,
    pub failure_run: usize,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            window: Duration::from_secs(30),
            degraded_latency: Duration::from_secs(1),
            degraded_error_rate: 0.05,
            unavailable_error_rate: 0.5,
            min_requests: 4,
            failure_run: 3,
        }
    }
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    ok: bool,
    latency: Duration,
}

#[derive(Debug)]
pub struct HealthTracker {
    policy: HealthPolicy,
    samples: Mutex<VecDeque<Sample>>,
}

impl HealthTracker {
    pub fn new(policy: HealthPolicy) -> Arc<HealthTracker> {
        Arc::new(HealthTracker {
            policy,
            samples: Mutex::new(VecDeque::new()),
        })
    }

    pub fn record(&self, ok: bool, latency: Duration) {
        let now = Instant::now();
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(Sample {
            at: now,
            ok,
            latency,
        });
        while s
            .front()
            .is_some_and(|x| now.duration_since(x.at) > self.policy.window)
        {
            s.pop_front();
        }
    }

    pub fn state(&self) -> HealthState {
        let now = Instant::now();
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let recent: Vec<&Sample> = s
            .iter()
            .filter(|x| now.duration_since(x.at) <= self.policy.window)
            .collect();
        if recent.is_empty() {
            return HealthState::Healthy;
        }
        let run = recent.iter().rev().take_while(|x| !x.ok).count();
        let errors = recent.iter().filter(|x| !x.ok).count();
        let rate = errors as f64 / recent.len() as f64;
        if run >= self.policy.failure_run
            || (recent.len() >= self.policy.min_requests
                && rate >= self.policy.unavailable_error_rate)
        {
            return HealthState::Unavailable;
        }
        let mean = recent.iter().map(|x| x.latency).sum::<Duration>() / recent.len() as u32;
        if rate >= self.policy.degraded_error_rate || mean >= self.policy.degraded_latency {
            return HealthState::Degraded;
        }
        HealthState::Healthy
    }
}

/// Records the outcome of every request in a [`HealthTracker`]. Answers (not found, already
/// exists) count as success: the store responded.
#[derive(Debug)]
pub struct HealthObjectStore {
    inner: Arc<dyn ObjectStore>,
    tracker: Arc<HealthTracker>,
}

impl HealthObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>, tracker: Arc<HealthTracker>) -> HealthObjectStore {
        HealthObjectStore { inner, tracker }
    }

    fn note<T>(&self, started: Instant, r: &Result<T, StoreError>) {
        let ok = !matches!(r, Err(StoreError::Transient { .. }));
        self.tracker.record(ok, started.elapsed());
    }
}

#[async_trait]
impl ObjectStore for HealthObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put(key, data, mode).await;
        self.note(t, &r);
        r
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.note(t, &r);
        r
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_range(key, range).await;
        self.note(t, &r);
        r
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let t = Instant::now();
        let r = self.inner.head(key).await;
        self.note(t, &r);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list(prefix).await;
        self.note(t, &r);
        r
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.delete(key).await;
        self.note(t, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_errors_and_latency() {
        let t = HealthTracker::new(HealthPolicy::default());
        assert_eq!(t.state(), HealthState::Healthy);
        for _ in 0..20 {
            t.record(true, Duration::from_millis(5));
        }
        assert_eq!(t.state(), HealthState::Healthy);
        t.record(false, Duration::from_millis(5));
        t.record(true, Duration::from_millis(5));
        assert_eq!(
            t.state(),
            HealthState::Healthy,
            "one error in 22 is below 5%"
        );
        for _ in 0..3 {
            t.record(false, Duration::from_millis(5));
        }
        assert_eq!(
            t.state(),
            HealthState::Unavailable,
            "three failures in a row"
        );
        t.record(true, Duration::from_millis(5));
        assert_eq!(
            t.state(),
            HealthState::Degraded,
            "recovering, still many errors"
        );
        let slow = HealthTracker::new(HealthPolicy::default());
        for _ in 0..5 {
            slow.record(true, Duration::from_secs(2));
        }
        assert_eq!(slow.state(), HealthState::Degraded);
    }
}
