//! DescribeTransactions: the state of transactional ids this broker coordinates.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId,
};
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::TxnRecord;

use super::{str_bytes, topic_name};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut out = TransactionState::default();
        let resource = Resource::new(ResourceType::TransactionalId, id.as_str());
        let found = if !ctx.authorized(&session, Operation::Describe, &resource) {
            Err(RequestError::TransactionalIdAuthorizationFailed)
        } else {
            match ctx.txns.describe(id.as_str()).await {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(RequestError::TransactionalIdNotFound(id.to_string())),
                Err(e) => Err(e.into()),
            }
        };
        match found {
            Ok(r) => fill(&mut out, &r),
            Err(e) => {
                out.error_code = e.code();
                out.producer_id = ProducerId(-1);
                out.producer_epoch = -1;
            }
        }
        out.transactional_id = id;
        resp.transaction_states.push(out);
    }
    resp
}

fn fill(out: &mut TransactionState, r: &TxnRecord) {
    out.transaction_state = str_bytes(r.state.name());
    out.transaction_timeout_ms = r.timeout_ms;
    out.transaction_start_time_ms = if r.state == kafscale_core::txn::TxnState::Empty {
        -1
    } else {
        r.started_ms
    };
    out.producer_id = ProducerId(r.producer_id);
    out.producer_epoch = r.epoch;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in &r.partitions {
        topics.entry(&p.topic).or_default().push(p.partition);
    }
    for (name, partitions) in topics {
        let mut t = TopicData::default();
        t.topic = topic_name(name);
        t.partitions = partitions;
        out.topics.push(t);
    }
}
