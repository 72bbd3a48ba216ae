//! A wrapper that counts and times every metadata-store request, for `/metrics`:
//! `kafscale_metadata_requests_total{op,result}`, the latency histogram
//! `kafscale_metadata_request_duration_seconds{op}`, and the puts and deletes of committed
//! transactions, `kafscale_metadata_txn_ops_total`, and the key and value bytes their puts
//! wrote, `kafscale_metadata_written_bytes_total` (what the metadata budget counts).
//!
//! A transaction whose compares failed is not an error of the store but it is what a fenced
//! broker sees, so it has its own result, `compare_failed`.

use async_trait::async_trait;
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, StoreStatus, Txn, TxnOp,
    TxnOutcome, WatchStream,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::request_metrics::RequestMetrics;

/// Metadata-store metrics, registered once and shared by the wrapper.
#[derive(Clone, Debug)]
pub struct MetadataMetrics {
    requests: RequestMetrics,
    txn_ops: Counter,
    written_bytes: Counter,
}

impl MetadataMetrics {
    pub fn register(registry: &mut Registry) -> MetadataMetrics {
        let sub = registry.sub_registry_with_prefix("kafscale_metadata");
        let m = MetadataMetrics {
            // 0.1 ms .. ~6.5 s: the embedded store answers in microseconds, etcd in
            // milliseconds (one fsync per commit).
            requests: RequestMetrics::register(sub, "Metadata store", || {
                Histogram::new(exponential_buckets(0.0001, 2.0, 17))
            }),
            txn_ops: Counter::default(),
            written_bytes: Counter::default(),
        };
        sub.register(
            "txn_ops",
            "Puts and deletes applied by successful metadata transactions",
            m.txn_ops.clone(),
        );
        sub.register(
            "written_bytes",
            "Key and value bytes of the puts applied by successful metadata transactions",
            m.written_bytes.clone(),
        );
        m
    }

    fn record(&self, op: &'static str, started: Instant, result: &'static str) {
        self.requests.record(op, started, result);
    }

    fn record_result<T>(
        &self,
        op: &'static str,
        started: Instant,
        result: &Result<T, MetadataError>,
    ) {
        self.record(op, started, result_label(result));
    }

    /// Transactions so far, whatever their outcome (for tests and benchmarks).
    pub fn transactions(&self) -> u64 {
        ["ok", "compare_failed"]
            .into_iter()
            .map(|result| self.requests.count("txn", result))
            .sum()
    }
}

fn result_label<T>(result: &Result<T, MetadataError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(MetadataError::Unavailable { .. }) => "unavailable",
        Err(MetadataError::NoSpace { .. }) => "no_space",
        Err(MetadataError::LeaseNotFound(_)) => "lease_not_found",
        Err(MetadataError::InvalidRequest { .. }) => "invalid_request",
        Err(MetadataError::Corrupt { .. }) => "corrupt",
        Err(MetadataError::Fatal { .. }) => "fatal",
    }
}

#[derive(Debug)]
pub struct MeteredMetadataStore {
    inner: Arc<dyn MetadataStore>,
    metrics: MetadataMetrics,
}

impl MeteredMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>, metrics: MetadataMetrics) -> MeteredMetadataStore {
        MeteredMetadataStore { inner, metrics }
    }
}

#[async_trait]
impl MetadataStore for MeteredMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        let started = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.record_result("get", started, &r);
        r
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        let started = Instant::now();
        let r = self.inner.range(prefix).await;
        self.metrics.record_result("range", started, &r);
        r
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        let started = Instant::now();
        let r = self.inner.range_from(prefix, start).await;
        self.metrics.record_result("range", started, &r);
        r
    }

    async fn compact(&self, revision: i64) -> Result<(), MetadataError> {
        let started = Instant::now();
        let r = self.inner.compact(revision).await;
        self.metrics.record_result("compact", started, &r);
        r
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        let started = Instant::now();
        let r = self.inner.status().await;
        self.metrics.record_result("status", started, &r);
        r
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        let started = Instant::now();
        let ops = txn.ops.len() as u64;
        let written: usize = txn
            .ops
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, value, .. } => key.len() + value.len(),
                _ => 0,
            })
            .sum();
        let r = self.inner.txn(txn).await;
        match &r {
            Ok(outcome) if outcome.succeeded => {
                self.metrics.txn_ops.inc_by(ops);
                self.metrics.written_bytes.inc_by(written as u64);
                self.metrics.record("txn", started, "ok");
            }
            Ok(_) => self.metrics.record("txn", started, "compare_failed"),
            Err(_) => self.metrics.record_result("txn", started, &r),
        }
        r
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        let started = Instant::now();
        let r = self.inner.grant_lease(ttl).await;
        self.metrics.record_result("grant_lease", started, &r);
        r
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let started = Instant::now();
        let r = self.inner.keep_alive(lease).await;
        self.metrics.record_result("keep_alive", started, &r);
        r
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let started = Instant::now();
        let r = self.inner.revoke_lease(lease).await;
        self.metrics.record_result("revoke_lease", started, &r);
        r
    }

    /// Counts the opening of a watch; its events are not requests.
    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        let started = Instant::now();
        let r = self.inner.watch(prefix).await;
        self.metrics.record_result("watch", started, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metadata::MemoryMetadataStore;
    use bytes::Bytes;
    use kafscale_core::ports::{Compare, MetadataStoreExt, TxnOp};

    #[tokio::test]
    async fn counts_transactions_by_outcome() {
        let mut registry = Registry::default();
        let metrics = MetadataMetrics::register(&mut registry);
        let store =
            MeteredMetadataStore::new(Arc::new(MemoryMetadataStore::new()), metrics.clone());
        store.put("a", Bytes::from_static(b"1")).await.unwrap();
        let fenced = Txn::new()
            .when(Compare::ModRevision {
                key: "a".into(),
                revision: 0,
            })
            .then(TxnOp::Delete { key: "a".into() });
        assert!(!store.txn(fenced).await.unwrap().succeeded);
        assert!(store.get("a").await.unwrap().is_some());
        assert_eq!(metrics.transactions(), 2);
        assert_eq!(metrics.txn_ops.get(), 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text
            .contains(r#"kafscale_metadata_requests_total{op="txn",result="compare_failed"} 1"#));
        assert!(text.contains(r#"kafscale_metadata_requests_total{op="get",result="ok"} 1"#));
    }
}
