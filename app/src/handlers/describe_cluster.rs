//! DescribeCluster: the brokers, the controller and the cluster id (Java admin
//! `describeCluster`).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use std::sync::Arc;

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Endpoint types of DescribeCluster v1+: brokers or KRaft controllers.
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    if version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        let e = RequestError::UnsupportedEndpointType(req.endpoint_type);
        resp.error_code = e.code();
        resp.error_message = Some(str_bytes(e.to_string()));
        resp.endpoint_type = req.endpoint_type;
        return resp;
    }
    if !ctx.cluster_authorized(&session, Operation::Describe) {
        let e = RequestError::ClusterAuthorizationFailed;
        resp.error_code = e.code();
        resp.error_message = Some(str_bytes(e.to_string()));
        return resp;
    }
    resp.brokers = ctx
        .live_brokers(session.listener_name())
        .into_iter()
        .map(|e| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(e.id);
            b.host = str_bytes(e.host);
            b.port = e.port;
            b.rack = e.rack.map(str_bytes);
            b
        })
        .collect();
    resp.cluster_id = str_bytes(ctx.cluster_id.clone());
    resp.controller_id = BrokerId(ctx.controller_id());
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(
            &session,
            &kafscale_core::acl::Resource::cluster(),
            &super::metadata::CLUSTER_OPERATIONS,
        )
    } else {
        i32::MIN
    };
    resp
}
