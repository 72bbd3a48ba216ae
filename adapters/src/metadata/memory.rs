//! In-memory metadata store for tests and `--ephemeral` mode.

use async_trait::async_trait;
use kafscale_core::ports::{
    KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, Txn, TxnOutcome, WatchStream,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::engine::{Backend, Engine};
use super::state::{self, Applied};

#[derive(Debug, Default)]
struct MemState {
    kv: BTreeMap<String, KeyValue>,
    revision: i64,
}

#[derive(Debug, Default)]
pub(crate) struct MemoryBackend {
    state: Mutex<MemState>,
}

impl MemoryBackend {
    fn state(&self) -> MutexGuard<'_, MemState> {
        // `state::apply` checks everything before its first write, so a panic cannot leave
        // the map half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for MemoryBackend {
    const BLOCKING: bool = false;

    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        Ok(self.state().kv.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        let state = self.state();
        Ok(RangeResult {
            kvs: state::range_prefix(&state.kv, prefix).cloned().collect(),
            revision: state.revision,
        })
    }

    fn commit(&self, txn: &Txn, live_leases: &HashSet<LeaseId>) -> Result<Applied, MetadataError> {
        let mut state = self.state();
        let MemState { kv, revision } = &mut *state;
        let applied = state::apply(kv, *revision, txn, live_leases)?;
        *revision = applied.outcome.revision;
        Ok(applied)
    }
}

/// [`MetadataStore`] in memory: revisions, transactions, leases expiring on tokio's clock
/// and watches, with the semantics of the durable stores but nothing persisted.
#[derive(Debug, Clone)]
pub struct MemoryMetadataStore {
    engine: Arc<Engine<MemoryBackend>>,
}

impl MemoryMetadataStore {
    pub fn new() -> MemoryMetadataStore {
        MemoryMetadataStore {
            engine: Engine::new(MemoryBackend::default()),
        }
    }
}

impl Default for MemoryMetadataStore {
    fn default() -> Self {
        MemoryMetadataStore::new()
    }
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.engine.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.engine.range(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        self.engine.txn(txn).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        self.engine.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.engine.keep_alive(lease)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.engine.revoke_lease(lease).await
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, MetadataError> {
        Ok(self.engine.watch(prefix))
    }
}
