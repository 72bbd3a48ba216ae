//! OffsetFetch: one group (v1-7; errors at the top level from v2) or several (v8+, errors
//! per group). A partition without a committed offset answers -1 with no error. With
//! `require_stable` (v7+, read_committed consumers), a partition named in the request whose
//! offset a transaction has staged and not yet settled answers UNSTABLE_OFFSET_COMMIT, and
//! the client asks again (KIP-447).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafscale_core::group::{CommittedOffset, GroupId, OffsetKey};
use kafscale_core::PartitionId;

use super::group_common::{group_id, wire_group};
use super::{str_bytes, topic_name};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Topic -> partitions -> committed offset (or the partition's error code), in topic and
/// partition order.
type Fetched = BTreeMap<String, Vec<(i32, Result<Option<CommittedOffset>, i16>)>>;

/// `wanted` None: every committed partition (where, as in Kafka, `require_stable` does
/// not apply).
async fn fetch(
    ctx: &Context,
    session: &Session,
    group: &GroupId,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Fetched, i16> {
    if !ctx.group_authorized(session, Operation::Describe, &group.0) {
        return Err(RequestError::GroupAuthorizationFailed.code());
    }
    let keys: Option<Vec<OffsetKey>> = wanted.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(t, ps)| {
                ps.into_iter().map(move |p| OffsetKey {
                    topic: t.clone(),
                    partition: PartitionId(p),
                })
            })
            .collect()
    });
    let all = keys.is_none();
    let fetched = match keys.as_deref() {
        Some(keys) if require_stable => {
            // Twice the longest a transaction may stay open: see fetch_stable_offsets.
            let max_pending = 2 * i64::from(ctx.txns.config().max_timeout_ms);
            ctx.groups
                .fetch_stable_offsets(group, Some(keys), max_pending)
                .await
        }
        keys => ctx
            .groups
            .fetch_offsets(group, keys)
            .map(|found| (found, BTreeSet::new())),
    };
    let (found, unstable) = fetched.map_err(|e| RequestError::from(e).code())?;
    let mut out = Fetched::new();
    for (key, value) in found {
        // Offsets committed to an earlier topic of the same name do not count.
        let current = ctx.log.topic(&key.topic).map(|t| t.id);
        let value = value.filter(|v| v.topic_id.is_none() || v.topic_id == current);
        if all && value.is_none() {
            continue;
        }
        // Topics the client may not describe: left out of "every committed partition",
        // refused where they were asked for by name.
        let value = if !ctx.topic_authorized(session, Operation::Describe, &key.topic) {
            if all {
                continue;
            }
            Err(RequestError::TopicAuthorizationFailed.code())
        } else if unstable.contains(&key) {
            Err(RequestError::UnstableOffsetCommit.code())
        } else {
            Ok(value)
        };
        out.entry(key.topic)
            .or_default()
            .push((key.partition.0, value));
    }
    Ok(out)
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        for g in req.groups {
            let group = group_id(&g.group_id);
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = wire_group(&group);
            match fetch(&ctx, &session, &group, wanted, req.require_stable).await {
                Ok(fetched) => {
                    for (topic, parts) in fetched {
                        let mut t = OffsetFetchResponseTopics::default();
                        t.name = topic_name(&topic);
                        for (partition, value) in parts {
                            let mut p = OffsetFetchResponsePartitions::default();
                            p.partition_index = partition;
                            p.error_code = fill(
                                &mut p.committed_offset,
                                &mut p.committed_leader_epoch,
                                &mut p.metadata,
                                value,
                            );
                            t.partitions.push(p);
                        }
                        out.topics.push(t);
                    }
                }
                Err(code) => out.error_code = code,
            }
            resp.groups.push(out);
        }
        return resp;
    }
    let group = group_id(&req.group_id);
    let wanted_list: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match fetch(
        &ctx,
        &session,
        &group,
        wanted_list.clone(),
        req.require_stable,
    )
    .await
    {
        Ok(fetched) => {
            for (topic, parts) in fetched {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = topic_name(&topic);
                for (partition, value) in parts {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = partition;
                    let mut epoch = -1;
                    p.error_code =
                        fill(&mut p.committed_offset, &mut epoch, &mut p.metadata, value);
                    if version >= 5 {
                        p.committed_leader_epoch = epoch;
                    }
                    t.partitions.push(p);
                }
                resp.topics.push(t);
            }
        }
        Err(code) if version >= 2 => resp.error_code = code,
        Err(code) => {
            // v1 has no top-level error: every requested partition carries it.
            for (topic, parts) in wanted_list.unwrap_or_default() {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = topic_name(&topic);
                for partition in parts {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = partition;
                    p.committed_offset = -1;
                    p.error_code = code;
                    t.partitions.push(p);
                }
                resp.topics.push(t);
            }
        }
    }
    resp
}

/// Sets a partition's fields; returns its error code.
fn fill(
    offset: &mut i64,
    epoch: &mut i32,
    metadata: &mut Option<kafka_protocol::protocol::StrBytes>,
    value: Result<Option<CommittedOffset>, i16>,
) -> i16 {
    match value {
        Ok(Some(v)) => {
            *offset = v.offset.0;
            *epoch = v.leader_epoch.map_or(-1, |e| e.0);
            *metadata = Some(str_bytes(v.metadata));
            0
        }
        Ok(None) | Err(_) => {
            *offset = -1;
            *epoch = -1;
            *metadata = Some(str_bytes(""));
            value.err().unwrap_or(0)
        }
    }
}
