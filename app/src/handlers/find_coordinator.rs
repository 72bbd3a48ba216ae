//! FindCoordinator: single key (v0-3, answer at the top level) and batched keys (v4+, one
//! answer per key). This broker coordinates every group of the shards it owns.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

use kafscale_core::group::GroupId;

use super::str_bytes;
use crate::context::Context;
use crate::errors::{codes, group_code};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// (error code, message) or this broker.
fn lookup(ctx: &Context, key_type: i8, key: &StrBytes) -> Result<(), (i16, String)> {
    match key_type {
        KEY_TYPE_GROUP => {
            if key.is_empty() {
                return Err((codes::INVALID_REQUEST, "empty group id".into()));
            }
            ctx.groups
                .check_coordinator(&GroupId(key.to_string()))
                .map_err(|e| (group_code(&e), e.to_string()))
        }
        KEY_TYPE_TRANSACTION => Err((
            codes::COORDINATOR_NOT_AVAILABLE,
            "transactions are not supported".into(),
        )),
        other => Err((
            codes::INVALID_REQUEST,
            format!("unsupported key type {other}"),
        )),
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node = BrokerId(ctx.log.broker_id().0);
    let host = str_bytes(ctx.advertised.0.clone());
    let port = i32::from(ctx.advertised.1);
    let mut resp = FindCoordinatorResponse::default();
    if version < 4 {
        match lookup(&ctx, req.key_type, &req.key) {
            Ok(()) => {
                resp.node_id = node;
                resp.host = host;
                resp.port = port;
            }
            Err((code, message)) => {
                resp.error_code = code;
                resp.node_id = BrokerId(-1);
                resp.port = -1;
                if version >= 1 {
                    resp.error_message = Some(str_bytes(message));
                }
            }
        }
        return resp;
    }
    for key in req.coordinator_keys {
        let mut c = Coordinator::default();
        match lookup(&ctx, req.key_type, &key) {
            Ok(()) => {
                c.node_id = node;
                c.host = host.clone();
                c.port = port;
            }
            Err((code, message)) => {
                c.error_code = code;
                c.error_message = Some(str_bytes(message));
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
        }
        c.key = key;
        resp.coordinators.push(c);
    }
    resp
}
