//! SyncGroup v0-5: the leader sends the assignment; everyone gets its own part of it.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use std::sync::Arc;

use kafscale_core::group::{self, GenerationId};

use super::group_common::{group_id, instance_since, member_or_empty, opt_str};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    if !ctx.group_authorized(&session, Operation::Read, req.group_id.as_str()) {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = RequestError::GroupAuthorizationFailed.code();
        return resp;
    }
    let request = group::SyncRequest {
        group: group_id(&req.group_id),
        member: member_or_empty(&req.member_id),
        // Static membership (KIP-345) from v3.
        instance: instance_since(version, 3, &req.group_instance_id),
        generation: GenerationId(req.generation_id),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (member_or_empty(&a.member_id), a.assignment))
            .collect(),
    };
    let mut resp = SyncGroupResponse::default();
    match ctx.groups.sync(request).await {
        Ok(synced) => {
            if version >= 5 {
                resp.protocol_type = opt_str(&synced.protocol_type);
                resp.protocol_name = opt_str(&synced.protocol_name);
            }
            resp.assignment = synced.assignment;
        }
        Err(e) => {
            tracing::debug!(group = %req.group_id.0, error = %e, "sync group refused");
            resp.error_code = RequestError::from(e).code();
        }
    }
    resp
}
