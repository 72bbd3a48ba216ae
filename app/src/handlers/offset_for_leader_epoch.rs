//! OffsetForLeaderEpoch: the end offset of a leader epoch, with which clients check that the
//! log they read was not truncated.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::sync::Arc;

use kafscale_core::{Error, LeaderEpoch, PartitionId, PartitionKey};

use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Kafka's "undefined" epoch and offset.
const UNDEFINED: i64 = -1;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let record = ctx.log.topic(&t.topic.0);
        let denied = !ctx.topic_authorized(&session, Operation::Describe, &t.topic.0);
        let mut topic = OffsetForLeaderTopicResult::default();
        topic.topic = t.topic.clone();
        for p in t.partitions {
            let mut out = EpochEndOffset::default();
            out.partition = p.partition;
            let result = match &record {
                _ if denied => Err(RequestError::TopicAuthorizationFailed),
                None => Err(RequestError::UnknownTopicOrPartition),
                Some(r) => {
                    let key = PartitionKey {
                        topic: r.id,
                        partition: PartitionId(p.partition),
                    };
                    end_offset(&ctx, key, p.current_leader_epoch, p.leader_epoch)
                        .await
                        .map_err(RequestError::from)
                }
            };
            match result {
                Ok(Some(end)) => {
                    out.leader_epoch = p.leader_epoch;
                    out.end_offset = end;
                }
                Ok(None) => {
                    out.leader_epoch = UNDEFINED as i32;
                    out.end_offset = UNDEFINED;
                }
                Err(e) => {
                    out.error_code = e.code();
                    out.leader_epoch = UNDEFINED as i32;
                    out.end_offset = UNDEFINED;
                }
            }
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}

async fn end_offset(
    ctx: &Context,
    key: PartitionKey,
    current: i32,
    requested: i32,
) -> Result<Option<i64>, Error> {
    ctx.log
        .check_epoch(key, (current >= 0).then_some(LeaderEpoch(current)))?;
    if requested < 0 {
        return Ok(None);
    }
    Ok(ctx
        .log
        .epoch_end_offset(key, LeaderEpoch(requested))
        .await?
        .map(|o| o.0))
}
