//! ListTransactions v0-2: the transactional ids this broker coordinates, filtered by state,
//! producer id, how long they have been running (v1) and a pattern on the id (v2, a
//! regular expression as Kafka takes it).

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};
use std::sync::Arc;

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::txn::TxnState;

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for s in &req.state_filters {
        match STATES.iter().find(|st| st.name() == s.as_str()) {
            Some(st) => states.push(*st),
            None => resp.unknown_state_filters.push(s.clone()),
        }
    }
    if !req.state_filters.is_empty() && states.is_empty() {
        return resp;
    }
    let pattern = match req
        .transactional_id_pattern
        .as_ref()
        .filter(|_| version >= 2)
    {
        Some(p) if !p.is_empty() => match regex::Regex::new(&format!("^(?:{})$", p.as_str())) {
            Ok(re) => Some(re),
            Err(e) => {
                resp.error_code = RequestError::Invalid(format!("bad pattern: {e}")).code();
                return resp;
            }
        },
        _ => None,
    };
    let now = ctx.log.now_ms();
    for t in ctx.txns.list().await {
        let r = &t.record;
        if !states.is_empty() && !states.contains(&r.state) {
            continue;
        }
        if !req.producer_id_filters.is_empty()
            && !req.producer_id_filters.contains(&ProducerId(r.producer_id))
        {
            continue;
        }
        // v1: only transactions running longer than this (Ongoing and beyond).
        if version >= 1
            && req.duration_filter >= 0
            && (r.state == TxnState::Empty || now - r.started_ms < req.duration_filter)
        {
            continue;
        }
        if pattern
            .as_ref()
            .is_some_and(|re| !re.is_match(&t.transactional_id))
        {
            continue;
        }
        let resource = Resource::new(ResourceType::TransactionalId, &t.transactional_id);
        if !ctx.allows(&session, Operation::Describe, &resource) {
            continue;
        }
        let mut out = TransactionState::default();
        out.transactional_id =
            kafka_protocol::messages::TransactionalId(str_bytes(t.transactional_id.clone()));
        out.producer_id = ProducerId(r.producer_id);
        out.transaction_state = str_bytes(r.state.name());
        resp.transaction_states.push(out);
    }
    resp
}
