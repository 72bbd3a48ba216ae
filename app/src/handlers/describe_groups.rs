//! DescribeGroups v0-6: state, protocol and members (metadata and assignment only while
//! Stable). An unknown group is "Dead"; v6 also reports GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use std::sync::Arc;

use kafscale_core::group::GroupState;

use super::group_common::{group_id, instance_str};
use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::{Operation, Resource, ResourceType};

/// The operations a group's authorized-operations field reports.
const GROUP_OPERATIONS: [Operation; 3] = [Operation::Read, Operation::Delete, Operation::Describe];

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for wire in req.groups {
        let group = group_id(&wire);
        let mut out = DescribedGroup::default();
        out.group_id = wire;
        if version >= 3 && req.include_authorized_operations {
            out.authorized_operations = ctx.authorized_operations(
                &session,
                &Resource::new(ResourceType::Group, &group.0),
                &GROUP_OPERATIONS,
            );
        }
        if !ctx.group_authorized(&session, Operation::Describe, &group.0) {
            out.error_code = RequestError::GroupAuthorizationFailed.code();
            resp.groups.push(out);
            continue;
        }
        match ctx.groups.describe(&group) {
            Ok(Some(d)) => {
                out.group_state = str_bytes(d.state.name());
                out.protocol_type = str_bytes(d.protocol_type);
                out.protocol_data = str_bytes(d.protocol);
                out.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = str_bytes(m.member.0);
                        if version >= 4 {
                            dm.group_instance_id = instance_str(&m.instance);
                        }
                        dm.client_id = str_bytes(m.client_id);
                        dm.client_host = str_bytes(m.client_host);
                        dm.member_metadata = m.metadata;
                        dm.member_assignment = m.assignment;
                        dm
                    })
                    .collect();
            }
            Ok(None) => {
                out.group_state = str_bytes(GroupState::Dead.name());
                if version >= 6 {
                    let e = RequestError::GroupIdNotFound(group.to_string());
                    out.error_code = e.code();
                    out.error_message = Some(str_bytes(e.to_string()));
                }
            }
            Err(e) => {
                let e = RequestError::from(e);
                out.error_code = e.code();
                if version >= 6 {
                    out.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        resp.groups.push(out);
    }
    resp
}
