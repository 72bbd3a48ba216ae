//! OffsetCommit v2-9: offsets by topic name, durable before the answer. Generation -1 with
//! no member id is a "simple" commit of a group that does not use group membership.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::collections::HashMap;
use std::sync::Arc;

use kafscale_core::group::{CommitRequest, CommittedOffset, OffsetKey};
use kafscale_core::{LeaderEpoch, Offset, PartitionId};

use super::group_common::{generation, group_id, instance_id, member_id};
use crate::context::Context;
use crate::errors::{code_of, RequestError, NO_ERROR};
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// A topic of the answer: its partitions with their code, None while the commit decides.
type TopicAnswer = (String, Vec<(i32, Option<i16>)>);

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    // Answers in request order.
    let mut answers: Vec<TopicAnswer> = Vec::new();
    let mut offsets = Vec::new();
    // READ on the group and on each topic, as Kafka asks.
    let group_ok = ctx.group_authorized(&session, Operation::Read, req.group_id.as_str());
    for t in &req.topics {
        let name = t.name.0.to_string();
        let record = ctx.log.topic(&name);
        let topic_ok = group_ok && ctx.topic_authorized(&session, Operation::Read, &name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            if !topic_ok {
                let e = if group_ok {
                    RequestError::TopicAuthorizationFailed
                } else {
                    RequestError::GroupAuthorizationFailed
                };
                parts.push((p.partition_index, Some(e.code())));
                continue;
            }
            let known = record
                .as_ref()
                .is_some_and(|r| p.partition_index >= 0 && p.partition_index < r.partitions);
            if !known {
                parts.push((
                    p.partition_index,
                    Some(RequestError::UnknownTopicOrPartition.code()),
                ));
                continue;
            }
            parts.push((p.partition_index, None));
            offsets.push((
                OffsetKey {
                    topic: name.clone(),
                    partition: PartitionId(p.partition_index),
                },
                CommittedOffset {
                    offset: Offset(p.committed_offset),
                    leader_epoch: (version >= 6 && p.committed_leader_epoch >= 0)
                        .then_some(LeaderEpoch(p.committed_leader_epoch)),
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    commit_ms: 0,
                    topic_id: record.as_ref().map(|r| r.id),
                },
            ));
        }
        answers.push((name, parts));
    }
    let outcome: Result<HashMap<OffsetKey, i16>, i16> = if offsets.is_empty() {
        Ok(HashMap::new())
    } else {
        let request = CommitRequest {
            group: group_id(&req.group_id),
            member: member_id(&req.member_id),
            instance: if version >= 7 {
                instance_id(&req.group_instance_id)
            } else {
                None
            },
            generation: generation(req.generation_id_or_member_epoch),
            offsets,
        };
        match ctx.groups.commit(request).await {
            Ok(results) => Ok(results
                .into_iter()
                .map(|(k, r)| (k, code_of(&r.map_err(RequestError::from))))
                .collect()),
            Err(e) => {
                tracing::debug!(group = %req.group_id.0, error = %e, "offset commit refused");
                Err(RequestError::from(e).code())
            }
        }
    };
    let mut resp = OffsetCommitResponse::default();
    for (name, parts) in answers {
        let mut topic = OffsetCommitResponseTopic::default();
        topic.name = super::topic_name(&name);
        for (partition, code) in parts {
            let mut out = OffsetCommitResponsePartition::default();
            out.partition_index = partition;
            out.error_code = code.unwrap_or_else(|| {
                let key = OffsetKey {
                    topic: name.clone(),
                    partition: PartitionId(partition),
                };
                match &outcome {
                    Ok(codes_by_key) => codes_by_key.get(&key).copied().unwrap_or(NO_ERROR),
                    Err(code) => *code,
                }
            });
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}
