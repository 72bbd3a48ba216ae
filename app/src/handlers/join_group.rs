//! JoinGroup v0-9: the answer comes when the group's join phase ends.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use std::sync::Arc;

use kafscale_core::group::{self, GroupError, Protocol};

use super::group_common::{group_id, instance_id, instance_str, member_id, opt_str};
use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// The client's id from the request header goes with the request (DescribeGroups shows it).
pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: JoinGroupRequest,
    client_id: String,
    client_host: String,
) -> JoinGroupResponse {
    if !ctx.group_authorized(&session, Operation::Read, req.group_id.as_str()) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = RequestError::GroupAuthorizationFailed.code();
        return resp;
    }
    let session = req.session_timeout_ms;
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    let rebalance = if version >= 1 && req.rebalance_timeout_ms > 0 {
        req.rebalance_timeout_ms
    } else {
        session
    };
    let request = group::JoinRequest {
        group: group_id(&req.group_id),
        member: member_id(&req.member_id),
        instance: if version >= 5 {
            instance_id(&req.group_instance_id)
        } else {
            None
        },
        session_timeout_ms: session,
        rebalance_timeout_ms: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
        client_id,
        client_host,
    };
    let mut resp = JoinGroupResponse::default();
    resp.generation_id = -1;
    match ctx.groups.join(request).await {
        Ok(joined) => {
            resp.generation_id = joined.generation.0;
            if version >= 7 {
                resp.protocol_type = opt_str(&joined.protocol_type);
            }
            // Below v7 the name is not nullable; a completed join always has one.
            resp.protocol_name = Some(str_bytes(joined.protocol_name.unwrap_or_default()));
            resp.leader = str_bytes(joined.leader.0);
            resp.member_id = str_bytes(joined.member.0);
            resp.members = joined
                .members
                .into_iter()
                .map(|m| {
                    let mut out = JoinGroupResponseMember::default();
                    out.member_id = str_bytes(m.member.0);
                    if version >= 5 {
                        out.group_instance_id = instance_str(&m.instance);
                    }
                    out.metadata = m.metadata;
                    out
                })
                .collect();
        }
        Err(e) => {
            tracing::debug!(group = %req.group_id.0, error = %e, "join group refused");
            resp.member_id = match &e {
                GroupError::MemberIdRequired(id) => str_bytes(id.0.clone()),
                _ => req.member_id,
            };
            resp.error_code = RequestError::from(e).code();
            if version < 7 {
                resp.protocol_name = Some(str_bytes(""));
            }
        }
    }
    resp
}
