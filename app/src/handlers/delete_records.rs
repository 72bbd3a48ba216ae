//! DeleteRecords: moves partitions' log start offsets (the low watermark) forward.

use futures::future::join_all;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use std::sync::Arc;
use std::time::Duration;

use kafscale_core::log::DeleteBefore;
use kafscale_core::{Offset, PartitionId, PartitionKey};

use super::topic_name;
use crate::audit;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Offset -1 means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;
/// Used when the request's timeout is not positive.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout = u64::try_from(req.timeout_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let record = ctx.log.topic(&name);
        let denied = !ctx.topic_authorized(&session, Operation::Delete, &name);
        let results = join_all(t.partitions.iter().map(|p| {
            let ctx = ctx.clone();
            let record = record.clone();
            let (index, offset) = (p.partition_index, p.offset);
            async move {
                let mut out = DeleteRecordsPartitionResult::default();
                out.partition_index = index;
                let outcome = match record {
                    _ if denied => Err(RequestError::TopicAuthorizationFailed),
                    None => Err(RequestError::UnknownTopicOrPartition),
                    Some(r) => delete(&ctx, r.id, index, offset, timeout).await,
                };
                match outcome {
                    Ok(low) => out.low_watermark = low,
                    Err(e) => {
                        out.error_code = e.code();
                        out.low_watermark = -1;
                    }
                }
                out
            }
        }))
        .await;
        let mut topic = DeleteRecordsTopicResult::default();
        topic.name = topic_name(&name);
        topic.partitions = results;
        resp.topics.push(topic);
    }
    let resources: Vec<(String, i16)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (format!("{}-{}", t.name.0, p.partition_index), p.error_code))
        })
        .collect();
    let outcomes = resources.iter().map(|(r, code)| (r.as_str(), *code));
    audit::changes(&ctx, &session, ApiKey::DeleteRecords, "records", outcomes);
    resp
}

async fn delete(
    ctx: &Context,
    topic: kafscale_core::TopicId,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<i64, RequestError> {
    let before = match offset {
        HIGH_WATERMARK => DeleteBefore::HighWatermark,
        o if o >= 0 => DeleteBefore::Offset(Offset(o)),
        _ => return Err(RequestError::OffsetOutOfRange),
    };
    let key = PartitionKey {
        topic,
        partition: PartitionId(partition),
    };
    match tokio::time::timeout(timeout, ctx.log.delete_records(key, before)).await {
        Ok(Ok(low)) => Ok(low.0),
        Ok(Err(e)) => {
            tracing::debug!(partition = %key, error = %e, "delete records failed");
            Err(e.into())
        }
        Err(_) => Err(RequestError::TimedOut(
            "delete records did not finish in time",
        )),
    }
}
