//! DescribeConfigs: a topic's configs (set ones and defaults, with Kafka's names and sources),
//! the broker's read-only configs from its running configuration, and the dynamic broker
//! configs AlterConfigs keeps (recorded only; their documentation says so).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use std::sync::Arc;

use kafscale_core::broker_config::{BrokerScope, BROKER_DYNAMIC_CONFIGS};
use kafscale_core::log::LogConfig;
use kafscale_core::settings::{self, FIXED_CONFIGS, SETTINGS};
use kafscale_core::topic::TopicRecord;
use kafscale_core::topic_config::{ConfigType, TOPIC_CONFIGS};
use kafscale_core::Error;

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// Kafka's config resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One config as DescribeConfigs (and CreateTopics v5+) report it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    /// Kafka's numbering: BOOLEAN=1, STRING=2, INT=3, LONG=5, DOUBLE=6, LIST=7 (0 = unknown).
    pub config_type: i8,
    pub documentation: Option<&'static str>,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, String, i8)>,
}

fn type_code(t: ConfigType) -> i8 {
    match t {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

/// Every config of a topic: those it sets (DYNAMIC_TOPIC_CONFIG) and the defaults
/// (DEFAULT_CONFIG, or STATIC_BROKER_CONFIG where the broker's setting provides it).
pub fn topic_entries(ctx: &Context, topic: &TopicRecord) -> Vec<ConfigEntry> {
    let log = ctx.log.config();
    let mut out: Vec<ConfigEntry> = TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let default = d.default_value(log);
            let default_source = if d.broker_overrides_default(log) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let set = topic.configs.get(d.name);
            let mut synonyms = Vec::new();
            if let Some(v) = set {
                synonyms.push((d.name.to_owned(), v.clone(), SOURCE_DYNAMIC_TOPIC));
            }
            synonyms.push((
                d.broker_synonym.unwrap_or(d.name).to_owned(),
                default.clone(),
                default_source,
            ));
            ConfigEntry {
                name: d.name.to_owned(),
                value: set.cloned().unwrap_or(default),
                source: if set.is_some() {
                    SOURCE_DYNAMIC_TOPIC
                } else {
                    default_source
                },
                read_only: false,
                config_type: type_code(d.config_type),
                documentation: Some(d.documentation),
                synonyms,
            }
        })
        .collect();
    // Configs recorded before names were checked are still shown as they are.
    for (name, value) in &topic.configs {
        if kafscale_core::topic_config::find(name).is_none() {
            out.push(ConfigEntry {
                name: name.clone(),
                value: value.clone(),
                source: SOURCE_DYNAMIC_TOPIC,
                read_only: false,
                config_type: 0,
                documentation: None,
                synonyms: vec![(name.clone(), value.clone(), SOURCE_DYNAMIC_TOPIC)],
            });
        }
    }
    out
}

/// The broker's configs (read-only: they come from its configuration file, environment and
/// flags): the registry's settings that Kafka tools know, with their running values, and
/// Kafka's configs that have one fixed value here. A value other than the built-in default
/// is STATIC_BROKER_CONFIG.
pub fn broker_entries(ctx: &Context) -> Vec<ConfigEntry> {
    let values = &ctx.config.values;
    let entry =
        |name: &str, value: String, t: ConfigType, doc: &'static str, source: i8| ConfigEntry {
            name: name.to_owned(),
            synonyms: vec![(name.to_owned(), value.clone(), source)],
            value,
            source,
            read_only: true,
            config_type: type_code(t),
            documentation: Some(doc),
        };
    let mut out: Vec<ConfigEntry> = SETTINGS
        .iter()
        .filter(|s| s.described)
        .map(|s| {
            // The id is the registered one, which may have been allocated.
            let value = if s.name == settings::BROKER_ID.name {
                ctx.log.broker_id().0.to_string()
            } else {
                values
                    .effective(s)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            let is_default = match s.default_value() {
                Some(d) => d.to_string() == value,
                None => !values.is_set(s),
            };
            let source = if is_default {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            entry(s.name, value, s.config_type(), s.doc, source)
        })
        .collect();
    // Where clients reach each listener, in Kafka's form.
    let advertised = &settings::ADVERTISED_LISTENERS;
    let listeners: Vec<String> = ctx
        .endpoints
        .iter()
        .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
        .collect();
    out.push(entry(
        advertised.name,
        listeners.join(","),
        ConfigType::String,
        advertised.doc,
        if values.is_set(advertised) || values.is_set(&settings::ADVERTISED_LISTENER) {
            SOURCE_STATIC_BROKER
        } else {
            SOURCE_DEFAULT
        },
    ));
    out.extend(FIXED_CONFIGS.iter().map(|f| {
        entry(
            f.name,
            f.value.to_owned(),
            f.config_type,
            f.doc,
            SOURCE_DEFAULT,
        )
    }));
    out
}

/// The dynamic broker configs (`kafscale_core::broker_config`): each with the most specific
/// value set (this broker's, then every broker's default), else Kafka's default.
async fn dynamic_broker_entries(ctx: &Context) -> Result<Vec<ConfigEntry>, RequestError> {
    let meta = ctx.meta.as_ref();
    let own =
        kafscale_core::broker_config::get(meta, BrokerScope::Broker(ctx.log.broker_id())).await?;
    let cluster = kafscale_core::broker_config::get(meta, BrokerScope::ClusterDefault).await?;
    Ok(BROKER_DYNAMIC_CONFIGS
        .iter()
        .map(|d| {
            let default = d.default_value(&LogConfig::default());
            let mut synonyms: Vec<(String, String, i8)> = [
                (own.get(d.name), SOURCE_DYNAMIC_BROKER),
                (cluster.get(d.name), SOURCE_DYNAMIC_DEFAULT_BROKER),
            ]
            .into_iter()
            .filter_map(|(v, source)| Some((d.name.to_owned(), v?.clone(), source)))
            .collect();
            synonyms.push((d.name.to_owned(), default, SOURCE_DEFAULT));
            let (_, value, source) = synonyms[0].clone();
            ConfigEntry {
                name: d.name.to_owned(),
                value,
                source,
                read_only: false,
                config_type: type_code(d.config_type),
                documentation: Some(d.documentation),
                synonyms,
            }
        })
        .collect())
}

/// Whether a broker resource name addresses this broker ("" = the cluster-wide defaults).
pub fn is_this_broker(ctx: &Context, name: &str) -> bool {
    name.is_empty() || name == ctx.log.broker_id().0.to_string()
}

pub async fn handle(
    ctx: Arc<Context>,
    session: Arc<Session>,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    let synonyms = req.include_synonyms;
    let documentation = version >= 3 && req.include_documentation;
    for r in req.resources {
        let name = r.resource_name.to_string();
        let mut out = DescribeConfigsResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let entries = match r.resource_type {
            RESOURCE_TOPIC
                if !ctx.topic_authorized(&session, Operation::DescribeConfigs, &name) =>
            {
                Err(RequestError::TopicAuthorizationFailed)
            }
            RESOURCE_BROKER if !ctx.cluster_authorized(&session, Operation::DescribeConfigs) => {
                Err(RequestError::ClusterAuthorizationFailed)
            }
            RESOURCE_TOPIC => match ctx.log.topic(&name) {
                Some(t) => Ok(topic_entries(&ctx, &t)),
                None => Err(RequestError::from(Error::UnknownTopic(name))),
            },
            RESOURCE_BROKER if is_this_broker(&ctx, &name) => {
                dynamic_broker_entries(&ctx).await.map(|dynamic| {
                    let mut entries = broker_entries(&ctx);
                    entries.extend(dynamic);
                    entries
                })
            }
            RESOURCE_BROKER => Err(RequestError::Invalid(format!(
                "unexpected broker id {name}: this is broker {}",
                ctx.log.broker_id()
            ))),
            other => Err(RequestError::Invalid(format!(
                "unsupported config resource type {other}"
            ))),
        };
        match entries {
            Ok(entries) => {
                // Null or empty: every config (as Kafka).
                let keys: Option<Vec<String>> = r
                    .configuration_keys
                    .filter(|k| !k.is_empty())
                    .map(|k| k.iter().map(|s| s.to_string()).collect());
                out.configs = entries
                    .into_iter()
                    .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                    .map(|e| to_wire(e, version, synonyms, documentation))
                    .collect();
            }
            Err(e) => {
                out.error_code = e.code();
                out.error_message = Some(str_bytes(e.to_string()));
            }
        }
        resp.results.push(out);
    }
    resp
}

fn to_wire(
    e: ConfigEntry,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default();
    out.name = str_bytes(e.name);
    out.value = Some(str_bytes(e.value));
    out.read_only = e.read_only;
    out.config_source = e.source;
    out.is_sensitive = false;
    if synonyms {
        out.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                let mut s = DescribeConfigsSynonym::default();
                s.name = str_bytes(name);
                s.value = Some(str_bytes(value));
                s.source = source;
                s
            })
            .collect();
    }
    // Null unless asked for (v3+).
    out.documentation = None;
    if version >= 3 {
        out.config_type = e.config_type;
        if documentation {
            out.documentation = e.documentation.map(str_bytes);
        }
    }
    out
}
