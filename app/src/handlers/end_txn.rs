//! EndTxn: commits or aborts the producer's transaction. The coordinator makes the outcome
//! durable (PrepareCommit / PrepareAbort), has each partition's leader write the marker and
//! each group settle the staged offsets, then completes the transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use std::sync::Arc;

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::ProducerIdentity;

use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;

/// PRODUCER_FENCED from v2 (KIP-588).
const FENCED_SINCE: i16 = 2;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    resp.producer_id = req.producer_id;
    resp.producer_epoch = req.producer_epoch;
    let id = req.transactional_id.as_str();
    let resource = Resource::new(ResourceType::TransactionalId, id);
    let outcome = if ctx.authorized(&session, Operation::Write, &resource) {
        let producer = ProducerIdentity {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        ctx.txns
            .end(id, producer, req.committed)
            .await
            .map_err(RequestError::from)
    } else {
        Err(RequestError::TransactionalIdAuthorizationFailed)
    };
    if let Err(e) = outcome {
        tracing::debug!(transactional_id = id, error = %e, "EndTxn refused");
        resp.error_code = e.txn_code(version, FENCED_SINCE);
    }
    resp
}
