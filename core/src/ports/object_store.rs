//! Object storage port.
//!
//! # Contract
//! Every adapter must honour:
//! - `put` with [`PutMode::Create`] is atomic create-if-absent: of two concurrent creates of one
//!   key exactly one succeeds, the other gets [`StoreError::AlreadyExists`].
//! - After a successful `put`, `get`, `head` and `list` see the object (read-after-write).
//! - A successful `put` is durable: it survives a crash of the process (and, for the local
//!   directory adapter, of the machine).
//! - `get_range` returns exactly the requested bytes, or [`StoreError::NotFound`] if the key is
//!   absent; a range past the end of the object is an error, never a short read.
//! - `list` returns every key under the prefix, sorted, however many there are, with the size
//!   stored (for a store that transforms contents, such as the encrypting one, the size it
//!   stored, which `head` translates and `list` does not).
//! - `delete` of an absent key succeeds.
//! - Errors are classified: `NotFound`, `AlreadyExists`, `Transient` (retry may succeed) and
//!   `Fatal` (configuration or permission problems a retry cannot fix).

use async_trait::async_trait;
use bytes::Bytes;
use std::fmt::Debug;
use std::ops::Range;

/// How a put treats an existing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    /// Fail with [`StoreError::AlreadyExists`] if the key exists.
    Create,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object not found: {key}")]
    NotFound { key: String },
    #[error("object already exists: {key}")]
    AlreadyExists { key: String },
    #[error("object store unavailable: {message}")]
    Transient { message: String },
    #[error("object store error: {message}")]
    Fatal { message: String },
}

impl StoreError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync + Debug + 'static {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}
