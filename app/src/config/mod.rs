//! Configuration: defaults < TOML file < `KAFSCALE_*` environment < command-line flags.
//!
//! Every key is a dotted name from the settings registry (`kafscale_core::settings`). Each
//! layer is flattened to dotted keys, later layers override earlier ones, each value is
//! parsed and range-checked by its registry entry ([`Values`]), unknown keys are rejected,
//! and the sections of the typed [`Config`] are built from the result (`sections.rs`).

mod flags;
mod listeners;
mod reference;
mod sections;
mod stores;
mod values;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kafscale_adapters::RetryPolicy;
use kafscale_core::cluster::ClusterConfig;
use kafscale_core::log::LogConfig;

pub use flags::{flag_values, serve_flags, NAMED_FLAGS};
pub use listeners::{Keystore, ListenerConfig, Pem, SecurityProtocol, TlsConfig};
pub use reference::{help_text, settings_markdown};
pub use values::Values;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated configuration of a broker.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Kafka listeners, at least one; the first is where a broker's own address in
    /// the registration (and older tools) points.
    pub listeners: Vec<ListenerConfig>,
    /// The listener other brokers are reached on (`inter.broker.listener.name`, else the
    /// first listener): where the transaction coordinator sends WriteTxnMarkers.
    pub inter_broker_listener: String,
    /// The client properties other brokers are reached with (`inter.broker.client.config`).
    pub inter_broker_client_config: Option<PathBuf>,
    pub http_listen: SocketAddr,
    pub object_store_url: String,
    pub metadata_url: String,
    /// TLS and credentials towards etcd (used with an `etcd://` metadata URL).
    pub etcd: kafscale_adapters::EtcdOptions,
    /// CA bundle and server-side encryption of S3 (used with an `s3://` object store).
    pub s3: kafscale_adapters::S3Settings,
    /// Timeout and retries of object-store requests.
    pub object_store_retry: RetryPolicy,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub max_request_bytes: usize,
    /// How long the first join of an empty consumer group waits for more members.
    pub group_initial_rebalance_delay_ms: i64,
    pub txn: kafscale_core::txn::TxnConfig,
    pub log: LogConfig,
    pub log_format: LogFormat,
    /// Membership: id (`None` = allocated), rack, lease, balancing, drain.
    pub cluster: ClusterConfig,
    /// Where the audit trail goes; `None`: the broker's own log.
    pub audit_log_file: Option<PathBuf>,
    /// Whether allowed authorization checks are audited too (`audit.log.allows`).
    pub audit_allows: bool,
    /// Encryption at rest; `None`: objects are stored as they are.
    pub encryption: Option<Encryption>,
    /// ACL enforcement: `None` when no authorizer is configured.
    pub authorization: Option<kafscale_core::acl::Policy>,
    /// Every setting as configured, for DescribeConfigs.
    pub values: Values,
}

/// Loads the layers. `flags` holds the command-line values, already keyed by dotted name.
pub fn load(
    file: Option<&Path>,
    env: Env,
    flags: BTreeMap<String, serde_json::Value>,
) -> Result<Config, ConfigError> {
    let mut merged = merge(file, env)?;
    merged.extend(flags);
    Config::try_from(Values::parse(merged)?)
}

/// Encryption at rest (`encryption.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// The key file.
    pub keys: PathBuf,
    /// Whether objects written without encryption are read as they are.
    pub allow_unencrypted: bool,
}

/// How to reach and read the stores, as a broker configuration says.
pub struct StoreOptions {
    pub etcd: kafscale_adapters::EtcdOptions,
    pub s3: kafscale_adapters::S3Settings,
    /// `encryption.*`: objects are sealed and opened.
    pub encryption: Option<Encryption>,
}

/// The store settings (`etcd.*`, `s3.*`, `encryption.keys`) of a broker configuration, file
/// and environment: for the commands that open the stores themselves (`kafscale metadata`).
pub fn load_store_options(file: Option<&Path>, env: Env) -> Result<StoreOptions, ConfigError> {
    let values = Values::parse(merge(file, env)?)?;
    Ok(StoreOptions {
        etcd: stores::etcd(&values)?,
        s3: stores::s3(&values)?,
        encryption: stores::encryption(&values),
    })
}

/// The file and environment layers, flattened to dotted keys.
fn merge(
    file: Option<&Path>,
    env: Env,
) -> Result<BTreeMap<String, serde_json::Value>, ConfigError> {
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
    Ok(merged)
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

#[cfg(test)]
mod tests;
