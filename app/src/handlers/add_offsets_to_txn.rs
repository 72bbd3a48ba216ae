//! AddOffsetsToTxn: the transaction will commit offsets of this consumer group
//! (TxnOffsetCommit to the group's coordinator follows); its end settles them.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
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
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut resp = AddOffsetsToTxnResponse::default();
    let id = req.transactional_id.as_str();
    let group = req.group_id.as_str();
    let resource = Resource::new(ResourceType::TransactionalId, id);
    let outcome = if !ctx.authorized(&session, Operation::Write, &resource) {
        Err(RequestError::TransactionalIdAuthorizationFailed)
    } else if !ctx.group_authorized(&session, Operation::Read, group) {
        Err(RequestError::GroupAuthorizationFailed)
    } else if group.is_empty() {
        Err(RequestError::Invalid("empty group id".into()))
    } else {
        let producer = ProducerIdentity {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        ctx.txns
            .add(id, producer, &[], &[group.to_owned()])
            .await
            .map_err(RequestError::from)
    };
    if let Err(e) = outcome {
        tracing::debug!(transactional_id = id, error = %e, "AddOffsetsToTxn refused");
        resp.error_code = e.txn_code(version, FENCED_SINCE);
    }
    resp
}
