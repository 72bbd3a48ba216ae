//! AlterConfigs (replace a topic's configs) and IncrementalAlterConfigs (SET, DELETE, APPEND,
//! SUBTRACT per config), for topics and for the broker's dynamic configs
//! (`kafscale_core::broker_config`: kept and shown, applied by nothing). The broker's own
//! settings are read-only.

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafscale_core::broker_config::{self, BrokerScope};
use kafscale_core::log::{AlterTopicConfigs, ConfigChange};
use kafscale_core::topic_config::ConfigOp;
use kafscale_core::types::BrokerId;
use kafscale_core::Error;

use super::describe_configs::{is_this_broker, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::audit;
use crate::context::Context;
use crate::errors::{code_of, RequestError};
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// What became of one resource.
type Outcome = Result<(), RequestError>;

/// Alters each resource of a request and answers for each. Both APIs carry the same fields
/// in types of their own; `$change` builds the change from the resource `$r`.
macro_rules! alter_each {
    ($ctx:ident, $session:ident, $api:expr, $req:ident, $resp:ty, $out:ty, |$r:ident| $change:expr) => {{
        let mut resp = <$resp>::default();
        for $r in $req.resources {
            let names = $r.configs.iter().map(|c| c.name.as_str());
            let name = $r.resource_name.to_string();
            let outcome = alter(
                &$ctx,
                &$session,
                $r.resource_type,
                name,
                names,
                $req.validate_only,
                || $change,
            )
            .await;
            let mut out = <$out>::default();
            out.error_code = code_of(&outcome);
            out.error_message = outcome.err().map(|e| str_bytes(e.to_string()));
            out.resource_type = $r.resource_type;
            out.resource_name = $r.resource_name;
            resp.responses.push(out);
        }
        if !$req.validate_only {
            // A broker's configs are told apart from a topic of the same name.
            for (broker, what) in [(false, "config"), (true, "broker config")] {
                let outcomes = resp
                    .responses
                    .iter()
                    .filter(|r| (r.resource_type == RESOURCE_BROKER) == broker)
                    .map(|r| (r.resource_name.as_str(), r.error_code));
                audit::changes(&$ctx, &$session, $api, what, outcomes);
            }
        }
        resp
    }};
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::Invalid(message.into())
}

/// One resource of either request: refused if no alteration serves it, else altered by
/// the change `change` builds from its configs.
async fn alter<'a>(
    ctx: &Context,
    session: &Session,
    resource_type: i8,
    name: String,
    configs: impl Iterator<Item = &'a str>,
    validate_only: bool,
    change: impl FnOnce() -> Result<ConfigChange, RequestError>,
) -> Outcome {
    match resource_type {
        RESOURCE_TOPIC => {
            if !ctx.topic_authorized(session, Operation::AlterConfigs, &name) {
                return Err(RequestError::TopicAuthorizationFailed);
            }
            no_duplicates(configs)?;
            ctx.log
                .alter_topic_configs(AlterTopicConfigs {
                    topic: name,
                    change: change()?,
                    validate_only,
                })
                .await?;
        }
        RESOURCE_BROKER => {
            if !ctx.cluster_authorized(session, Operation::AlterConfigs) {
                return Err(RequestError::ClusterAuthorizationFailed);
            }
            let scope = broker_scope(ctx, &name)?;
            no_duplicates(configs)?;
            broker_config::alter(ctx.meta.as_ref(), scope, &change()?, validate_only)
                .await
                .map_err(|e| match e {
                    // As Kafka: a broker config it cannot take is an invalid request.
                    Error::InvalidConfig { .. } => invalid(e.to_string()),
                    other => RequestError::from(other),
                })?;
        }
        other => return Err(invalid(format!("unsupported config resource type {other}"))),
    }
    Ok(())
}

/// The broker resource's name: "" (every broker's default) or this broker's id (another
/// broker's configs are altered through that broker, as Kafka's clients do).
fn broker_scope(ctx: &Context, name: &str) -> Result<BrokerScope, RequestError> {
    if name.is_empty() {
        return Ok(BrokerScope::ClusterDefault);
    }
    match name.parse::<i32>() {
        Ok(id) if is_this_broker(ctx, name) => Ok(BrokerScope::Broker(BrokerId(id))),
        _ => Err(invalid(format!(
            "unexpected broker id {name}: this is broker {}",
            ctx.log.broker_id()
        ))),
    }
}

/// Refuses a config named twice.
fn no_duplicates<'a>(mut configs: impl Iterator<Item = &'a str>) -> Result<(), RequestError> {
    let mut seen = BTreeSet::new();
    match configs.find(|n| !seen.insert(*n)) {
        Some(d) => Err(invalid(format!("config {d} is given more than once"))),
        None => Ok(()),
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    alter_each!(
        ctx,
        session,
        ApiKey::AlterConfigs,
        req,
        AlterConfigsResponse,
        alter_configs_response::AlterConfigsResourceResponse,
        |r| {
            // As Kafka: a null value leaves the config out (at its default).
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            Ok(ConfigChange::Replace(configs))
        }
    )
}

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
    session: Arc<Session>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    alter_each!(
        ctx,
        session,
        ApiKey::IncrementalAlterConfigs,
        req,
        IncrementalAlterConfigsResponse,
        incremental_alter_configs_response::AlterConfigsResourceResponse,
        |r| {
            let ops = r
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_ref().map(|v| v.to_string());
                    Ok((c.name.to_string(), op(c.config_operation, &c.name, value)?))
                })
                .collect::<Result<Vec<(String, ConfigOp)>, RequestError>>()?;
            Ok(ConfigChange::Incremental(ops))
        }
    )
}
