//! DescribeTopicPartitions: topics and their partitions in name order, paged by a cursor
//! (Java admin `describeTopics`).

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use std::sync::Arc;

use kafscale_core::topic::TopicRecord;
use kafscale_core::{PartitionId, PartitionKey};

use super::{topic_name, wire_uuid};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Most partitions in one response, whatever the client asks (Kafka's default limit).
const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

enum Wanted {
    Found(TopicRecord),
    Missing(String),
}

impl Wanted {
    fn name(&self) -> &str {
        match self {
            Wanted::Found(t) => &t.name,
            Wanted::Missing(n) => n,
        }
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let mut wanted: Vec<Wanted> = if req.topics.is_empty() {
        ctx.log
            .topics()
            .into_iter()
            .filter(|t| {
                ctx.allows(
                    &session,
                    Operation::Describe,
                    &kafscale_core::acl::Resource::new(
                        kafscale_core::acl::ResourceType::Topic,
                        &t.name,
                    ),
                )
            })
            .map(Wanted::Found)
            .collect()
    } else {
        req.topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                // A topic the client may not describe is answered as unknown.
                ctx.log
                    .topic(&name)
                    .filter(|_| ctx.topic_authorized(&session, Operation::Describe, &name))
                    .map_or(Wanted::Missing(name), Wanted::Found)
            })
            .collect()
    };
    wanted.sort_by(|a, b| a.name().cmp(b.name()));
    wanted.dedup_by(|a, b| a.name() == b.name());
    let limit = usize::try_from(req.response_partition_limit)
        .ok()
        .filter(|l| *l > 0)
        .map_or(MAX_PARTITIONS_PER_RESPONSE, |l| {
            l.min(MAX_PARTITIONS_PER_RESPONSE)
        });
    let (first_topic, first_partition) = match &req.cursor {
        Some(c) => (c.topic_name.0.to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut budget = limit;
    for w in wanted {
        if w.name() < first_topic.as_str() {
            continue;
        }
        let start = if w.name() == first_topic {
            first_partition
        } else {
            0
        };
        let mut out = DescribeTopicPartitionsResponseTopic::default();
        out.name = Some(topic_name(w.name()));
        match w {
            Wanted::Missing(_) => {
                out.error_code = RequestError::UnknownTopicOrPartition.code();
                resp.topics.push(out);
            }
            Wanted::Found(t) => {
                out.topic_id = wire_uuid(t.id);
                out.is_internal = false;
                let mut next = start;
                while next < t.partitions {
                    if budget == 0 {
                        let mut cursor = Cursor::default();
                        cursor.topic_name = topic_name(&t.name);
                        cursor.partition_index = next;
                        resp.next_cursor = Some(cursor);
                        break;
                    }
                    out.partitions.push(partition(&ctx, &t, next));
                    budget -= 1;
                    next += 1;
                }
                // A page that ends exactly before this topic does not list it empty.
                if resp.next_cursor.is_none() || !out.partitions.is_empty() {
                    resp.topics.push(out);
                }
                if resp.next_cursor.is_some() {
                    break;
                }
            }
        }
    }
    resp
}

fn partition(
    ctx: &Context,
    topic: &TopicRecord,
    index: i32,
) -> DescribeTopicPartitionsResponsePartition {
    let mut p = DescribeTopicPartitionsResponsePartition::default();
    p.partition_index = index;
    let key = PartitionKey {
        topic: topic.id,
        partition: PartitionId(index),
    };
    match ctx.log.partition_info(key) {
        Ok(info) => match info.leader {
            Some(leader) => {
                p.leader_id = BrokerId(leader.0);
                p.leader_epoch = info.leader_epoch.0;
                p.replica_nodes = vec![BrokerId(leader.0)];
                p.isr_nodes = vec![BrokerId(leader.0)];
            }
            None => {
                p.error_code = RequestError::LeaderNotAvailable.code();
                p.leader_id = BrokerId(-1);
            }
        },
        Err(e) => {
            p.error_code = RequestError::from(e).code();
            p.leader_id = BrokerId(-1);
        }
    }
    p
}
