//! Metadata store port: a small transactional key-value store with revisions, leases and
//! watches, shaped after etcd's v3 API.
//!
//! # Contract
//! Every adapter must honour:
//! - Keys are UTF-8 strings, values opaque bytes. `range` returns keys in byte order.
//! - Every successful transaction that writes anything advances the store's revision by
//!   exactly one; each written key records that revision as its `mod_revision` and keeps
//!   the revision of its creation as `create_revision`. Revisions never go backwards, also
//!   across restarts of a durable store.
//! - [`MetadataStore::txn`] is atomic and serialisable: either every compare holds and all
//!   operations apply, or none applies and `succeeded` is false.
//! - A returned success is durable for durable adapters (embedded, etcd).
//! - A lease expires when not kept alive within its TTL; its keys are then deleted (and
//!   watchers see the deletes). Keep-alive of an expired lease fails with
//!   [`MetadataError::LeaseNotFound`].
//! - A watch delivers, in revision order, every change under its prefix committed after
//!   `watch` returned. Combine with the revision of a `range` to avoid gaps.
//! - `range_from` returns what `range` returns, minus the keys that sort before `start`.
//! - `compact` discards history older than the revision given (stores without history do
//!   nothing); it never changes a key's current value. `status` reports the store's size
//!   and raised alarms.
//! - Errors: `Unavailable` (retry may succeed; the outcome of a txn may be unknown),
//!   `NoSpace` (the store refuses writes until an operator frees space), `LeaseNotFound`,
//!   `InvalidRequest` (e.g. too many operations), `Fatal`.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::Duration;

/// etcd's default limit of operations per transaction (per branch).
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Revision of the store when the range was read.
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's value equals `value`; `None` means the key must be absent.
    Value { key: String, value: Option<Bytes> },
    /// The key's mod revision equals `revision`; 0 means the key must be absent.
    ModRevision { key: String, revision: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    /// Deletes the keys `k` with `start <= k < end`.
    DeleteRange {
        start: String,
        end: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn when(mut self, compare: Compare) -> Txn {
        self.compares.push(compare);
        self
    }

    pub fn then(mut self, op: TxnOp) -> Txn {
        self.ops.push(op);
        self
    }

    /// Puts `key` only if it does not exist (its mod revision is 0).
    pub fn create(key: String, value: Bytes, lease: Option<LeaseId>) -> Txn {
        Txn::new()
            .when(Compare::ModRevision {
                key: key.clone(),
                revision: 0,
            })
            .then(TxnOp::Put { key, value, lease })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    pub succeeded: bool,
    /// Revision of the store after the transaction.
    pub revision: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// For deletes, `value` is empty and `mod_revision` is the revision of the delete.
    pub kv: KeyValue,
}

pub type WatchStream = BoxStream<'static, Result<WatchEvent, MetadataError>>;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata store unavailable: {message}")]
    Unavailable { message: String },
    #[error("metadata store out of space: {message}")]
    NoSpace { message: String },
    #[error("lease {0:?} not found or expired")]
    LeaseNotFound(LeaseId),
    #[error("invalid metadata request: {message}")]
    InvalidRequest { message: String },
    #[error("corrupt metadata at {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("metadata store error: {message}")]
    Fatal { message: String },
}

impl MetadataError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, MetadataError::Unavailable { .. })
    }
}

/// What a store says of itself: for metrics, and for readiness (an alarm means no writes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// Bytes the store's database takes (etcd's backend; the embedded store's file).
    pub db_size_bytes: u64,
    /// Of these, bytes holding live data (what a defragmentation would leave).
    pub db_in_use_bytes: u64,
    /// Keys under the store's prefix.
    pub keys: u64,
    pub revision: i64,
    /// Raised alarms, as the store names them (etcd: "NOSPACE", "CORRUPT").
    pub alarms: Vec<String>,
}

#[async_trait]
pub trait MetadataStore: Send + Sync + Debug + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError>;
    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError>;
    /// The keys under `prefix` that sort at or after `start`.
    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError>;
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError>;
    /// Discards history older than `revision`, where the store keeps history.
    async fn compact(&self, revision: i64) -> Result<(), MetadataError>;
    async fn status(&self) -> Result<StoreStatus, MetadataError>;
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError>;
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError>;
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError>;
    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError>;
}

/// Conveniences derived from the port, implemented once for every adapter.
#[async_trait]
pub trait MetadataStoreExt: MetadataStore {
    async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, KeyValue)>, MetadataError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(kv) => Ok(Some((decode_json(&kv)?, kv))),
        }
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<TxnOutcome, MetadataError> {
        self.txn(Txn::new().then(TxnOp::Put {
            key: key.to_owned(),
            value,
            lease: None,
        }))
        .await
    }

    /// Writes `value` only if the key's mod revision is still `expected` (0 = absent).
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: i64,
        value: Bytes,
    ) -> Result<TxnOutcome, MetadataError> {
        self.compare_and_replace(key, expected, Some(value)).await
    }

    /// Writes `value`, or deletes the key when it is `None`, only if the key's mod revision
    /// is still `expected` (0 = absent).
    async fn compare_and_replace(
        &self,
        key: &str,
        expected: i64,
        value: Option<Bytes>,
    ) -> Result<TxnOutcome, MetadataError> {
        let op = match value {
            Some(value) => TxnOp::Put {
                key: key.to_owned(),
                value,
                lease: None,
            },
            None => TxnOp::Delete {
                key: key.to_owned(),
            },
        };
        self.txn(
            Txn::new()
                .when(Compare::ModRevision {
                    key: key.to_owned(),
                    revision: expected,
                })
                .then(op),
        )
        .await
    }
}

impl<T: MetadataStore + ?Sized> MetadataStoreExt for T {}

pub fn decode_json<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, MetadataError> {
    serde_json::from_slice(&kv.value).map_err(|e| MetadataError::Corrupt {
        key: kv.key.clone(),
        message: e.to_string(),
    })
}

pub fn encode_json<T: Serialize>(value: &T) -> Bytes {
    // Serialising our own plain structs cannot fail (no maps with non-string keys).
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
