//! Writes the markers of a transaction the coordinator ends: a commit or abort control
//! batch into each of its partitions, appended through the leader's normal flush and
//! commit, and the settlement of the offsets it staged in each of its groups.
//!
//! Partitions and groups this broker leads are written here. One another broker leads
//! fails the attempt (the transaction stays prepared and the coordinator retries) until
//! the markers travel to remote leaders (WriteTxnMarkers between brokers).

use async_trait::async_trait;
use std::sync::Arc;

use kafscale_core::batch;
use kafscale_core::group::{GroupCoordinator, GroupId};
use kafscale_core::log::{AppendRequest, LogService};
use kafscale_core::txn::{MarkerWriter, Markers, TxnError, TxnResult};
use kafscale_core::{PartitionId, PartitionKey};

pub struct LocalMarkers {
    pub log: LogService,
    pub groups: Arc<GroupCoordinator>,
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> TxnError {
    TxnError::Markers(Box::new(e))
}

#[async_trait]
impl MarkerWriter for LocalMarkers {
    async fn write_markers(&self, m: &Markers) -> TxnResult<()> {
        let mut tickets = Vec::with_capacity(m.partitions.len());
        for p in &m.partitions {
            let Some(topic) = self.log.topic(&p.topic) else {
                // Deleted since: nothing left to mark.
                continue;
            };
            let marker = batch::build_marker(
                m.producer_id,
                m.epoch,
                m.commit,
                m.coordinator_epoch,
                self.log.now_ms(),
            );
            let ticket = self
                .log
                .append(AppendRequest {
                    partition: PartitionKey {
                        topic: topic.id,
                        partition: PartitionId(p.partition),
                    },
                    batch: marker,
                    wait: true,
                })
                .map_err(failed)?;
            tickets.extend(ticket);
        }
        for ticket in tickets {
            ticket.await.map_err(failed)?.map_err(failed)?;
        }
        for g in &m.groups {
            self.groups
                .complete_txn_offsets(&GroupId(g.clone()), m.producer_id, m.commit)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}
