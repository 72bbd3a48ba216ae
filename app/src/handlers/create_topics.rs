//! CreateTopics.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_core::log::CreateTopic;

use super::{str_bytes, topic_name, wire_uuid};
use crate::context::Context;
use crate::errors::{self, codes};

pub async fn handle(
    ctx: Arc<Context>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut out = CreatableTopicResult::default();
        out.name = topic_name(&name);
        let partitions = if t.num_partitions == -1 {
            ctx.config.num_partitions
        } else {
            t.num_partitions
        };
        // Durability comes from object storage, so any replication factor is honoured as
        // "replicated"; only nonsense values are refused.
        if t.replication_factor == 0 || t.replication_factor < -1 {
            out.error_code = codes::INVALID_REPLICATION_FACTOR;
            if version >= 1 {
                out.error_message = Some(str_bytes("replication factor must be -1 or positive"));
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
                    out.configs = Some(Vec::new());
                }
                if version >= 7 {
                    out.topic_id = wire_uuid(record.id);
                }
            }
            Err(e) => {
                out.error_code = errors::code(&e);
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
    resp
}
