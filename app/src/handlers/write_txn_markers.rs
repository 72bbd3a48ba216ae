//! WriteTxnMarkers (between brokers): the transaction coordinator of another broker has a
//! transaction's commit or abort marker written into partitions this broker leads. Each
//! marker is appended through the normal flush and commit, and answered per partition once
//! durable; a partition led elsewhere answers NOT_LEADER_OR_FOLLOWER, and the coordinator
//! looks its leader up again. An entry for `__consumer_offsets` names group coordinator
//! shards: the offsets the producer staged in their groups are settled (committed or
//! dropped), where this broker coordinates the shard. Only brokers may ask (CLUSTER_ACTION on the cluster, as Kafka).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::sync::Arc;

use kafscale_core::acl::Operation;

use crate::context::Context;
use crate::errors::{code_of, RequestError};
use crate::server::session::Session;
use crate::txn_markers::{
    append_marker, marker_written, settle_group_offsets, MarkerFields, GROUP_OFFSETS_TOPIC,
};

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = ctx.cluster_authorized(&session, Operation::ClusterAction);
    let mut resp = WriteTxnMarkersResponse::default();
    for m in req.markers {
        let fields = MarkerFields {
            producer_id: m.producer_id.0,
            epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        // Every append is queued before any is awaited, so they share flushes.
        let mut pending = Vec::new();
        for t in m.topics {
            let groups = t.name.0.as_str() == GROUP_OFFSETS_TOPIC;
            let known = groups || ctx.log.topic(&t.name.0).is_some();
            for index in t.partition_indexes {
                let appended = if !allowed {
                    Err(RequestError::ClusterAuthorizationFailed)
                } else if groups {
                    let shard = u32::try_from(index).unwrap_or(u32::MAX);
                    settle_group_offsets(&ctx.groups, shard, &fields)
                        .await
                        .map(|()| Ok(None))
                } else if !known {
                    Err(RequestError::UnknownTopicOrPartition)
                } else {
                    Ok(append_marker(
                        &ctx.log,
                        &ctx.verified,
                        &t.name.0,
                        index,
                        &fields,
                    ))
                };
                pending.push((t.name.clone(), index, appended));
            }
        }
        let mut out = WritableTxnMarkerResult::default();
        out.producer_id = m.producer_id;
        for (name, index, appended) in pending {
            let result = match appended {
                Ok(appended) => marker_written(appended).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::debug!(topic = %name.0, partition = index, error = %e, "transaction marker not written");
            }
            let mut p = WritableTxnMarkerPartitionResult::default();
            p.partition_index = index;
            p.error_code = code_of(&result);
            match out.topics.last_mut() {
                Some(t) if t.name == name => t.partitions.push(p),
                _ => {
                    let mut t = WritableTxnMarkerTopicResult::default();
                    t.name = name;
                    t.partitions.push(p);
                    out.topics.push(t);
                }
            }
        }
        resp.markers.push(out);
    }
    resp
}
