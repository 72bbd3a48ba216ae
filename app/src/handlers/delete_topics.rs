//! DeleteTopics, by name (all versions) or by id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse};
use std::sync::Arc;

use kafscale_core::TopicId;

use super::{str_bytes, topic_name, wire_uuid};
use crate::audit;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut out = DeletableTopicResult::default();
        let name = match name {
            Some(n) => Some(n),
            None => ctx.log.topic_by_id(TopicId(id)).map(|t| t.name),
        };
        let Some(name) = name else {
            out.error_code = RequestError::UnknownTopicId(id).code();
            out.topic_id = id;
            resp.responses.push(out);
            continue;
        };
        out.name = Some(topic_name(&name));
        let deleted = if ctx.topic_authorized(&session, Operation::Delete, &name) {
            ctx.log
                .delete_topic(&name)
                .await
                .map_err(RequestError::from)
        } else {
            Err(RequestError::TopicAuthorizationFailed)
        };
        match deleted {
            Ok(record) => {
                if version >= 6 {
                    out.topic_id = wire_uuid(record.id);
                }
            }
            Err(e) => {
                out.error_code = e.code();
                if version >= 5 {
                    out.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        resp.responses.push(out);
    }
    let outcomes = resp.responses.iter().map(|t| {
        let name = t.name.as_ref().map_or("", |n| n.0.as_str());
        (name, t.error_code)
    });
    audit::changes(&ctx, &session, ApiKey::DeleteTopics, "topic", outcomes);
    resp
}
