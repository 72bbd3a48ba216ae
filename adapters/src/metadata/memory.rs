//! In-memory metadata store for tests and `--ephemeral` mode.

use kafscale_core::ports::{KeyValue, LeaseId, MetadataError, RangeResult, Txn};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

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

super::engine::forward_to_engine!(MemoryMetadataStore);
