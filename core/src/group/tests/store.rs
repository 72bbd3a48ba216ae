//! A minimal in-memory metadata store for core's unit tests (the real adapters live in
//! kafscale-adapters, which depends on core). Leases and watches are not needed here.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::ports::{
    Compare, KeyValue, LeaseId, MetadataError, MetadataStore, RangeResult, StoreStatus, Txn, TxnOp,
    TxnOutcome, WatchStream,
};

#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<(i64, BTreeMap<String, KeyValue>)>,
    /// When set, every call fails as an unavailable store would.
    pub down: AtomicBool,
}

impl MemStore {
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.1.keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn check(&self) -> Result<(), MetadataError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(MetadataError::Unavailable {
                message: "down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.check()?;
        Ok(self.state.lock().unwrap().1.get(key).cloned())
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetadataError> {
        self.check()?;
        let s = self.state.lock().unwrap();
        Ok(RangeResult {
            kvs: s
                .1
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect(),
            revision: s.0,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetadataError> {
        self.check()?;
        let mut s = self.state.lock().unwrap();
        let holds = txn.compares.iter().all(|c| match c {
            Compare::Value { key, value } => s.1.get(key).map(|kv| &kv.value) == value.as_ref(),
            Compare::ModRevision { key, revision } => {
                s.1.get(key).map_or(0, |kv| kv.mod_revision) == *revision
            }
        });
        if !holds {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: s.0,
            });
        }
        if txn.ops.is_empty() {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: s.0,
            });
        }
        s.0 += 1;
        let rev = s.0;
        for op in txn.ops {
            match op {
                TxnOp::Put { key, value, lease } => {
                    let create = s.1.get(&key).map_or(rev, |kv| kv.create_revision);
                    s.1.insert(
                        key.clone(),
                        KeyValue {
                            key,
                            value,
                            create_revision: create,
                            mod_revision: rev,
                            lease,
                        },
                    );
                }
                TxnOp::Delete { key } => {
                    s.1.remove(&key);
                }
                TxnOp::DeletePrefix { prefix } => s.1.retain(|k, _| !k.starts_with(&prefix)),
                TxnOp::DeleteRange { start, end } => s.1.retain(|k, _| *k < start || *k >= end),
            }
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision: rev,
        })
    }

    async fn range_from(&self, prefix: &str, start: &str) -> Result<RangeResult, MetadataError> {
        let mut all = self.range(prefix).await?;
        all.kvs.retain(|kv| kv.key.as_str() >= start);
        Ok(all)
    }

    async fn compact(&self, _revision: i64) -> Result<(), MetadataError> {
        Ok(())
    }

    async fn status(&self) -> Result<StoreStatus, MetadataError> {
        let s = self.state.lock().unwrap();
        Ok(StoreStatus {
            keys: s.1.len() as u64,
            revision: s.0,
            ..StoreStatus::default()
        })
    }

    async fn grant_lease(&self, _ttl: Duration) -> Result<LeaseId, MetadataError> {
        Err(MetadataError::Fatal {
            message: "no leases in the test store".into(),
        })
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        Err(MetadataError::LeaseNotFound(lease))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        Err(MetadataError::LeaseNotFound(lease))
    }

    async fn watch(&self, _prefix: &str) -> Result<WatchStream, MetadataError> {
        Err(MetadataError::Fatal {
            message: "no watches in the test store".into(),
        })
    }
}
