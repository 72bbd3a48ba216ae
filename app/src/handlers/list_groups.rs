//! ListGroups v0-5, with the state filter (v4+) and the type filter (v5; every group here
//! is "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use std::sync::Arc;

use kafscale_core::group::GroupState;

use super::group_common::wire_group;
use super::str_bytes;
use crate::context::Context;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

const CLASSIC: &str = "classic";

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    if version >= 5
        && !req.types_filter.is_empty()
        && !req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC))
    {
        return resp;
    }
    let states: Vec<GroupState> = req
        .states_filter
        .iter()
        .filter_map(|s| GroupState::parse(s))
        .collect();
    if version >= 4 && !req.states_filter.is_empty() && states.is_empty() {
        // Only unknown states asked for: nothing matches.
        return resp;
    }
    // Groups the client may not describe are left out, unless it may describe the
    // cluster (Kafka's rule).
    let all = ctx.allows(
        &session,
        Operation::Describe,
        &kafscale_core::acl::Resource::cluster(),
    );
    for g in ctx.groups.list(&states) {
        if !all
            && !ctx.allows(
                &session,
                Operation::Describe,
                &kafscale_core::acl::Resource::new(
                    kafscale_core::acl::ResourceType::Group,
                    &g.group.0,
                ),
            )
        {
            continue;
        }
        let mut out = ListedGroup::default();
        out.group_id = wire_group(&g.group);
        out.protocol_type = str_bytes(g.protocol_type);
        if version >= 4 {
            out.group_state = str_bytes(g.state.name());
        }
        if version >= 5 {
            out.group_type = str_bytes(CLASSIC);
        }
        resp.groups.push(out);
    }
    resp
}
