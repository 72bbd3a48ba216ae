//! AlterConfigs (replace a topic's configs) and IncrementalAlterConfigs (SET, DELETE, APPEND,
//! SUBTRACT per config). Broker configs are read-only.

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafscale_core::log::{AlterTopicConfigs, ConfigChange};
use kafscale_core::topic_config::ConfigOp;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::context::Context;
use crate::errors::{code_of, RequestError};

/// (error code, message) of one resource; code 0 = done.
type Outcome = Result<(), RequestError>;

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::Invalid(message.into())
}

/// Answer for anything but a topic.
fn not_a_topic(resource_type: i8, name: &str) -> Outcome {
    match resource_type {
        RESOURCE_BROKER => Err(invalid(format!(
            "broker configs are read-only (broker {}): they come from the broker's \
             configuration file, environment and flags, and change on restart",
            if name.is_empty() { "default" } else { name }
        ))),
        other => Err(invalid(format!("unsupported config resource type {other}"))),
    }
}

async fn alter(ctx: &Context, topic: String, change: ConfigChange, validate_only: bool) -> Outcome {
    let result = ctx
        .log
        .alter_topic_configs(AlterTopicConfigs {
            topic,
            change,
            validate_only,
        })
        .await;
    result.map(|_| ()).map_err(RequestError::from)
}

/// The first config named twice, if any.
fn duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = BTreeSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

pub async fn handle(
    ctx: Arc<Context>,
    _version: i16,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let outcome = if r.resource_type != RESOURCE_TOPIC {
            not_a_topic(r.resource_type, &name)
        } else if let Some(d) = duplicate(r.configs.iter().map(|c| c.name.as_str())) {
            Err(invalid(format!("config {d} is given more than once")))
        } else {
            // As Kafka: a null value leaves the config out (at its default).
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            alter(
                &ctx,
                name,
                ConfigChange::Replace(configs),
                req.validate_only,
            )
            .await
        };
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        out.error_code = code_of(&outcome);
        out.error_message = outcome.err().map(|e| str_bytes(e.to_string()));
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}

/// Kafka's operation codes.
fn op(code: i8, name: &str, value: Option<String>) -> Result<ConfigOp, RequestError> {
    let need = |v: Option<String>| {
        v.ok_or_else(|| invalid(format!("config {name}: a null value is not supported")))
    };
    match code {
        0 => Ok(ConfigOp::Set(need(value)?)),
        1 => Ok(ConfigOp::Delete),
        2 => Ok(ConfigOp::Append(need(value)?)),
        3 => Ok(ConfigOp::Subtract(need(value)?)),
        other => Err(invalid(format!("config {name}: unknown operation {other}"))),
    }
}

pub async fn handle_incremental(
    ctx: Arc<Context>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let outcome = if r.resource_type != RESOURCE_TOPIC {
            not_a_topic(r.resource_type, &name)
        } else if let Some(d) = duplicate(r.configs.iter().map(|c| c.name.as_str())) {
            Err(invalid(format!("config {d} is given more than once")))
        } else {
            let ops: Result<Vec<(String, ConfigOp)>, RequestError> = r
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_ref().map(|v| v.to_string());
                    Ok((c.name.to_string(), op(c.config_operation, &c.name, value)?))
                })
                .collect();
            match ops {
                Ok(ops) => {
                    alter(
                        &ctx,
                        name,
                        ConfigChange::Incremental(ops),
                        req.validate_only,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        };
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.error_code = code_of(&outcome);
        out.error_message = outcome.err().map(|e| str_bytes(e.to_string()));
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}
