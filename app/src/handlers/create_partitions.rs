//! CreatePartitions: grows topics (never shrinks them).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use std::collections::BTreeSet;
use std::sync::Arc;

use kafscale_core::log::CreatePartitions;
use kafscale_core::Error;

use super::{str_bytes, topic_name};
use crate::audit;
use crate::context::Context;
use crate::errors::{code_of, RequestError};
use crate::server::session::Session;
use kafscale_core::acl::Operation;

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    for t in req.topics {
        let name = t.name.0.to_string();
        let outcome = if duplicates.contains(&name) {
            Err(RequestError::Invalid(format!(
                "topic {name} is named more than once"
            )))
        } else if !ctx.topic_authorized(&session, Operation::Alter, &name) {
            Err(RequestError::TopicAuthorizationFailed)
        } else {
            grow(
                &ctx,
                &name,
                t.count,
                t.assignments.as_deref(),
                req.validate_only,
            )
            .await
        };
        let mut out = CreatePartitionsTopicResult::default();
        out.name = topic_name(&name);
        out.error_code = code_of(&outcome);
        out.error_message = outcome.err().map(|e| str_bytes(e.to_string()));
        resp.results.push(out);
    }
    if !req.validate_only {
        let outcomes = resp
            .results
            .iter()
            .map(|t| (t.name.0.as_str(), t.error_code));
        audit::changes(
            &ctx,
            &session,
            ApiKey::CreatePartitions,
            "partitions",
            outcomes,
        );
    }
    resp
}

async fn grow(
    ctx: &Context,
    name: &str,
    count: i32,
    assignments: Option<
        &[kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment],
    >,
    validate_only: bool,
) -> Result<(), RequestError> {
    let Some(current) = ctx.log.topic(name) else {
        return Err(Error::UnknownTopic(name.to_owned()).into());
    };
    if let Some(assignments) = assignments {
        // Every broker reads the same storage: an assignment may only name live brokers,
        // and there must be one per new partition, as Kafka requires.
        let me = ctx.log.broker_id().0;
        let added = i64::from(count) - i64::from(current.partitions);
        if added > 0 && assignments.len() as i64 != added {
            return Err(RequestError::InvalidReplicaAssignment(format!(
                "{} assignments given for {added} new partitions",
                assignments.len()
            )));
        }
        if let Some(bad) = assignments
            .iter()
            .flat_map(|a| a.broker_ids.iter())
            .find(|b| b.0 != me)
        {
            return Err(RequestError::InvalidReplicaAssignment(format!(
                "unknown broker {} in the assignment",
                bad.0
            )));
        }
    }
    let result = ctx
        .log
        .create_partitions(CreatePartitions {
            topic: name.to_owned(),
            count,
            validate_only,
        })
        .await;
    match result {
        Ok(topic) => {
            if !validate_only {
                // The controller assigns the new partitions in a moment.
                ctx.log
                    .wait_for_leaders(topic.id, std::time::Duration::from_secs(2))
                    .await;
            }
            Ok(())
        }
        Err(Error::InvalidPartitions(n)) if n > 0 && n <= current.partitions => {
            Err(RequestError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count {n} must be larger",
                current.partitions
            )))
        }
        Err(e) => Err(e.into()),
    }
}
