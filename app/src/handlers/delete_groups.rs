//! DeleteGroups v0-2: empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::sync::Arc;

use super::group_common::group_id;
use crate::context::Context;
use crate::errors::{codes, group_code};

pub async fn handle(
    ctx: Arc<Context>,
    _version: i16,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for wire in req.groups_names {
        let group = group_id(&wire);
        let mut out = DeletableGroupResult::default();
        out.group_id = wire;
        out.error_code = if group.0.is_empty() {
            codes::INVALID_GROUP_ID
        } else {
            match ctx.groups.delete_group(&group).await {
                Ok(()) => codes::NONE,
                Err(e) => group_code(&e),
            }
        };
        resp.results.push(out);
    }
    resp
}
