//! OffsetDelete v0: deletes committed offsets, except those of topics a consumer group
//! with members still subscribes to (GROUP_SUBSCRIBED_TO_TOPIC).

use bytes::Buf;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use kafscale_core::group::OffsetKey;
use kafscale_core::PartitionId;

use super::group_common::group_id;
use super::topic_name;
use crate::audit;
use crate::context::Context;
use crate::errors::{code_of, RequestError, NO_ERROR};
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Topics of a consumer protocol subscription (its leading i16 is the version, which the
/// generated decoder does not read itself); None if it cannot be read.
pub(crate) fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = bytes::Bytes::copy_from_slice(metadata);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    crate::wire::check_data(
        crate::wire::Data::ConsumerProtocolSubscription,
        version,
        &buf,
    )
    .ok()?;
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        ConsumerProtocolSubscription::decode(&mut buf, version)
    }));
    match decoded {
        Ok(Ok(s)) => Some(s.topics.iter().map(|t| t.to_string()).collect()),
        _ => None,
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let resp = delete(&ctx, &session, req).await;
    // One event for the group when it failed as a whole, else one per partition.
    let resources: Vec<(String, i16)> = if resp.error_code != NO_ERROR {
        vec![(group, resp.error_code)]
    } else {
        resp.topics
            .iter()
            .flat_map(|t| {
                let group = &group;
                t.partitions.iter().map(move |p| {
                    (
                        format!("{group}:{}-{}", t.name.0, p.partition_index),
                        p.error_code,
                    )
                })
            })
            .collect()
    };
    let outcomes = resources.iter().map(|(r, code)| (r.as_str(), *code));
    audit::changes(&ctx, &session, ApiKey::OffsetDelete, "offsets", outcomes);
    resp
}

async fn delete(
    ctx: &Context,
    session: &Session,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = group_id(&req.group_id);
    if !ctx.group_authorized(session, Operation::Delete, &group.0) {
        let mut resp = OffsetDeleteResponse::default();
        resp.error_code = RequestError::GroupAuthorizationFailed.code();
        return resp;
    }
    let mut keys = Vec::new();
    let mut codes_by_key: HashMap<(String, i32), i16> = HashMap::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let record = ctx.log.topic(&name);
        let readable = ctx.topic_authorized(session, Operation::Read, &name);
        for p in &t.partitions {
            let i = p.partition_index;
            if !readable {
                codes_by_key.insert(
                    (name.clone(), i),
                    RequestError::TopicAuthorizationFailed.code(),
                );
            } else if record.as_ref().is_some_and(|r| i >= 0 && i < r.partitions) {
                keys.push(OffsetKey {
                    topic: name.clone(),
                    partition: PartitionId(i),
                });
            } else {
                codes_by_key.insert(
                    (name.clone(), i),
                    RequestError::UnknownTopicOrPartition.code(),
                );
            }
        }
    }
    let mut resp = OffsetDeleteResponse::default();
    match ctx
        .groups
        .delete_offsets(&group, keys, &subscribed_topics)
        .await
    {
        Ok(results) => {
            for (k, r) in results {
                let code = code_of(&r.map_err(RequestError::from));
                codes_by_key.insert((k.topic, k.partition.0), code);
            }
        }
        Err(e) => {
            resp.error_code = RequestError::from(e).code();
            return resp;
        }
    }
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut topic = OffsetDeleteResponseTopic::default();
        topic.name = topic_name(&name);
        for p in t.partitions {
            let mut out = OffsetDeleteResponsePartition::default();
            out.partition_index = p.partition_index;
            out.error_code = codes_by_key
                .get(&(name.clone(), p.partition_index))
                .copied()
                .unwrap_or(NO_ERROR);
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}
