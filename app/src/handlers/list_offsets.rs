//! ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

use kafscale_core::log::TimestampedOffset;
use kafscale_core::{Error, LeaderEpoch, PartitionId, PartitionKey};

use super::topic_name;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let committed = version >= 2 && req.isolation_level == 1;
    for t in req.topics {
        let name = t.name.0.to_string();
        let record = ctx.log.topic(&name);
        let denied = !ctx.topic_authorized(&session, Operation::Describe, &name);
        let mut topic = ListOffsetsTopicResponse::default();
        topic.name = topic_name(&name);
        for p in t.partitions {
            let mut out = ListOffsetsPartitionResponse::default();
            out.partition_index = p.partition_index;
            let result = match &record {
                _ if denied => Err(RequestError::TopicAuthorizationFailed),
                None => Err(RequestError::UnknownTopicOrPartition),
                Some(r) => {
                    let key = PartitionKey {
                        topic: r.id,
                        partition: PartitionId(p.partition_index),
                    };
                    let epoch = (version >= 4 && p.current_leader_epoch >= 0)
                        .then_some(LeaderEpoch(p.current_leader_epoch));
                    lookup(&ctx, key, epoch, p.timestamp, committed)
                        .await
                        .map_err(RequestError::from)
                }
            };
            match result {
                Ok((offset, timestamp, epoch)) => {
                    out.offset = offset;
                    out.timestamp = timestamp;
                    if version >= 4 {
                        out.leader_epoch = epoch;
                    }
                }
                Err(e) => {
                    out.error_code = e.code();
                    out.offset = -1;
                    out.timestamp = -1;
                }
            }
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}

/// (offset, timestamp, leader epoch); offset -1 when no record matches.
/// `committed`: isolation level read_committed (v2+), whose latest offset is the last
/// stable offset.
async fn lookup(
    ctx: &Context,
    key: PartitionKey,
    epoch: Option<LeaderEpoch>,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64, i32), Error> {
    ctx.log.check_epoch(key, epoch)?;
    let info = ctx.log.partition_info(key)?;
    let e = info.leader_epoch.0;
    match timestamp {
        LATEST if committed => Ok((info.last_stable_offset.0, -1, e)),
        LATEST => Ok((info.high_watermark.0, -1, e)),
        EARLIEST | EARLIEST_LOCAL => Ok((info.log_start_offset.0, -1, e)),
        LATEST_TIERED => {
            // Everything committed is in object storage.
            let last = info.high_watermark.0 - 1;
            Ok(if last >= info.log_start_offset.0 {
                (last, -1, e)
            } else {
                (-1, -1, e)
            })
        }
        MAX_TIMESTAMP => found(ctx.log.offset_of_max_timestamp(key).await?, e),
        ts if ts >= 0 => found(ctx.log.offset_for_timestamp(key, ts).await?, e),
        other => Err(Error::InvalidConfig {
            name: "timestamp".into(),
            reason: format!("unsupported special timestamp {other}"),
        }),
    }
}

/// A record found by time, or offset -1 when none matches.
fn found(record: Option<TimestampedOffset>, epoch: i32) -> Result<(i64, i64, i32), Error> {
    Ok(record.map_or((-1, -1, epoch), |r| (r.offset.0, r.timestamp, epoch)))
}
