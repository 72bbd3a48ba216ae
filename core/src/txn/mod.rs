//! Transactions: the transaction coordinator of transactional producers.
//!
//! A transactional id belongs to one of the group coordinator shards (the same hash of the
//! id), so it is placed, handed over and fenced exactly like consumer groups: the broker
//! owning the shard coordinates the id, and every write of its state compares the shard
//! record's revision. Its state is one record in the metadata store
//! (`kafscale/txns/<shard>/<id>`, see [`crate::schema`]), written by one small
//! transaction per change of state, and only when something changed.
//!
//! A transaction moves Empty -> Ongoing (AddPartitionsToTxn, AddOffsetsToTxn) ->
//! PrepareCommit or PrepareAbort (EndTxn, a newer producer, a timeout) -> CompleteCommit or
//! CompleteAbort, once a [`MarkerWriter`] has written the commit or abort marker into every
//! partition of the transaction and settled the offsets it staged in its groups. A
//! coordinator that takes a shard over completes the transactions it finds prepared.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kafscale_core::txn::*;
//!
//! async fn example(coordinator: Arc<TxnCoordinator>) {
//!     let producer = coordinator.init_producer("app-1", 60_000, None).await.expect("init");
//!     let partitions = [TxnPartition { topic: "orders".into(), partition: 0 }];
//!     coordinator.add("app-1", producer, &partitions, &[]).await.expect("add");
//!     coordinator.end("app-1", producer, true).await.expect("commit");
//! }
//! ```

mod coordinator;
pub mod state;

pub use coordinator::{MarkerWriter, Markers, ProducerIds, TxnCoordinator, TxnListing, TxnStats};
pub use state::{ProducerIdentity, TxnPartition, TxnRecord, TxnState};

use crate::group::GroupError;
use crate::ports::MetadataError;

/// Settings of the transaction coordinator (Kafka's names in brackets).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// [transaction.max.timeout.ms] The longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// [transaction.abort.timed.out.transaction.cleanup.interval.ms] How often expired
    /// transactions are looked for (and prepared ones left by another coordinator).
    pub cleanup_interval_ms: i64,
}

/// Kafka's defaults, from the settings registry.
impl Default for TxnConfig {
    fn default() -> Self {
        use crate::settings::{TRANSACTION_CLEANUP_INTERVAL_MS, TRANSACTION_MAX_TIMEOUT_MS};
        TxnConfig {
            max_timeout_ms: i32::try_from(TRANSACTION_MAX_TIMEOUT_MS.default_int())
                .unwrap_or(i32::MAX),
            cleanup_interval_ms: TRANSACTION_CLEANUP_INTERVAL_MS.default_int(),
        }
    }
}

/// Why a transactional request failed. Each kind is one Kafka error code, chosen in the app.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("invalid transactional id {0:?}")]
    InvalidTransactionalId(String),
    #[error("transaction timeout {timeout_ms} ms is outside 1..={max_ms} ms (transaction.max.timeout.ms)")]
    InvalidTimeout { timeout_ms: i32, max_ms: i32 },
    /// Another producer has the transactional id now (a newer epoch).
    #[error("producer {producer_id} epoch {epoch} is fenced by a newer producer of the transactional id")]
    ProducerFenced { producer_id: i64, epoch: i16 },
    #[error("the producer id does not belong to the transactional id")]
    InvalidProducerIdMapping,
    /// The previous transaction is still completing; the client retries.
    #[error("the previous transaction is still completing; retry")]
    ConcurrentTransactions,
    #[error("cannot {action} a transaction in state {}", state.name())]
    InvalidTxnState {
        state: TxnState,
        action: &'static str,
    },
    /// Not the coordinator of the id's shard, or still loading it.
    #[error(transparent)]
    Coordinator(#[from] GroupError),
    #[error("cannot allocate a producer id: {0}")]
    ProducerIds(#[source] Box<crate::Error>),
    /// Writing the markers failed; the coordinator completes the transaction later.
    #[error("cannot write the transaction markers: {0}")]
    Markers(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
}

pub type TxnResult<T> = Result<T, TxnError>;

#[cfg(test)]
mod tests;
