//! Metadata: brokers, the controller and topics with their partitions' leaders; creates
//! unknown topics when auto-creation is allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_core::log::CreateTopic;
use kafscale_core::topic::TopicRecord;
use kafscale_core::{Error, PartitionId, PartitionKey, TopicId};

use super::{str_bytes, topic_name, wire_uuid};
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::{Operation, Resource, ResourceType};

/// The operations a topic's authorized-operations field reports.
const TOPIC_OPERATIONS: [Operation; 8] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
/// The operations the cluster's authorized-operations field reports: Kafka's operations on
/// the cluster resource (librdkafka's test 0081 expects exactly these seven).
pub(crate) const CLUSTER_OPERATIONS: [Operation; 7] = [
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    resp.brokers = brokers(&ctx, session.listener_name(), version);
    if version >= 1 {
        resp.controller_id = BrokerId(ctx.controller_id());
    }
    if version >= 2 {
        resp.cluster_id = Some(str_bytes(ctx.cluster_id.clone()));
    }
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            ctx.authorized_operations(&session, &Resource::cluster(), &CLUSTER_OPERATIONS);
    }
    let with_ops = version >= 8 && req.include_topic_authorized_operations;
    let requested = match req.topics {
        None => None,
        // In v0 an empty list means every topic.
        Some(list) if version == 0 && list.is_empty() => None,
        Some(list) => Some(list),
    };
    let Some(requested) = requested else {
        resp.topics = ctx
            .log
            .topics()
            .iter()
            // Topics the client may not describe are left out, as Kafka does.
            .filter(|t| ctx.allows(&session, Operation::Describe, &topic_resource(&t.name)))
            .map(|t| describe(&ctx, &session, version, t, with_ops))
            .collect();
        return resp;
    };
    let auto_create =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    for wanted in requested {
        let topic = match wanted.name {
            Some(name) => {
                let name = name.0.to_string();
                let may_create = || {
                    ctx.allows(&session, Operation::Create, &Resource::cluster())
                        || ctx.allows(&session, Operation::Create, &topic_resource(&name))
                };
                match ctx.log.topic(&name) {
                    _ if !ctx.topic_authorized(&session, Operation::Describe, &name) => {
                        Err((name.clone(), None, RequestError::TopicAuthorizationFailed))
                    }
                    Some(t) => Ok(t),
                    None if auto_create && may_create() => {
                        create(&ctx, &name).await.map_err(|e| (name, None, e))
                    }
                    None => Err((name.clone(), None, Error::UnknownTopic(name).into())),
                }
            }
            None => ctx
                .log
                .topic_by_id(TopicId(wanted.topic_id))
                .filter(|t| ctx.topic_authorized(&session, Operation::Describe, &t.name))
                .ok_or((
                    String::new(),
                    Some(wanted.topic_id),
                    RequestError::UnknownTopicId(wanted.topic_id),
                )),
        };
        resp.topics.push(match topic {
            Ok(t) => describe(&ctx, &session, version, &t, with_ops),
            Err((name, id, e)) => {
                let mut t = MetadataResponseTopic::default();
                t.error_code = e.code();
                t.name = (!name.is_empty() || id.is_none()).then(|| topic_name(&name));
                if version >= 10 {
                    t.topic_id = id.unwrap_or_default();
                }
                t
            }
        });
    }
    resp
}

fn brokers(ctx: &Context, listener: &str, version: i16) -> Vec<MetadataResponseBroker> {
    ctx.live_brokers(listener)
        .into_iter()
        .map(|e| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(e.id);
            b.host = str_bytes(e.host);
            b.port = e.port;
            if version >= 1 {
                b.rack = e.rack.map(str_bytes);
            }
            b
        })
        .collect()
}

async fn create(ctx: &Context, name: &str) -> Result<TopicRecord, RequestError> {
    let req = CreateTopic {
        name: name.to_owned(),
        partitions: ctx.config.num_partitions,
        configs: BTreeMap::new(),
        validate_only: false,
    };
    match ctx.log.create_topic(req).await {
        Ok(t) => {
            // The controller assigns the new partitions in a moment; answering with their
            // leaders spares the client a round of LEADER_NOT_AVAILABLE.
            ctx.log
                .wait_for_leaders(t.id, std::time::Duration::from_secs(2))
                .await;
            Ok(t)
        }
        // Created concurrently by another request: describe it.
        Err(Error::TopicAlreadyExists(_)) => Ok(ctx
            .log
            .topic(name)
            .ok_or(Error::UnknownTopic(name.to_owned()))?),
        Err(e @ Error::InvalidTopic(_)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "auto-create failed");
            Err(e.into())
        }
    }
}

fn describe(
    ctx: &Context,
    session: &Session,
    version: i16,
    topic: &TopicRecord,
    with_ops: bool,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(topic_name(&topic.name));
    if version >= 10 {
        t.topic_id = wire_uuid(topic.id);
    }
    if with_ops {
        t.topic_authorized_operations =
            ctx.authorized_operations(session, &topic_resource(&topic.name), &TOPIC_OPERATIONS);
    }
    t.partitions = (0..topic.partitions)
        .map(|p| {
            let key = PartitionKey {
                topic: topic.id,
                partition: PartitionId(p),
            };
            let mut part = MetadataResponsePartition::default();
            part.partition_index = p;
            match ctx.log.partition_info(key) {
                Ok(info) => match info
                    .leader
                    .filter(|l| *l == ctx.log.broker_id() || ctx.cluster.broker(*l).is_some())
                {
                    Some(leader) => {
                        part.leader_id = BrokerId(leader.0);
                        part.replica_nodes = vec![BrokerId(leader.0)];
                        part.isr_nodes = vec![BrokerId(leader.0)];
                        if version >= 7 {
                            part.leader_epoch = info.leader_epoch.0;
                        }
                    }
                    None => {
                        part.error_code = RequestError::LeaderNotAvailable.code();
                        part.leader_id = BrokerId(-1);
                    }
                },
                Err(e) => {
                    part.error_code = RequestError::from(e).code();
                    part.leader_id = BrokerId(-1);
                }
            }
            part
        })
        .collect();
    t
}

fn topic_resource(name: &str) -> Resource {
    Resource::new(ResourceType::Topic, name)
}
