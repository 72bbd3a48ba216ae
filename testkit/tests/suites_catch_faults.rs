//! The suites are only worth something if they fail on broken adapters: run them against
//! adapters with a deliberate fault and check that the right clause reports it.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore};
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, ObjectMeta, ObjectStore, PutMode, RangeResult,
    StoreError, StoreStatus, Txn, TxnOutcome, WatchStream,
};
use kafscale_testkit::conformance::{
    metadata_suite_with, object_store_suite_with, MetadataSuiteOptions, ObjectStoreSuiteOptions,
};
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Runs `suite` and returns its panic message (it must panic).
async fn failure_of(suite: impl Future<Output = ()> + Send + 'static) -> String {
    let error = tokio::spawn(suite)
        .await
        .expect_err("the suite passed a faulty adapter");
    let panic = error.into_panic();
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(_) => panic!("unexpected panic payload"),
    }
}

/// Clamps ranges past the end, as `object_store` itself does, and lists in reverse order.
#[derive(Debug)]
struct ShortReads(MemoryObjectStore);

#[async_trait]
impl ObjectStore for ShortReads {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.0.put(key, data, mode).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.0.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let all = self.0.get(key).await?;
        let end = (range.end as usize).min(all.len());
        Ok(all.slice((range.start as usize).min(end)..end))
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut list = self.0.list(prefix).await?;
        list.reverse();
        Ok(list)
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_suite_catches_short_reads_and_unsorted_lists() {
    let store = Arc::new(ShortReads(MemoryObjectStore::new()));
    let options = ObjectStoreSuiteOptions {
        list_keys: 20,
        ..Default::default()
    };
    let message = failure_of(object_store_suite_with(store, options)).await;
    assert!(
        message.contains("get_range_past_end_is_an_error"),
        "{message}"
    );
    assert!(message.contains("list_is_sorted_and_complete"), "{message}");
    assert!(!message.contains("read_after_write"), "{message}");
}

/// Ignores compares: every transaction applies.
#[derive(Debug)]
struct NoCompares(MemoryMetadataStore);

#[async_trait]
impl MetadataStore for NoCompares {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.0.get(key).await
    }
    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.0.range(prefix).await
    }
    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        self.0.range_from(prefix, start).await
    }

    async fn compact(&self, revision: i64) -> Result<(), MetadataError> {
        self.0.compact(revision).await
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        self.0.status().await
    }

    async fn txn(&self, mut txn: Txn) -> Result<TxnOutcome, MetadataError> {
        txn.compares.clear();
        self.0.txn(txn).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        self.0.grant_lease(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.0.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.0.revoke_lease(lease).await
    }
    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        self.0.watch(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_suite_catches_ignored_compares() {
    let store = Arc::new(NoCompares(MemoryMetadataStore::new()));
    let options = MetadataSuiteOptions {
        lease_ttl: Duration::from_millis(300),
        ..Default::default()
    };
    let message = failure_of(metadata_suite_with(store, options)).await;
    for clause in [
        "compare_on_value",
        "compare_on_mod_revision",
        "failed_compare_applies_nothing",
        "concurrent_creates_exactly_one_wins",
        // Not `concurrent_cas_increments_lose_no_update`: whether updates are lost without
        // compares depends on how the tasks interleave.
    ] {
        assert!(
            message.contains(clause),
            "{clause} not reported in: {message}"
        );
    }
    assert!(
        !message.contains("leases_expire_and_delete_their_keys"),
        "{message}"
    );
}
