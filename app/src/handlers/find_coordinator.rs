//! FindCoordinator: single key (v0-3, answer at the top level) and batched keys (v4+, one
//! answer per key). The coordinator of a group (key type 0) or a transactional id (key type
//! 1) is the broker owning its shard.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

use kafscale_core::group::{keys, GroupId};

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::{Operation, Resource, ResourceType};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator's (id, host, port), or (error code, message).
fn lookup(
    ctx: &Context,
    session: &Session,
    key_type: i8,
    key: &StrBytes,
) -> Result<(i32, String, u16), RequestError> {
    match key_type {
        KEY_TYPE_GROUP => {
            if key.is_empty() {
                return Err(RequestError::Invalid("empty group id".into()));
            }
            if !ctx.group_authorized(session, Operation::Describe, key.as_str()) {
                return Err(RequestError::GroupAuthorizationFailed);
            }
        }
        KEY_TYPE_TRANSACTION => {
            if key.is_empty() {
                return Err(RequestError::Invalid("empty transactional id".into()));
            }
            let resource = Resource::new(ResourceType::TransactionalId, key.as_str());
            if !ctx.authorized(session, Operation::Describe, &resource) {
                return Err(RequestError::TransactionalIdAuthorizationFailed);
            }
        }
        other => {
            return Err(RequestError::Invalid(format!(
                "unsupported key type {other}"
            )))
        }
    }
    // Transactional ids are placed on the group coordinator shards: the same hash, the
    // same owner, the same fence.
    shard_owner(ctx, session, &GroupId(key.to_string()))
}

fn shard_owner(
    ctx: &Context,
    session: &Session,
    key: &GroupId,
) -> Result<(i32, String, u16), RequestError> {
    let listener = session.listener_name();
    if ctx.groups.check_coordinator(key).is_ok() {
        if let Some((host, port)) = ctx.own_endpoint(listener) {
            return Ok((ctx.log.broker_id().0, host, port));
        }
    }
    match ctx.cluster.shard_owner(keys::shard_of(key).0) {
        Some(b) if b.id != ctx.log.broker_id() => match b.endpoint(listener) {
            Some((host, port)) => Ok((b.id.0, host.to_owned(), port)),
            // The coordinator has no such listener: like Kafka, no coordinator.
            None => Err(RequestError::CoordinatorMoving),
        },
        // Ours but still loading, or not assigned yet.
        _ => Err(RequestError::CoordinatorMoving),
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if version < 4 {
        match lookup(&ctx, &session, req.key_type, &req.key) {
            Ok((node, host, port)) => {
                resp.node_id = BrokerId(node);
                resp.host = str_bytes(host);
                resp.port = i32::from(port);
            }
            Err(e) => {
                resp.error_code = e.code();
                resp.node_id = BrokerId(-1);
                resp.port = -1;
                if version >= 1 {
                    resp.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        return resp;
    }
    for key in req.coordinator_keys {
        let mut c = Coordinator::default();
        match lookup(&ctx, &session, req.key_type, &key) {
            Ok((node, host, port)) => {
                c.node_id = BrokerId(node);
                c.host = str_bytes(host);
                c.port = i32::from(port);
            }
            Err(e) => {
                c.error_code = e.code();
                c.error_message = Some(str_bytes(e.to_string()));
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
        }
        c.key = key;
        resp.coordinators.push(c);
    }
    resp
}
