//! A wrapper that counts and times every object-store request, for `/metrics`:
//! `kafscale_object_store_requests_total{op,result}`, the request latency histogram
//! `kafscale_object_store_request_duration_seconds{op}`, and bytes in and out.

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::request_metrics::RequestMetrics;

/// Object-store metrics, registered once and shared by the wrapper.
#[derive(Clone, Debug)]
pub struct ObjectStoreMetrics {
    requests: RequestMetrics,
    bytes_written: Counter,
    bytes_read: Counter,
}

impl ObjectStoreMetrics {
    pub fn register(registry: &mut Registry) -> ObjectStoreMetrics {
        let sub = registry.sub_registry_with_prefix("kafscale_object_store");
        let m = ObjectStoreMetrics {
            // 1 ms .. ~33 s
            requests: RequestMetrics::register(sub, "Object store", || {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            bytes_written: Counter::default(),
            bytes_read: Counter::default(),
        };
        sub.register(
            "written_bytes",
            "Bytes written to the object store",
            m.bytes_written.clone(),
        );
        sub.register(
            "read_bytes",
            "Bytes read from the object store",
            m.bytes_read.clone(),
        );
        m
    }

    fn record<T>(&self, op: &'static str, started: Instant, result: &Result<T, StoreError>) {
        let result = match result {
            Ok(_) => "ok",
            Err(StoreError::NotFound { .. }) => "not_found",
            Err(StoreError::AlreadyExists { .. }) => "already_exists",
            Err(StoreError::Transient { .. }) => "transient",
            Err(StoreError::Fatal { .. }) => "fatal",
        };
        self.requests.record(op, started, result);
    }

    /// Successful PUTs so far (for tests and benchmarks).
    pub fn puts(&self) -> u64 {
        self.requests.count("put", "ok")
    }
}

#[derive(Debug)]
pub struct MeteredObjectStore {
    inner: Arc<dyn ObjectStore>,
    metrics: ObjectStoreMetrics,
}

impl MeteredObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: ObjectStoreMetrics) -> MeteredObjectStore {
        MeteredObjectStore { inner, metrics }
    }
}

#[async_trait]
impl ObjectStore for MeteredObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let started = Instant::now();
        let len = data.len() as u64;
        let r = self.inner.put(key, data, mode).await;
        if r.is_ok() {
            self.metrics.bytes_written.inc_by(len);
        }
        self.metrics.record("put", started, &r);
        r
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let started = Instant::now();
        let r = self.inner.get(key).await;
        if let Ok(b) = &r {
            self.metrics.bytes_read.inc_by(b.len() as u64);
        }
        self.metrics.record("get", started, &r);
        r
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let started = Instant::now();
        let r = self.inner.get_range(key, range).await;
        if let Ok(b) = &r {
            self.metrics.bytes_read.inc_by(b.len() as u64);
        }
        self.metrics.record("get", started, &r);
        r
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let started = Instant::now();
        let r = self.inner.head(key).await;
        self.metrics.record("head", started, &r);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let started = Instant::now();
        let r = self.inner.list(prefix).await;
        self.metrics.record("list", started, &r);
        r
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.delete(key).await;
        self.metrics.record("delete", started, &r);
        r
    }
}
