//! AddPartitionsToTxn: v0-3, one transaction from its producer; v4-5 (KIP-890), several
//! transactions from a broker, each either added or, with `verify_only`, checked to hold
//! the partitions already. If any partition of a transaction is refused (authorization, an
//! unknown topic) the others are not attempted, as Kafka answers.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use std::sync::Arc;

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::{ProducerIdentity, TxnPartition};

use super::topic_name;
use crate::context::Context;
use crate::errors::{RequestError, NO_ERROR};
use crate::server::session::Session;

/// PRODUCER_FENCED from v2 (KIP-588).
const FENCED_SINCE: i16 = 2;

/// One transaction of the request.
struct Transaction<'a> {
    id: &'a str,
    producer: ProducerIdentity,
    topics: &'a [AddPartitionsToTxnTopic],
    verify_only: bool,
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    if version < 4 {
        let txn = Transaction {
            id: req.v3_and_below_transactional_id.as_str(),
            producer: ProducerIdentity {
                producer_id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
            },
            topics: &req.v3_and_below_topics,
            verify_only: false,
        };
        resp.results_by_topic_v3_and_below = add(&ctx, &session, version, txn).await;
        return resp;
    }
    // Brokers verifying or adding for their producers (KIP-890).
    if !ctx.cluster_authorized(&session, Operation::ClusterAction) {
        resp.error_code = RequestError::ClusterAuthorizationFailed.code();
        return resp;
    }
    for t in &req.transactions {
        let txn = Transaction {
            id: t.transactional_id.as_str(),
            producer: ProducerIdentity {
                producer_id: t.producer_id.0,
                epoch: t.producer_epoch,
            },
            topics: &t.topics,
            verify_only: t.verify_only,
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = t.transactional_id.clone();
        result.topic_results = add(&ctx, &session, version, txn).await;
        resp.results_by_transaction.push(result);
    }
    resp
}

/// A topic's partitions, each with the refusal found before asking the coordinator.
type TopicRefusals = (String, Vec<(i32, Option<RequestError>)>);

async fn add(
    ctx: &Context,
    session: &Session,
    version: i16,
    txn: Transaction<'_>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    // Per topic, per partition: the refusal found before asking the coordinator.
    let mut refused: Vec<TopicRefusals> = Vec::new();
    let mut partitions = Vec::new();
    let txn_resource = Resource::new(ResourceType::TransactionalId, txn.id);
    let txn_ok = ctx.authorized(session, Operation::Write, &txn_resource);
    for t in txn.topics {
        let name = t.name.0.to_string();
        let topic_ok = ctx.topic_authorized(session, Operation::Write, &name);
        let record = ctx.log.topic(&name);
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                let e = if !txn_ok {
                    Some(RequestError::TransactionalIdAuthorizationFailed)
                } else if !topic_ok {
                    Some(RequestError::TopicAuthorizationFailed)
                } else if !record
                    .as_ref()
                    .is_some_and(|r| *p >= 0 && *p < r.partitions)
                {
                    Some(RequestError::UnknownTopicOrPartition)
                } else {
                    partitions.push(TxnPartition {
                        topic: name.clone(),
                        partition: *p,
                    });
                    None
                };
                (*p, e)
            })
            .collect();
        refused.push((name, parts));
    }
    let any_refused = refused
        .iter()
        .any(|(_, ps)| ps.iter().any(|(_, e)| e.is_some()));
    let outcome: Result<Vec<Option<RequestError>>, RequestError> = if any_refused {
        Err(RequestError::OperationNotAttempted)
    } else if txn.verify_only {
        let mut found = Vec::with_capacity(partitions.len());
        let mut failed = None;
        for p in &partitions {
            match ctx.txns.verify(txn.id, txn.producer, p).await {
                Ok(true) => found.push(None),
                Ok(false) => found.push(Some(RequestError::PartitionNotInTransaction)),
                Err(e) => {
                    failed = Some(RequestError::from(e));
                    break;
                }
            }
        }
        failed.map_or(Ok(found), Err)
    } else {
        ctx.txns
            .add(txn.id, txn.producer, &partitions, &[])
            .await
            .map(|()| Vec::new())
            .map_err(RequestError::from)
    };
    if let Err(e) = &outcome {
        tracing::debug!(transactional_id = txn.id, error = %e, "AddPartitionsToTxn refused");
    }
    let mut verified = outcome.as_ref().ok().map(|v| v.iter());
    refused
        .into_iter()
        .map(|(name, parts)| {
            let mut topic = AddPartitionsToTxnTopicResult::default();
            topic.name = topic_name(&name);
            for (partition, refusal) in parts {
                let code = match (&refusal, &outcome) {
                    (Some(e), _) => e.code(),
                    (None, Err(e)) => e.txn_code(version, FENCED_SINCE),
                    (None, Ok(_)) => verified
                        .as_mut()
                        .and_then(Iterator::next)
                        .and_then(Option::as_ref)
                        .map_or(NO_ERROR, RequestError::code),
                };
                let mut r = AddPartitionsToTxnPartitionResult::default();
                r.partition_index = partition;
                r.partition_error_code = code;
                topic.results_by_partition.push(r);
            }
            topic
        })
        .collect()
}
