//! ACLs in the metadata store, one key per binding, and the copy every broker keeps: read
//! whole at start, then re-read whenever the watch reports a change (ACLs are few; a
//! re-read is simpler than patching and cannot drift). A change made through any broker is
//! enforced by all as soon as their watches deliver it.

use futures::StreamExt;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

use crate::acl::{AclBinding, AclSet};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{Clock, MetadataError, MetadataStore, Txn, TxnOp};
use crate::retry::{Backoff, Retry};
use crate::schema::keys;

/// Waits before watching again after a failure: 200 ms, doubling up to 3.2 s.
const WATCH_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(3_200));

/// Every binding in the store.
pub async fn read_all(store: &dyn MetadataStore) -> Result<Vec<AclBinding>, MetadataError> {
    store
        .range(&keys::acls_prefix())
        .await?
        .kvs
        .iter()
        .map(decode_json)
        .collect()
}

/// Stores bindings (one transaction; a binding that exists already stays as it is).
pub async fn create(
    store: &dyn MetadataStore,
    bindings: &[AclBinding],
) -> Result<(), MetadataError> {
    let mut txn = Txn::new();
    for b in bindings {
        txn = txn.then(TxnOp::Put {
            key: keys::acl(b),
            value: encode_json(b),
            lease: None,
        });
    }
    store.txn(txn).await.map(|_| ())
}

/// Deletes the given bindings (those that exist).
pub async fn delete(
    store: &dyn MetadataStore,
    bindings: &[AclBinding],
) -> Result<(), MetadataError> {
    let mut txn = Txn::new();
    for b in bindings {
        txn = txn.then(TxnOp::Delete { key: keys::acl(b) });
    }
    store.txn(txn).await.map(|_| ())
}

/// A broker's copy of the ACLs.
#[derive(Debug, Default)]
pub struct AclCache {
    current: RwLock<Arc<AclSet>>,
}

impl AclCache {
    pub fn get(&self) -> Arc<AclSet> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, bindings: Vec<AclBinding>) {
        let set = Arc::new(AclSet::new(bindings));
        match self.current.write() {
            Ok(mut c) => *c = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// Reads the ACLs once: a broker that enforces them does not serve before it has them.
    pub async fn load(&self, store: &dyn MetadataStore) -> Result<(), MetadataError> {
        self.set(read_all(store).await?);
        Ok(())
    }

    /// Keeps the copy current until `stop` turns true: watch, then re-read on every change
    /// (and after every failure of the watch, once it is back).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut attempts = Retry::new(&*clock, WATCH_BACKOFF);
        loop {
            let watched = async {
                let mut events = store.watch(&keys::acls_prefix()).await?;
                self.load(store.as_ref()).await?;
                while let Some(event) = events.next().await {
                    event?;
                    self.load(store.as_ref()).await?;
                }
                Ok::<(), MetadataError>(())
            };
            tokio::select! {
                outcome = watched => {
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "ACL watch failed; watching again");
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = attempts.wait() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
