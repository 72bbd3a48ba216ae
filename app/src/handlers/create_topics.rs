//! CreateTopics.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_core::log::CreateTopic;

use super::{describe_configs, str_bytes, topic_name, wire_uuid};
use crate::audit;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut out = CreatableTopicResult::default();
        out.name = topic_name(&name);
        // CREATE on the cluster, or on the topic (Kafka's rule).
        let allowed = ctx.allows(
            &session,
            Operation::Create,
            &kafscale_core::acl::Resource::cluster(),
        ) || ctx.topic_authorized(&session, Operation::Create, &name);
        let checked = if allowed {
            check_request(&ctx, &t)
        } else {
            Err(RequestError::TopicAuthorizationFailed)
        };
        if let Err(e) = checked {
            out.error_code = e.code();
            out.error_message = Some(str_bytes(e.to_string()));
            if version >= 5 {
                out.num_partitions = -1;
                out.replication_factor = -1;
            }
            resp.topics.push(out);
            continue;
        }
        let partitions = if !t.assignments.is_empty() {
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            ctx.config.num_partitions
        } else {
            t.num_partitions
        };
        // Durability comes from object storage, so any replication factor is honoured as
        // "replicated"; only nonsense values are refused.
        if t.replication_factor == 0 || t.replication_factor < -1 {
            let e = RequestError::InvalidReplicationFactor;
            out.error_code = e.code();
            if version >= 1 {
                out.error_message = Some(str_bytes(e.to_string()));
            }
            resp.topics.push(out);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in t.configs {
            if let Some(v) = c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let result = ctx
            .log
            .create_topic(CreateTopic {
                name: name.clone(),
                partitions,
                configs,
                validate_only: req.validate_only,
            })
            .await;
        match result {
            Ok(record) => {
                if !req.validate_only {
                    // Leaders come from the controller in a moment; a producer that starts
                    // right after this answer finds them.
                    ctx.log
                        .wait_for_leaders(record.id, std::time::Duration::from_secs(2))
                        .await;
                }
                if version >= 5 {
                    out.num_partitions = record.partitions;
                    out.replication_factor = 1;
                    out.configs = Some(
                        describe_configs::topic_entries(&ctx, &record)
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = str_bytes(e.name);
                                c.value = Some(str_bytes(e.value));
                                c.read_only = e.read_only;
                                c.config_source = e.source;
                                c
                            })
                            .collect(),
                    );
                }
                if version >= 7 {
                    out.topic_id = wire_uuid(record.id);
                }
            }
            Err(e) => {
                let e = RequestError::from(e);
                out.error_code = e.code();
                if version >= 1 {
                    out.error_message = Some(str_bytes(e.to_string()));
                }
                if version >= 5 {
                    out.num_partitions = -1;
                    out.replication_factor = -1;
                }
            }
        }
        resp.topics.push(out);
    }
    if !req.validate_only {
        let outcomes = resp
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.error_code));
        audit::changes(&ctx, &session, ApiKey::CreateTopics, "topic", outcomes);
    }
    resp
}

/// Checks what the log does not: config entries (no nulls, no duplicates) and manual
/// partition assignments (only with default counts, naming live brokers).
fn check_request(ctx: &Context, t: &CreatableTopic) -> Result<(), RequestError> {
    let mut seen = std::collections::BTreeSet::new();
    for c in &t.configs {
        if c.value.is_none() {
            return Err(RequestError::InvalidConfig(format!(
                "config {}: a null value is not supported",
                c.name.as_str()
            )));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(RequestError::Invalid(format!(
                "config {} is given more than once",
                c.name.as_str()
            )));
        }
    }
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(RequestError::Invalid(
                "with manual assignments, partition count and replication factor must be -1"
                    .to_owned(),
            ));
        }
        let me = ctx.log.broker_id().0;
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32 {
                return Err(RequestError::InvalidReplicaAssignment(
                    "assignments must cover partitions 0..n in order".to_owned(),
                ));
            }
            if let Some(b) = a.broker_ids.iter().find(|b| b.0 != me) {
                return Err(RequestError::InvalidReplicaAssignment(format!(
                    "unknown broker {} in the assignment",
                    b.0
                )));
            }
        }
    }
    Ok(())
}
