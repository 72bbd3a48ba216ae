//! OffsetCommit v2-9: offsets by topic name, durable before the answer. Generation -1 with
//! no member id is a "simple" commit of a group that does not use group membership.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;
use kafscale_core::group::{
    CommitRequest, CommittedOffset, GroupResult, OffsetKey, PartitionResults,
};
use kafscale_core::{LeaderEpoch, Offset, PartitionId, TopicId};

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
            offsets.push(offset_of(
                &name,
                p.partition_index,
                p.committed_offset,
                (version >= 6).then_some(p.committed_leader_epoch),
                p.committed_metadata.as_ref(),
                record.as_ref().map(|r| r.id),
            ));
        }
        answers.push((name, parts));
    }
    let outcome: Outcome = if offsets.is_empty() {
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
        outcome_codes(&req.group_id.0, ctx.groups.commit(request).await)
    };
    let mut resp = OffsetCommitResponse::default();
    for (name, parts) in answers {
        let mut topic = OffsetCommitResponseTopic::default();
        topic.name = super::topic_name(&name);
        for (partition, code) in parts {
            let mut out = OffsetCommitResponsePartition::default();
            out.partition_index = partition;
            out.error_code = partition_code(&name, partition, code, &outcome);
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}

/// What a commit did: each partition's code, or the code of the whole request.
pub(crate) type Outcome = Result<HashMap<OffsetKey, i16>, i16>;

/// A partition's offset as a commit request (OffsetCommit, TxnOffsetCommit) names it; a
/// negative leader epoch is none.
pub(crate) fn offset_of(
    topic: &str,
    partition: i32,
    offset: i64,
    leader_epoch: Option<i32>,
    metadata: Option<&StrBytes>,
    topic_id: Option<TopicId>,
) -> (OffsetKey, CommittedOffset) {
    (
        OffsetKey {
            topic: topic.to_owned(),
            partition: PartitionId(partition),
        },
        CommittedOffset {
            offset: Offset(offset),
            leader_epoch: leader_epoch.filter(|e| *e >= 0).map(LeaderEpoch),
            metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
            commit_ms: 0,
            topic_id,
        },
    )
}

pub(crate) fn outcome_codes(group: &str, result: GroupResult<PartitionResults>) -> Outcome {
    match result {
        Ok(results) => Ok(results
            .into_iter()
            .map(|(k, r)| (k, code_of(&r.map_err(RequestError::from))))
            .collect()),
        Err(e) => {
            tracing::debug!(group, error = %e, "offset commit refused");
            Err(RequestError::from(e).code())
        }
    }
}

/// A partition's code in the answer: its refusal if it had one, else the commit's outcome.
pub(crate) fn partition_code(
    topic: &str,
    partition: i32,
    refused: Option<i16>,
    outcome: &Outcome,
) -> i16 {
    refused.unwrap_or_else(|| {
        let key = OffsetKey {
            topic: topic.to_owned(),
            partition: PartitionId(partition),
        };
        match outcome {
            Ok(codes_by_key) => codes_by_key.get(&key).copied().unwrap_or(NO_ERROR),
            Err(code) => *code,
        }
    })
}
