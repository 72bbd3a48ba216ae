//! Heartbeat v0-4: keeps a member's session and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::sync::Arc;

use kafscale_core::group::{self, GenerationId};

use super::group_common::{group_id, instance_since, member_or_empty};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if !ctx.group_authorized(&session, Operation::Read, req.group_id.as_str()) {
        let mut resp = HeartbeatResponse::default();
        resp.error_code = RequestError::GroupAuthorizationFailed.code();
        return resp;
    }
    let request = group::HeartbeatRequest {
        group: group_id(&req.group_id),
        member: member_or_empty(&req.member_id),
        // Static membership (KIP-345) from v3.
        instance: instance_since(version, 3, &req.group_instance_id),
        generation: GenerationId(req.generation_id),
    };
    let mut resp = HeartbeatResponse::default();
    if let Err(e) = ctx.groups.heartbeat(&request) {
        resp.error_code = RequestError::from(e).code();
    }
    resp
}
