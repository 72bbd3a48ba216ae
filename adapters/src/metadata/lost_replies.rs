//! A testing wrapper of the metadata port that loses replies: every `every`-th transaction
//! that records data (puts a chunk key: flush commits) is applied and then reported as failed (as when etcd commits but the connection drops
//! before the answer), and the next few requests fail without applying, so that the caller's
//! retries run out and its client sees an unknown outcome. Enabled only by the
//! `testing.metadata.lost.reply.every` setting, for end-to-end tests of what clients do
//! with such outcomes (idempotent producers must not duplicate).

use async_trait::async_trait;
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, StoreStatus, Txn, TxnOp,
    TxnOutcome, WatchStream,
};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests that fail after a lost reply: more than the log's commit attempts.
const OUTAGE_REQUESTS: u32 = 4;

/// Keys whose writes mark a transaction that records data (the log's chunk records).
const DATA_KEYS: &str = "kafscale/chunks/";

#[derive(Debug)]
pub struct LostRepliesMetadataStore {
    inner: Arc<dyn MetadataStore>,
    every: u64,
    txns: AtomicU64,
    outage: AtomicU32,
    /// Replies lost so far.
    pub lost: AtomicU64,
}

impl LostRepliesMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>, every: u64) -> LostRepliesMetadataStore {
        LostRepliesMetadataStore {
            inner,
            every: every.max(1),
            txns: AtomicU64::new(0),
            outage: AtomicU32::new(0),
            lost: AtomicU64::new(0),
        }
    }

    fn in_outage(&self) -> Result<(), MetadataError> {
        let left = self.outage.load(Ordering::SeqCst);
        if left > 0
            && self
                .outage
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
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
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.inner.range(prefix).await
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
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
            self.outage.store(OUTAGE_REQUESTS, Ordering::SeqCst);
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
