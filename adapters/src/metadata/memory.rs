//! In-memory metadata store for tests and `--ephemeral` mode.

use kafscale_core::ports::{KeyValue, LeaseId, MetadataError, RangeResult, StoreStatus, Txn};
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

    fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        let state = self.state();
        Ok(RangeResult {
            kvs: state::range_from(&state.kv, prefix, start)
                .cloned()
                .collect(),
            revision: state.revision,
        })
    }

    fn status(&self) -> Result<StoreStatus, MetadataError> {
        let state = self.state();
        let bytes: usize = state
            .kv
            .values()
            .map(|kv| kv.key.len() + kv.value.len())
            .sum();
        Ok(StoreStatus {
            db_size_bytes: bytes as u64,
            db_in_use_bytes: bytes as u64,
            keys: state.kv.len() as u64,
            revision: state.revision,
            alarms: Vec::new(),
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
