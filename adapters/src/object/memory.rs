//! In-memory object store for tests and `--ephemeral` mode; nothing survives the process.

use async_trait::async_trait;
use bytes::Bytes;
use kafscale_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError};
use object_store::memory::InMemory;
use std::ops::Range;
use std::sync::Arc;

use super::common::Backend;

/// [`ObjectStore`] kept in memory. `InMemory` takes a lock per operation, so
/// `PutMode::Create` is an atomic check-and-insert.
#[derive(Debug, Clone)]
pub struct MemoryObjectStore {
    backend: Backend,
}

impl MemoryObjectStore {
    pub fn new() -> MemoryObjectStore {
        MemoryObjectStore {
            backend: Backend::new(Arc::new(InMemory::new())),
        }
    }
}

impl Default for MemoryObjectStore {
    fn default() -> Self {
        MemoryObjectStore::new()
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StoreError> {
        self.backend.put(key, data, mode).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.backend.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.backend.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.backend.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.backend.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.backend.delete(key).await
    }
}
