//! A testing wrapper of the metadata port that loses replies: every `every`-th transaction
//! that records data (puts a flush record) is applied and then reported as failed (as when
//! etcd commits but the connection drops before the answer), and for the next
//! [`OUTAGE`] every read and transaction fails without applying (the store unreachable for a
//! while). The broker cannot tell whether the flush committed until the outage ends, so its
//! producers time out and retry batches that did commit. The `kafscale-faulty` test broker
//! (src/bin/faulty_broker.rs) wraps its metadata store in it, for end-to-end tests of what
//! real clients do with such outcomes (idempotent producers must not duplicate).

use async_trait::async_trait;
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, StoreStatus, Txn, TxnOp,
    TxnOutcome, WatchStream,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the store stays unreachable after a lost reply: longer than the request timeout
/// the tests give their producers.
const OUTAGE: Duration = Duration::from_millis(1200);

/// Keys whose writes mark a transaction that records data (the log's chunk records).
const DATA_KEYS: &str = "kafscale/flushes/";

#[derive(Debug)]
pub struct LostRepliesMetadataStore {
    inner: Arc<dyn MetadataStore>,
    every: u64,
    txns: AtomicU64,
    outage_until: Mutex<Option<Instant>>,
    /// Replies lost so far.
    pub lost: AtomicU64,
}

impl LostRepliesMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>, every: u64) -> LostRepliesMetadataStore {
        LostRepliesMetadataStore {
            inner,
            every: every.max(1),
            txns: AtomicU64::new(0),
            outage_until: Mutex::new(None),
            lost: AtomicU64::new(0),
        }
    }

    fn in_outage(&self) -> Result<(), MetadataError> {
        let until = *self.outage_until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_some_and(|t| Instant::now() < t) {
            return Err(MetadataError::Unavailable {
                message: "injected: metadata store unreachable after a lost reply".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for LostRepliesMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.in_outage()?;
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.in_outage()?;
        self.inner.range(prefix).await
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        self.in_outage()?;
        self.inner.range_from(prefix, start).await
    }

    async fn compact(&self, revision: i64) -> Result<(), MetadataError> {
        self.inner.compact(revision).await
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        self.inner.status().await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        self.in_outage()?;
        let records_data = txn
            .ops
            .iter()
            .any(|op| matches!(op, TxnOp::Put { key, .. } if key.starts_with(DATA_KEYS)));
        let n = if records_data {
            self.txns.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        let outcome = self.inner.txn(txn).await?;
        if records_data && n.is_multiple_of(self.every) && outcome.succeeded {
            self.lost.fetch_add(1, Ordering::SeqCst);
            *self.outage_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + OUTAGE);
            tracing::warn!(
                revision = outcome.revision,
                "injected: a committed transaction's reply is lost"
            );
            return Err(MetadataError::Unavailable {
                message: "injected: reply lost after the transaction applied".into(),
            });
        }
        Ok(outcome)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.inner.revoke_lease(lease).await
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        self.inner.watch(prefix).await
    }
}
