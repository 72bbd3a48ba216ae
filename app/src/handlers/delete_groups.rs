//! DeleteGroups v0-2: empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};
use std::sync::Arc;

use super::group_common::group_id;
use crate::audit;
use crate::context::Context;
use crate::server::session::Session;
use kafscale_core::acl::Operation;
use kafscale_core::group::GroupError;

use crate::errors::{code_of, RequestError};

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for wire in req.groups_names {
        let group = group_id(&wire);
        let mut out = DeletableGroupResult::default();
        out.group_id = wire;
        let result = if group.0.is_empty() {
            Err(GroupError::InvalidGroupId(group.0).into())
        } else if !ctx.group_authorized(&session, Operation::Delete, &group.0) {
            Err(RequestError::GroupAuthorizationFailed)
        } else {
            ctx.groups
                .delete_group(&group)
                .await
                .map_err(RequestError::from)
        };
        out.error_code = code_of(&result);
        resp.results.push(out);
    }
    let outcomes = resp
        .results
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.error_code));
    audit::changes(&ctx, &session, ApiKey::DeleteGroups, "group", outcomes);
    resp
}
