//! TxnOffsetCommit: offsets a transaction commits for a consumer group, staged by the
//! group's coordinator and visible only once the transaction commits. The member and
//! generation (v3+) are checked as OffsetCommit's are. Where this broker coordinates the
//! transactional id, the producer id and epoch are checked too: another producer id is
//! INVALID_PRODUCER_ID_MAPPING, an epoch other than the current one (a fenced producer)
//! INVALID_PRODUCER_EPOCH, or PRODUCER_FENCED from v4 (KIP-890 clients; librdkafka, which
//! sends v3, fails fatally on INVALID_PRODUCER_EPOCH only). Wherever the id is coordinated,
//! the group's coordinator refuses an epoch older than the newest it has seen of the
//! producer id (in its staged offsets and the markers it settled) the same way, and a
//! marker never commits offsets staged at an older epoch than its own.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use std::collections::HashMap;
use std::sync::Arc;

use kafscale_core::acl::{Operation, Resource, ResourceType};
use kafscale_core::group::{CommitRequest, GroupError, TxnProducer};
use kafscale_core::txn::ProducerIdentity;

use super::group_common::{generation, group_id, instance_id, member_id};
use super::offset_commit::{offset_of, outcome_codes, partition_code, Outcome};
use super::topic_name;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;

/// PRODUCER_FENCED from v4; earlier versions get INVALID_PRODUCER_EPOCH.
const FENCED_SINCE: i16 = 4;

/// A topic of the answer: its partitions with their code, None while the commit decides.
type TopicAnswer = (String, Vec<(i32, Option<i16>)>);

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let resource = Resource::new(ResourceType::TransactionalId, req.transactional_id.as_str());
    let id = req.transactional_id.as_str();
    let refusal = if !ctx.authorized(&session, Operation::Write, &resource) {
        Some(RequestError::TransactionalIdAuthorizationFailed)
    } else if !ctx.group_authorized(&session, Operation::Read, req.group_id.as_str()) {
        Some(RequestError::GroupAuthorizationFailed)
    } else if ctx.txns.check_coordinator(id).is_ok() {
        let producer = ProducerIdentity {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let checked = ctx.txns.check_producer(id, producer).await;
        checked.err().map(RequestError::from)
    } else {
        None
    };
    if let Some(e) = &refusal {
        tracing::debug!(transactional_id = id, error = %e, "TxnOffsetCommit refused");
    }
    let refusal = refusal.map(|e| e.txn_code(version, FENCED_SINCE));
    // Answers in request order: each partition's code, None while the commit decides.
    let mut answers: Vec<TopicAnswer> = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let record = ctx.log.topic(&name);
        let topic_ok = ctx.topic_authorized(&session, Operation::Read, &name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let known = record
                .as_ref()
                .is_some_and(|r| p.partition_index >= 0 && p.partition_index < r.partitions);
            let refused = match refusal {
                Some(code) => Some(code),
                None if !topic_ok => Some(RequestError::TopicAuthorizationFailed.code()),
                None if !known => Some(RequestError::UnknownTopicOrPartition.code()),
                None => None,
            };
            parts.push((p.partition_index, refused));
            if refused.is_some() {
                continue;
            }
            offsets.push(offset_of(
                &name,
                p.partition_index,
                p.committed_offset,
                (version >= 2).then_some(p.committed_leader_epoch),
                p.committed_metadata.as_ref(),
                record.as_ref().map(|r| r.id),
            ));
        }
        answers.push((name, parts));
    }
    let outcome: Outcome = if offsets.is_empty() {
        Ok(HashMap::new())
    } else {
        let v3 = version >= 3;
        let request = CommitRequest {
            group: group_id(&req.group_id),
            member: if v3 { member_id(&req.member_id) } else { None },
            instance: if v3 {
                instance_id(&req.group_instance_id)
            } else {
                None
            },
            generation: if v3 {
                generation(req.generation_id)
            } else {
                None
            },
            offsets,
        };
        let producer = TxnProducer {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        match ctx.groups.stage_txn_offsets(request, producer).await {
            // A zombie the group's coordinator knows of, though it may not coordinate the id.
            Err(e @ GroupError::ProducerFenced { .. }) => {
                tracing::debug!(group = %req.group_id.0, error = %e, "TxnOffsetCommit refused");
                Err(RequestError::from(e).txn_code(version, FENCED_SINCE))
            }
            staged => outcome_codes(&req.group_id.0, staged),
        }
    };
    let mut resp = TxnOffsetCommitResponse::default();
    for (name, parts) in answers {
        let mut topic = TxnOffsetCommitResponseTopic::default();
        topic.name = topic_name(&name);
        for (partition, code) in parts {
            let mut out = TxnOffsetCommitResponsePartition::default();
            out.partition_index = partition;
            out.error_code = partition_code(&name, partition, code, &outcome);
            topic.partitions.push(out);
        }
        resp.topics.push(topic);
    }
    resp
}
