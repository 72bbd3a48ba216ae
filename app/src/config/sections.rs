//! The typed [`Config`], one section per component, from parsed [`Values`]. Ranges were
//! checked by the registry; what is left here are the rules that tie settings together
//! and the forms of addresses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kafscale_adapters::RetryPolicy;
use kafscale_core::cluster::ClusterConfig;
use kafscale_core::log::LogConfig;
use kafscale_core::settings::{self as s, Setting};
use kafscale_core::BrokerId;

use super::{Config, ConfigError, LogFormat, Values};

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

fn parse_addr(v: &Values, setting: &Setting) -> Result<SocketAddr, ConfigError> {
    let value = v.text(setting).unwrap_or_default();
    value.parse().map_err(|_| {
        invalid(format!(
            "{}: expected HOST:PORT with a numeric IP, got {value:?}",
            setting.name
        ))
    })
}

pub(super) fn parse_host_port(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
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

fn millis(v: &Values, setting: &Setting) -> Duration {
    Duration::from_millis(v.unsigned(setting))
}

impl TryFrom<Values> for Config {
    type Error = ConfigError;

    fn try_from(v: Values) -> Result<Config, ConfigError> {
        let listeners = super::listeners::listeners(&v)?;
        let inter_broker_listener = super::listeners::inter_broker_listener(&v, &listeners);
        let (object_store_url, metadata_url) = storage_urls(&v)?;
        super::stores::check_used(&v, &object_store_url, &metadata_url)?;
        let cluster = cluster_config(&v);
        let max_request_bytes = v.size(&s::SOCKET_REQUEST_MAX_BYTES)?;
        let log = log_config(&v, cluster.broker_id)?;
        if log.max_batch_bytes > max_request_bytes {
            return Err(invalid(
                "message.max.bytes cannot exceed socket.request.max.bytes",
            ));
        }
        let log_format = match v.text(&s::LOG_FORMAT).as_deref() {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let authorization = authorization(&v)?;
        Ok(Config {
            audit_log_file: v
                .text(&s::AUDIT_LOG_FILE)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            audit_allows: v.bool(&s::AUDIT_LOG_ALLOWS),
            authorization,
            encryption: super::stores::encryption(&v),
            listeners,
            inter_broker_listener,
            inter_broker_client_config: v
                .text(&s::INTER_BROKER_CLIENT_CONFIG)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            http_listen: parse_addr(&v, &s::HTTP_LISTEN)?,
            object_store_url,
            metadata_url,
            etcd: super::stores::etcd(&v)?,
            s3: super::stores::s3(&v)?,
            object_store_retry: RetryPolicy {
                timeout: millis(&v, &s::OBJECT_STORE_TIMEOUT_MS),
                attempts: u32::try_from(v.int(&s::OBJECT_STORE_RETRIES)).unwrap_or(u32::MAX - 1)
                    + 1,
                ..RetryPolicy::default()
            },
            auto_create_topics: v.bool(&s::AUTO_CREATE_TOPICS_ENABLE),
            num_partitions: i32::try_from(v.int(&s::NUM_PARTITIONS))
                .map_err(|_| invalid("num.partitions: too large"))?,
            max_request_bytes,
            group_initial_rebalance_delay_ms: v.int(&s::GROUP_INITIAL_REBALANCE_DELAY_MS),
            txn: kafscale_core::txn::TxnConfig {
                max_timeout_ms: i32::try_from(v.int(&s::TRANSACTION_MAX_TIMEOUT_MS))
                    .map_err(|_| invalid("transaction.max.timeout.ms: too large"))?,
                cleanup_interval_ms: v.int(&s::TRANSACTION_CLEANUP_INTERVAL_MS),
            },
            log,
            log_format,
            cluster,
            values: v,
        })
    }
}

/// The authorizer's policy, if one is configured.
fn authorization(v: &Values) -> Result<Option<kafscale_core::acl::Policy>, ConfigError> {
    const NAMES: [&str; 3] = [
        "acl",
        "kafka.security.authorizer.AclAuthorizer",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ];
    let Some(class) = v.text(&s::AUTHORIZER_CLASS_NAME).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if !NAMES.contains(&class.as_str()) {
        return Err(invalid(format!(
            "authorizer.class.name: {class:?} is not supported (acl, {}, {})",
            NAMES[1], NAMES[2]
        )));
    }
    let super_users = v
        .text(&s::SUPER_USERS)
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            if u.starts_with("User:") && u.len() > 5 {
                Ok(u.to_owned())
            } else {
                Err(invalid(format!(
                    "super.users: expected User:NAME, got {u:?}"
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(kafscale_core::acl::Policy {
        super_users,
        allow_if_no_acl: v.bool(&s::ALLOW_EVERYONE_IF_NO_ACL_FOUND),
    }))
}

/// The object store and metadata URLs: memory for both, or under `data.dir` unless given.
fn storage_urls(v: &Values) -> Result<(String, String), ConfigError> {
    let explicit_store = v.text(&s::OBJECT_STORE);
    let explicit_meta = v.text(&s::METADATA);
    if v.bool(&s::EPHEMERAL) {
        if explicit_store.is_some() || explicit_meta.is_some() || v.is_set(&s::DATA_DIR) {
            return Err(invalid(
                "ephemeral cannot be combined with object.store, metadata or data.dir",
            ));
        }
        return Ok(("memory://".to_owned(), "memory://".to_owned()));
    }
    let dir = PathBuf::from(v.text(&s::DATA_DIR).unwrap_or_default());
    let dir = std::path::absolute(&dir)
        .map_err(|e| invalid(format!("data.dir {}: {e}", dir.display())))?;
    Ok((
        explicit_store.unwrap_or_else(|| format!("file://{}", dir.join("objects").display())),
        explicit_meta.unwrap_or_else(|| format!("embedded://{}", dir.join("metadata").display())),
    ))
}

fn cluster_config(v: &Values) -> ClusterConfig {
    ClusterConfig {
        // -1 (or unset): allocated at registration.
        broker_id: v
            .opt_int(&s::BROKER_ID)
            .and_then(|id| i32::try_from(id).ok())
            .filter(|id| *id >= 0)
            .map(BrokerId),
        // Set once the listeners are bound.
        host: String::new(),
        port: 0,
        listeners: Vec::new(),
        rack: v.text(&s::BROKER_RACK).filter(|r| !r.is_empty()),
        lease_ttl: millis(v, &s::BROKER_SESSION_TIMEOUT_MS),
        max_moves: v.unsigned(&s::CONTROLLER_MAX_MOVES) as usize,
        drain_timeout: millis(v, &s::SHUTDOWN_DRAIN_TIMEOUT_MS),
        metadata_status_interval: millis(v, &s::METADATA_STATUS_INTERVAL_MS),
        metadata_compaction_interval: millis(v, &s::METADATA_COMPACTION_INTERVAL_MS),
        metadata_compaction_retention: millis(v, &s::METADATA_COMPACTION_RETENTION_MS),
        metadata_backup_interval: millis(v, &s::METADATA_BACKUP_INTERVAL_MS),
        metadata_backup_retention: v.unsigned(&s::METADATA_BACKUP_RETENTION) as usize,
    }
}

fn log_config(v: &Values, broker_id: Option<BrokerId>) -> Result<LogConfig, ConfigError> {
    Ok(LogConfig {
        broker_id: broker_id.unwrap_or(BrokerId(0)),
        flush_ms: v.unsigned(&s::FLUSH_MS),
        flush_bytes: v.size(&s::FLUSH_BYTES)?,
        max_buffered_bytes: v.size(&s::PRODUCE_BUFFER_MAX_BYTES)?,
        cache_bytes: v.size(&s::CACHE_BYTES)?,
        max_batch_bytes: v.size(&s::MESSAGE_MAX_BYTES)?,
        retention_check_ms: v.unsigned(&s::LOG_RETENTION_CHECK_INTERVAL_MS),
        default_retention_ms: v.int(&s::LOG_RETENTION_MS),
        default_retention_bytes: v.int(&s::LOG_RETENTION_BYTES),
        gc_interval_ms: v.unsigned(&s::GC_INTERVAL_MS),
        checkpoint_interval_ms: v.unsigned(&s::CHECKPOINT_INTERVAL_MS),
        checkpoint_max_records: v.unsigned(&s::CHECKPOINT_MAX_RECORDS),
        gc_grace_ms: v.unsigned(&s::GC_GRACE_MS),
        segment_bytes: v.unsigned(&s::LOG_SEGMENT_BYTES),
        segment_block_bytes: v.size(&s::SEGMENT_BLOCK_BYTES)?,
        compaction_min_bytes: v.unsigned(&s::COMPACTION_MIN_BYTES),
        cleaner_buffer_bytes: v.size(&s::LOG_CLEANER_DEDUPE_BUFFER_SIZE)?,
        cleaner_backoff_ms: v.unsigned(&s::LOG_CLEANER_BACKOFF_MS),
        producer_expiration_ms: v.int(&s::PRODUCER_ID_EXPIRATION_MS),
        read_ahead_bytes: v.size(&s::READ_AHEAD_BYTES)?,
        // Not settings: attempts, incarnation (set at registration), coalescing.
        ..LogConfig::default()
    })
}
