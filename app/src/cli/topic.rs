//! `kafscale topic ...`: CreateTopics, Metadata + ListOffsets + DescribeConfigs,
//! IncrementalAlterConfigs, DeleteTopics.

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
};
use serde_json::json;

use super::client::{
    backoff, str_bytes, topic_name, topics_of, CliError, Client, OffsetSpec, ATTEMPTS,
};
use super::table::{fields, Table};
use super::{parse_key_value, Output};

/// Resource type of a topic in DescribeConfigs and IncrementalAlterConfigs.
const TOPIC_RESOURCE: i8 = 2;
const NOT_CONTROLLER: i16 = 41;
const REQUEST_TIMEOUT_MS: i32 = 30_000;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic
    Create(CreateArgs),
    /// List topics
    List,
    /// Partitions, leaders, offsets and configs of a topic
    Describe { name: String },
    /// Set or delete topic configs (IncrementalAlterConfigs)
    Alter(AlterArgs),
    /// Delete a topic
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub name: String,
    /// Number of partitions [default: the broker's num.partitions]
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor [default: the broker's]
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// A topic config, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["config", "delete_config"])))]
pub struct AlterArgs {
    pub name: String,
    /// Set a config, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Remove a config so the default applies again (repeatable)
    #[arg(long, value_name = "KEY")]
    pub delete_config: Vec<String>,
}

pub async fn run(client: &mut Client, cmd: TopicCommand) -> Result<Output, CliError> {
    match cmd {
        TopicCommand::Create(args) => create(client, &args).await,
        TopicCommand::List => list(client).await,
        TopicCommand::Describe { name } => describe(client, &name).await,
        TopicCommand::Alter(args) => alter(client, &args).await,
        TopicCommand::Delete { name } => delete(client, &name).await,
    }
}

async fn create(client: &mut Client, args: &CreateArgs) -> Result<Output, CliError> {
    let mut topic = CreatableTopic::default();
    topic.name = topic_name(&args.name);
    topic.num_partitions = args.partitions.unwrap_or(-1);
    topic.replication_factor = args.replication_factor.unwrap_or(-1);
    topic.configs = args
        .config
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = str_bytes(k);
            c.value = Some(str_bytes(v));
            c
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![topic];
    req.timeout_ms = REQUEST_TIMEOUT_MS;
    for attempt in 0..ATTEMPTS {
        let conn = client.controller().await?;
        let v = conn.version(ApiKey::CreateTopics, 2..=7, "topic create")?;
        let resp = conn.call(v, &req).await?;
        let Some(t) = resp.topics.into_iter().next() else {
            return Err(CliError::Invalid("empty CreateTopics response".into()));
        };
        if t.error_code == NOT_CONTROLLER && attempt + 1 < ATTEMPTS {
            client.controller_id = None;
            backoff(attempt).await;
            continue;
        }
        if t.error_code != 0 {
            return Err(CliError::kafka(
                format!("cannot create topic {}", args.name),
                t.error_code,
                t.error_message.as_ref(),
            ));
        }
        let partitions = if v >= 5 {
            t.num_partitions
        } else {
            args.partitions.unwrap_or(-1)
        };
        let id = (v >= 7).then(|| t.topic_id.to_string());
        let shown = if partitions >= 0 {
            format!(" with {partitions} partition{}", plural(partitions))
        } else {
            String::new()
        };
        return Ok(Output {
            text: format!("created topic {}{shown}\n", args.name),
            json: json!({
                "topic": args.name,
                "partitions": (partitions >= 0).then_some(partitions),
                "topic_id": id,
            }),
        });
    }
    Err(CliError::Invalid("no controller answered".into()))
}

fn plural(n: i32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

async fn list(client: &mut Client) -> Result<Output, CliError> {
    let topics = topics_of(client.metadata(None).await?);
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "TOPIC ID"]);
    let mut items = Vec::new();
    for t in &topics {
        table.row(vec![
            t.name.clone(),
            t.partitions.len().to_string(),
            t.id.to_string(),
        ]);
        items.push(json!({
            "name": t.name,
            "partitions": t.partitions.len(),
            "topic_id": t.id.to_string(),
            "internal": t.internal,
        }));
    }
    let text = if topics.is_empty() {
        "no topics\n".to_owned()
    } else {
        table.render()
    };
    Ok(Output {
        text,
        json: json!({ "topics": items }),
    })
}

/// A topic config as DescribeConfigs reports it.
struct ConfigEntry {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic broker",
        3 => "dynamic default broker",
        4 => "static broker",
        5 => "default",
        6 => "dynamic broker logger",
        _ => "unknown",
    }
}

/// The topic's configs, or `None` when the broker does not serve DescribeConfigs.
async fn describe_configs(
    client: &mut Client,
    name: &str,
) -> Result<Option<Vec<ConfigEntry>>, CliError> {
    let conn = client.bootstrap();
    if !conn.supports(ApiKey::DescribeConfigs) {
        return Ok(None);
    }
    let v = conn.version(ApiKey::DescribeConfigs, 1..=4, "topic describe")?;
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = TOPIC_RESOURCE;
    resource.resource_name = str_bytes(name);
    resource.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![resource];
    let resp = conn.call(v, &req).await?;
    let Some(result) = resp.results.into_iter().next() else {
        return Err(CliError::Invalid("empty DescribeConfigs response".into()));
    };
    if result.error_code != 0 {
        return Err(CliError::kafka(
            format!("configs of topic {name}"),
            result.error_code,
            result.error_message.as_ref(),
        ));
    }
    let mut configs: Vec<ConfigEntry> = result
        .configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: source_name(c.config_source),
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(configs))
}

async fn describe(client: &mut Client, name: &str) -> Result<Output, CliError> {
    let info = client.topic(name).await?;
    let ids: Vec<i32> = info.partitions.iter().map(|p| p.id).collect();
    let earliest = client
        .list_offsets(name, &ids, OffsetSpec::Earliest)
        .await?;
    let latest = client.list_offsets(name, &ids, OffsetSpec::Latest).await?;
    let configs = describe_configs(client, name).await?;

    let opt = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "LEADER EPOCH",
        "EARLIEST",
        "LATEST",
        "REPLICAS",
        "ISR",
    ]);
    let mut parts = Vec::new();
    for p in &info.partitions {
        let (e, l) = (earliest.get(&p.id).copied(), latest.get(&p.id).copied());
        table.row(vec![
            p.id.to_string(),
            p.leader.map_or("none".to_owned(), |l| l.to_string()),
            p.leader_epoch.to_string(),
            opt(e),
            opt(l),
            list(&p.replicas),
            list(&p.isr),
        ]);
        parts.push(json!({
            "partition": p.id,
            "leader": p.leader,
            "leader_epoch": p.leader_epoch,
            "earliest_offset": e,
            "latest_offset": l,
            "replicas": p.replicas,
            "isr": p.isr,
        }));
    }
    let mut text = fields(&[
        ("topic", info.name.clone()),
        ("topic id", info.id.to_string()),
        ("partitions", info.partitions.len().to_string()),
    ]);
    text.push('\n');
    text.push_str(&table.render());
    text.push('\n');
    let configs_json = match &configs {
        None => {
            text.push_str("configs: not shown (the broker does not support DescribeConfigs)\n");
            serde_json::Value::Null
        }
        Some(configs) => {
            let mut t = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
            let mut map = serde_json::Map::new();
            for c in configs {
                let shown = if c.sensitive {
                    "(sensitive)".to_owned()
                } else {
                    c.value.clone().unwrap_or_else(|| "-".to_owned())
                };
                t.row(vec![c.name.clone(), shown, c.source.to_owned()]);
                map.insert(
                    c.name.clone(),
                    json!({
                        "value": if c.sensitive { None } else { c.value.clone() },
                        "source": c.source,
                        "read_only": c.read_only,
                        "sensitive": c.sensitive,
                    }),
                );
            }
            if configs.is_empty() {
                text.push_str("configs: none\n");
            } else {
                text.push_str(&t.render());
            }
            serde_json::Value::Object(map)
        }
    };
    Ok(Output {
        text,
        json: json!({
            "name": info.name,
            "topic_id": info.id.to_string(),
            "internal": info.internal,
            "partitions": parts,
            "configs": configs_json,
        }),
    })
}

async fn alter(client: &mut Client, args: &AlterArgs) -> Result<Output, CliError> {
    // Fail on an unknown topic with the same message as the other commands.
    client.topic(&args.name).await?;
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::IncrementalAlterConfigs, 0..=1, "topic alter")?;
    let mut configs = Vec::new();
    for (k, val) in &args.config {
        let mut c = AlterableConfig::default();
        c.name = str_bytes(k);
        c.config_operation = 0; // SET
        c.value = Some(str_bytes(val));
        configs.push(c);
    }
    for k in &args.delete_config {
        let mut c = AlterableConfig::default();
        c.name = str_bytes(k);
        c.config_operation = 1; // DELETE
        c.value = None;
        configs.push(c);
    }
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = TOPIC_RESOURCE;
    resource.resource_name = str_bytes(&args.name);
    resource.configs = configs;
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![resource];
    req.validate_only = false;
    let resp = conn.call(v, &req).await?;
    let Some(r) = resp.responses.into_iter().next() else {
        return Err(CliError::Invalid(
            "empty IncrementalAlterConfigs response".into(),
        ));
    };
    if r.error_code != 0 {
        return Err(CliError::kafka(
            format!("cannot alter topic {}", args.name),
            r.error_code,
            r.error_message.as_ref(),
        ));
    }
    let mut changes: Vec<String> = args
        .config
        .iter()
        .map(|(k, v)| format!("set {k}={v}"))
        .collect();
    changes.extend(args.delete_config.iter().map(|k| format!("deleted {k}")));
    Ok(Output {
        text: format!("altered topic {}: {}\n", args.name, changes.join(", ")),
        json: json!({
            "topic": args.name,
            "set": args.config.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "deleted": args.delete_config,
        }),
    })
}

async fn delete(client: &mut Client, name: &str) -> Result<Output, CliError> {
    for attempt in 0..ATTEMPTS {
        let conn = client.controller().await?;
        let v = conn.version(ApiKey::DeleteTopics, 1..=6, "topic delete")?;
        let mut req = DeleteTopicsRequest::default();
        if v >= 6 {
            let mut t = DeleteTopicState::default();
            t.name = Some(topic_name(name));
            req.topics = vec![t];
        } else {
            req.topic_names = vec![topic_name(name)];
        }
        req.timeout_ms = REQUEST_TIMEOUT_MS;
        let resp = conn.call(v, &req).await?;
        let Some(r) = resp.responses.into_iter().next() else {
            return Err(CliError::Invalid("empty DeleteTopics response".into()));
        };
        match r.error_code {
            0 => {
                return Ok(Output {
                    text: format!("deleted topic {name}\n"),
                    json: json!({ "topic": name, "deleted": true }),
                })
            }
            3 => return Err(CliError::UnknownTopic(name.to_owned())),
            NOT_CONTROLLER if attempt + 1 < ATTEMPTS => {
                client.controller_id = None;
                backoff(attempt).await;
            }
            code => {
                return Err(CliError::kafka(
                    format!("cannot delete topic {name}"),
                    code,
                    r.error_message.as_ref(),
                ))
            }
        }
    }
    Err(CliError::Invalid("no controller answered".into()))
}
