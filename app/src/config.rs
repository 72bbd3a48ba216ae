//! Configuration: defaults < TOML file < `KAFSCALE_*` environment < command-line flags.
//!
//! Every key is a dotted name (Kafka's where Kafka has one). Each layer is flattened to dotted
//! keys, later layers override earlier ones, and the result is deserialised into [`RawConfig`],
//! which rejects unknown keys, then validated into the typed [`Config`].

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kafscale_adapters::RetryPolicy;
use kafscale_core::cluster::ClusterConfig;
use kafscale_core::log::LogConfig;
use kafscale_core::BrokerId;

pub const ENV_PREFIX: &str = "KAFSCALE_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment: {0}")]
    Env(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Keys exactly as a user writes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    listen: Option<String>,
    #[serde(rename = "advertised.listener")]
    advertised_listener: Option<String>,
    #[serde(rename = "http.listen")]
    http_listen: Option<String>,
    #[serde(rename = "data.dir")]
    data_dir: Option<PathBuf>,
    ephemeral: Option<bool>,
    #[serde(rename = "object.store")]
    object_store: Option<String>,
    metadata: Option<String>,
    #[serde(rename = "broker.id")]
    broker_id: Option<i32>,
    #[serde(rename = "broker.rack")]
    broker_rack: Option<String>,
    #[serde(rename = "broker.session.timeout.ms")]
    broker_session_timeout_ms: Option<u64>,
    #[serde(rename = "controller.max.moves")]
    controller_max_moves: Option<u64>,
    #[serde(rename = "shutdown.drain.timeout.ms")]
    shutdown_drain_timeout_ms: Option<u64>,
    #[serde(rename = "auto.create.topics.enable")]
    auto_create_topics: Option<bool>,
    #[serde(rename = "num.partitions")]
    num_partitions: Option<i32>,
    #[serde(rename = "message.max.bytes")]
    message_max_bytes: Option<u64>,
    #[serde(rename = "socket.request.max.bytes")]
    socket_request_max_bytes: Option<u64>,
    #[serde(rename = "flush.ms")]
    flush_ms: Option<u64>,
    #[serde(rename = "flush.bytes")]
    flush_bytes: Option<u64>,
    #[serde(rename = "cache.bytes")]
    cache_bytes: Option<u64>,
    #[serde(rename = "produce.buffer.max.bytes")]
    produce_buffer_max_bytes: Option<u64>,
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    group_initial_rebalance_delay_ms: Option<u64>,
    #[serde(rename = "log.retention.ms")]
    log_retention_ms: Option<i64>,
    #[serde(rename = "log.retention.bytes")]
    log_retention_bytes: Option<i64>,
    #[serde(rename = "log.retention.check.interval.ms")]
    log_retention_check_interval_ms: Option<u64>,
    #[serde(rename = "log.segment.bytes")]
    log_segment_bytes: Option<u64>,
    #[serde(rename = "segment.block.bytes")]
    segment_block_bytes: Option<u64>,
    #[serde(rename = "read.ahead.bytes")]
    read_ahead_bytes: Option<u64>,
    #[serde(rename = "compaction.min.bytes")]
    compaction_min_bytes: Option<u64>,
    #[serde(rename = "gc.interval.ms")]
    gc_interval_ms: Option<u64>,
    #[serde(rename = "checkpoint.interval.ms")]
    checkpoint_interval_ms: Option<u64>,
    #[serde(rename = "checkpoint.max.records")]
    checkpoint_max_records: Option<u64>,
    #[serde(rename = "metadata.status.interval.ms")]
    metadata_status_interval_ms: Option<u64>,
    #[serde(rename = "metadata.compaction.interval.ms")]
    metadata_compaction_interval_ms: Option<u64>,
    #[serde(rename = "metadata.compaction.retention.ms")]
    metadata_compaction_retention_ms: Option<u64>,
    #[serde(rename = "gc.grace.ms")]
    gc_grace_ms: Option<u64>,
    #[serde(rename = "object.store.timeout.ms")]
    object_store_timeout_ms: Option<u64>,
    #[serde(rename = "object.store.retries")]
    object_store_retries: Option<u32>,
    #[serde(rename = "log.format")]
    log_format: Option<String>,
    #[serde(rename = "producer.id.expiration.ms")]
    producer_id_expiration_ms: Option<u64>,
    #[serde(rename = "testing.metadata.lost.reply.every")]
    testing_lost_reply_every: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated configuration of a broker.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Host and port clients are told to connect to; `None` = the bound listen address.
    pub advertised: Option<(String, u16)>,
    pub http_listen: SocketAddr,
    pub object_store_url: String,
    pub metadata_url: String,
    /// Timeout and retries of object-store requests.
    pub object_store_retry: RetryPolicy,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub max_request_bytes: usize,
    /// How long the first join of an empty consumer group waits for more members.
    pub group_initial_rebalance_delay_ms: i64,
    pub log: LogConfig,
    pub log_format: LogFormat,
    /// Membership: id (`None` = allocated), rack, lease, balancing, drain.
    pub cluster: ClusterConfig,
    /// Testing only: every n-th metadata transaction applies but reports failure.
    pub testing_lost_reply_every: Option<u64>,
}

/// Loads the layers. `flags` holds the command-line values, already keyed by dotted name.
pub fn load(
    file: Option<&Path>,
    env: Env,
    flags: BTreeMap<String, serde_json::Value>,
) -> Result<Config, ConfigError> {
    let mut merged: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let dict = Figment::from(Toml::string(&text))
            .extract::<Dict>()
            .map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        flatten("", dict, &mut merged);
    }
    let dict = Figment::from(env.split("_"))
        .extract::<Dict>()
        .map_err(|e| ConfigError::Env(e.to_string()))?;
    flatten("", dict, &mut merged);
    merged.extend(flags);
    let json = serde_json::Value::Object(merged.into_iter().collect());
    let raw: RawConfig = serde_path_to_error::deserialize(json)
        .map_err(|e| ConfigError::Invalid(format!("{}: {}", e.path(), e.inner())))?;
    Config::try_from(raw)
}

/// The environment layer for the real process.
pub fn process_env() -> Env {
    Env::prefixed(ENV_PREFIX)
}

fn flatten(prefix: &str, dict: Dict, out: &mut BTreeMap<String, serde_json::Value>) {
    for (k, v) in dict {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Dict(_, inner) => flatten(&key, inner, out),
            other => {
                // Figment values are plain data; serialising them to JSON cannot fail.
                let json = serde_json::to_value(&other).unwrap_or(serde_json::Value::Null);
                out.insert(key, json);
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(format!(
            "{key}: expected HOST:PORT with a numeric IP, got {value:?}"
        ))
    })
}

fn parse_host_port(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("{key}: expected HOST:PORT, got {value:?}")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(format!("{key}: bad port in {value:?}")))?;
    if host.is_empty() || port == 0 {
        return Err(invalid(format!("{key}: expected HOST:PORT, got {value:?}")));
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

fn positive(key: &str, value: Option<u64>, default: u64) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if v == 0 {
        return Err(invalid(format!("{key}: must be greater than 0")));
    }
    usize::try_from(v).map_err(|_| invalid(format!("{key}: {v} is too large")))
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = parse_addr("listen", raw.listen.as_deref().unwrap_or("127.0.0.1:9092"))?;
        let http_listen = parse_addr(
            "http.listen",
            raw.http_listen.as_deref().unwrap_or("127.0.0.1:9093"),
        )?;
        let advertised = raw
            .advertised_listener
            .as_deref()
            .map(|v| parse_host_port("advertised.listener", v))
            .transpose()?;
        if advertised.is_none() && listen.ip().is_unspecified() {
            return Err(invalid(
                "advertised.listener is required when listen is a wildcard address",
            ));
        }
        let ephemeral = raw.ephemeral.unwrap_or(false);
        let (object_store_url, metadata_url) = if ephemeral {
            if raw.object_store.is_some() || raw.metadata.is_some() || raw.data_dir.is_some() {
                return Err(invalid(
                    "ephemeral cannot be combined with object.store, metadata or data.dir",
                ));
            }
            ("memory://".to_owned(), "memory://".to_owned())
        } else {
            let dir = raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from("kafscale-data"));
            let dir = std::path::absolute(&dir)
                .map_err(|e| invalid(format!("data.dir {}: {e}", dir.display())))?;
            (
                raw.object_store
                    .unwrap_or_else(|| format!("file://{}", dir.join("objects").display())),
                raw.metadata
                    .unwrap_or_else(|| format!("embedded://{}", dir.join("metadata").display())),
            )
        };
        let broker_id = match raw.broker_id {
            None | Some(-1) => None,
            Some(id) if id >= 0 => Some(BrokerId(id)),
            Some(_) => {
                return Err(invalid(
                    "broker.id: must be 0 or greater (or -1 to have one allocated)",
                ))
            }
        };
        let lease_ms = match raw.broker_session_timeout_ms {
            None => 10_000,
            Some(ms) if (1_000..=300_000).contains(&ms) => ms,
            Some(_) => {
                return Err(invalid(
                    "broker.session.timeout.ms: between 1000 and 300000",
                ))
            }
        };
        let cluster = ClusterConfig {
            broker_id,
            host: String::new(),
            port: 0,
            rack: raw.broker_rack.filter(|r| !r.is_empty()),
            lease_ttl: std::time::Duration::from_millis(lease_ms),
            max_moves: positive("controller.max.moves", raw.controller_max_moves, 8)?,
            drain_timeout: std::time::Duration::from_millis(
                raw.shutdown_drain_timeout_ms.unwrap_or(30_000),
            ),
            metadata_status_interval: std::time::Duration::from_millis(positive(
                "metadata.status.interval.ms",
                raw.metadata_status_interval_ms,
                5_000,
            )? as u64),
            metadata_compaction_interval: std::time::Duration::from_millis(positive(
                "metadata.compaction.interval.ms",
                raw.metadata_compaction_interval_ms,
                60_000,
            )? as u64),
            metadata_compaction_retention: std::time::Duration::from_millis(
                raw.metadata_compaction_retention_ms.unwrap_or(300_000),
            ),
        };
        let num_partitions = raw.num_partitions.unwrap_or(1);
        kafscale_core::topic::validate_partitions(num_partitions)
            .map_err(|e| invalid(format!("num.partitions: {e}")))?;
        let max_request_bytes = positive(
            "socket.request.max.bytes",
            raw.socket_request_max_bytes,
            100 << 20,
        )?;
        let max_batch_bytes = positive("message.max.bytes", raw.message_max_bytes, 1_048_588)?;
        if max_batch_bytes > max_request_bytes {
            return Err(invalid(
                "message.max.bytes cannot exceed socket.request.max.bytes",
            ));
        }
        let log_format = match raw.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(format!(
                    "log.format: expected text or json, got {other:?}"
                )))
            }
        };
        Ok(Config {
            listen,
            advertised,
            http_listen,
            object_store_url,
            metadata_url,
            object_store_retry: RetryPolicy {
                timeout: std::time::Duration::from_millis(positive(
                    "object.store.timeout.ms",
                    raw.object_store_timeout_ms,
                    30_000,
                )? as u64),
                attempts: raw.object_store_retries.unwrap_or(2) + 1,
                ..RetryPolicy::default()
            },
            auto_create_topics: raw.auto_create_topics.unwrap_or(true),
            num_partitions,
            max_request_bytes,
            group_initial_rebalance_delay_ms: match raw.group_initial_rebalance_delay_ms {
                None => 3_000,
                Some(ms) if ms <= 300_000 => ms as i64,
                Some(_) => return Err(invalid("group.initial.rebalance.delay.ms: at most 300000")),
            },
            log: LogConfig {
                broker_id: broker_id.unwrap_or(BrokerId(0)),
                flush_ms: raw.flush_ms.unwrap_or(0),
                flush_bytes: positive("flush.bytes", raw.flush_bytes, 4 << 20)?,
                max_buffered_bytes: positive(
                    "produce.buffer.max.bytes",
                    raw.produce_buffer_max_bytes,
                    256 << 20,
                )?,
                cache_bytes: positive("cache.bytes", raw.cache_bytes, 256 << 20)?,
                max_batch_bytes,
                retention_check_ms: positive(
                    "log.retention.check.interval.ms",
                    raw.log_retention_check_interval_ms,
                    60_000,
                )? as u64,
                default_retention_ms: raw.log_retention_ms.unwrap_or(7 * 24 * 3600 * 1000),
                default_retention_bytes: raw.log_retention_bytes.unwrap_or(-1),
                gc_interval_ms: positive("gc.interval.ms", raw.gc_interval_ms, 300_000)? as u64,
                checkpoint_interval_ms: positive(
                    "checkpoint.interval.ms",
                    raw.checkpoint_interval_ms,
                    30_000,
                )? as u64,
                checkpoint_max_records: positive(
                    "checkpoint.max.records",
                    raw.checkpoint_max_records,
                    256,
                )? as u64,
                gc_grace_ms: raw.gc_grace_ms.unwrap_or(600_000),
                segment_bytes: match raw.log_segment_bytes.unwrap_or(64 << 20) {
                    v @ 1..=0xffff_ffff => v,
                    _ => return Err(invalid("log.segment.bytes: between 1 and 4294967295")),
                },
                segment_block_bytes: positive(
                    "segment.block.bytes",
                    raw.segment_block_bytes,
                    64 << 10,
                )?,
                compaction_min_bytes: raw.compaction_min_bytes.unwrap_or(4 << 20),
                producer_expiration_ms: positive(
                    "producer.id.expiration.ms",
                    raw.producer_id_expiration_ms,
                    86_400_000,
                )? as i64,
                read_ahead_bytes: usize::try_from(raw.read_ahead_bytes.unwrap_or(1 << 20))
                    .map_err(|_| invalid("read.ahead.bytes: too large"))?,
                ..LogConfig::default()
            },
            log_format,
            cluster,
            testing_lost_reply_every: raw.testing_lost_reply_every.filter(|n| *n > 0),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // A prefix no real process uses, filled from the given pairs only.
        Env::prefixed("KSTEST_").filter_map(move |k| {
            let k = k.as_str().to_owned();
            vars.iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(&k))
                .then(|| k.into())
        })
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            "flush.ms = 5\n\"num.partitions\" = 3\nephemeral = true\n\"produce.buffer.max.bytes\" = 1048576\n",
        )
        .unwrap();
        let mut flags = BTreeMap::new();
        flags.insert("flush.ms".into(), serde_json::json!(9));
        let c = load(Some(&file), env(&[]), flags).unwrap();
        assert_eq!(c.log.flush_ms, 9);
        assert_eq!(c.log.max_buffered_bytes, 1 << 20);
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.object_store_url, "memory://");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "flush.mss = 5\n").unwrap();
        let err = load(Some(&file), env(&[]), BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("flush.mss"), "{err}");
        let mut flags = BTreeMap::new();
        flags.insert("flush.ms".into(), serde_json::json!("abc"));
        let err = load(None, env(&[]), flags).unwrap_err();
        assert!(err.to_string().contains("flush.ms"), "{err}");
        let mut flags = BTreeMap::new();
        flags.insert("listen".into(), serde_json::json!("nonsense"));
        assert!(load(None, env(&[]), flags).is_err());
        assert!(load(
            Some(Path::new("/nonexistent/k.toml")),
            env(&[]),
            BTreeMap::new()
        )
        .is_err());
    }

    #[test]
    fn defaults_use_the_data_dir() {
        let c = load(None, env(&[]), BTreeMap::new()).unwrap();
        assert!(c.object_store_url.starts_with("file://"));
        assert!(c.object_store_url.ends_with("kafscale-data/objects"));
        assert!(c.metadata_url.ends_with("kafscale-data/metadata"));
        assert_eq!(c.listen.port(), 9092);
        assert_eq!(c.http_listen.port(), 9093);
        assert!(c.auto_create_topics);
    }
}
