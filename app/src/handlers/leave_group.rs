//! LeaveGroup: one member (v0-2, error at the top level) or a batch by member or instance
//! id (v3+, one error per member).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::sync::Arc;

use kafscale_core::group::LeavingMember;

use super::group_common::{group_id, instance_id, member_id};
use crate::context::Context;
use crate::errors::{code_of, RequestError, NO_ERROR};
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !ctx.group_authorized(&session, Operation::Read, req.group_id.as_str()) {
        let mut resp = LeaveGroupResponse::default();
        resp.error_code = RequestError::GroupAuthorizationFailed.code();
        return resp;
    }
    let group = group_id(&req.group_id);
    let leaving: Vec<LeavingMember> = if version < 3 {
        vec![LeavingMember {
            member: member_id(&req.member_id),
            instance: None,
        }]
    } else {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member: member_id(&m.member_id),
                instance: instance_id(&m.group_instance_id),
            })
            .collect()
    };
    let mut resp = LeaveGroupResponse::default();
    let results = match ctx.groups.leave(&group, &leaving) {
        Ok(r) => r,
        Err(e) => {
            resp.error_code = RequestError::from(e).code();
            return resp;
        }
    };
    if version < 3 {
        resp.error_code = results
            .into_iter()
            .next()
            .map_or(NO_ERROR, |r| code_of(&r.map_err(RequestError::from)));
        return resp;
    }
    resp.members = req
        .members
        .into_iter()
        .zip(results)
        .map(|(m, r)| {
            let mut out = MemberResponse::default();
            out.member_id = m.member_id;
            out.group_instance_id = m.group_instance_id;
            out.error_code = code_of(&r.map_err(RequestError::from));
            out
        })
        .collect();
    resp
}
