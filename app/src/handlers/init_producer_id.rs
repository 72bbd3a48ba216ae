//! InitProducerId v0-4. Idempotent producers get a new producer id (epoch 0), or, when a
//! producer asks to bump its epoch after an error (v3+, KIP-360), the same id with the next
//! epoch (a new id when the epoch would overflow). With a transactional id the transaction
//! coordinator answers: the id's producer id with its epoch bumped, which fences the older
//! producer of the id and aborts its open transaction.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::ProducerIdentity;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = &req.transactional_id {
        let resource = Resource::new(ResourceType::TransactionalId, id.as_str());
        let outcome = if ctx.authorized(&session, Operation::Write, &resource) {
            let producer =
                (req.producer_id.0 >= 0 && req.producer_epoch >= 0).then_some(ProducerIdentity {
                    producer_id: req.producer_id.0,
                    epoch: req.producer_epoch,
                });
            ctx.txns
                .init_producer(id.as_str(), req.transaction_timeout_ms, producer)
                .await
                .map_err(RequestError::from)
        } else {
            Err(RequestError::TransactionalIdAuthorizationFailed)
        };
        match outcome {
            Ok(p) => {
                resp.producer_id = ProducerId(p.producer_id);
                resp.producer_epoch = p.epoch;
            }
            Err(e) => {
                tracing::debug!(transactional_id = %id.0, error = %e, "InitProducerId refused");
                // PRODUCER_FENCED from v4 (KIP-588).
                resp.error_code = e.txn_code(version, 4);
            }
        }
        return resp;
    }
    // IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    let allowed = ctx.allows(&session, Operation::IdempotentWrite, &Resource::cluster())
        || ctx.log.topics().iter().any(|t| {
            ctx.allows(
                &session,
                Operation::Write,
                &Resource::new(ResourceType::Topic, &t.name),
            )
        });
    if !allowed {
        crate::audit::authorization(
            &ctx,
            &session,
            Operation::IdempotentWrite,
            &Resource::cluster(),
            false,
        );
        resp.error_code = RequestError::ClusterAuthorizationFailed.code();
        return resp;
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return resp;
    }
    match ctx.log.allocate_producer_id().await {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            resp.error_code = RequestError::from(e).code();
        }
    }
    resp
}
