//! The broker configuration of a `KafscaleCluster`, as the `KAFSCALE_*` environment of the
//! broker container (the image takes every setting that way, see docs/configuration.md).

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector};
use kafscale_core::settings::{self, self as table};
use std::collections::BTreeMap;

use crate::crd::{KafscaleCluster, ListenersSpec, ObjectStoreSpec};
use crate::Error;

/// Settings the operator derives from the spec; setting them in `config` or `security`
/// would break the cluster's addressing or storage.
const MANAGED: &[&str] = &[
    table::LISTEN.name,
    table::ADVERTISED_LISTENER.name,
    table::LISTENERS.name,
    table::ADVERTISED_LISTENERS.name,
    table::LISTENER_SECURITY_PROTOCOL_MAP.name,
    table::HTTP_LISTEN.name,
    table::BROKER_ID.name,
    table::OBJECT_STORE.name,
    table::METADATA.name,
    table::DATA_DIR.name,
    table::EPHEMERAL.name,
];

/// Time a broker gets after the hand-over deadline to flush, checkpoint and release its
/// registration before Kubernetes kills it.
const SHUTDOWN_MARGIN_SECS: i64 = 30;

/// The environment variable of a setting: `flush.ms` is `KAFSCALE_FLUSH_MS`.
pub fn env_name(setting: &str) -> String {
    format!(
        "{}{}",
        kafscale::config::ENV_PREFIX,
        setting.replace('.', "_").to_uppercase()
    )
}

/// The broker settings of `config`, `security` and `backup`, each checked against the
/// registry, so that a typo is reported in the resource's status instead of a crash loop.
pub fn settings(cluster: &KafscaleCluster) -> Result<BTreeMap<String, String>, Error> {
    let spec = &cluster.spec;
    let mut out = BTreeMap::new();
    let mut backup = Vec::new();
    if let Some(b) = &spec.backup {
        backup.push((
            table::METADATA_BACKUP_INTERVAL_MS.name,
            b.interval_ms.to_string(),
        ));
        if let Some(r) = b.retention {
            backup.push((table::METADATA_BACKUP_RETENTION.name, r.to_string()));
        }
    }
    let all = spec
        .config
        .iter()
        .chain(&spec.security)
        .map(|(k, v)| (k.as_str(), v.clone()))
        .chain(backup);
    for (key, value) in all {
        let Some(setting) = settings::find(key) else {
            return Err(Error::InvalidSpec(format!("unknown broker setting {key}")));
        };
        if MANAGED.contains(&key) {
            return Err(Error::InvalidSpec(format!(
                "{key} is set by the operator and cannot be configured"
            )));
        }
        setting
            .parse(&value)
            .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        if out.insert(key.to_owned(), value).is_some() {
            return Err(Error::InvalidSpec(format!(
                "{key} is set twice (config, security or backup)"
            )));
        }
    }
    Ok(out)
}

/// Seconds Kubernetes waits between SIGTERM and SIGKILL: the broker's hand-over deadline
/// (`shutdown.drain.timeout.ms`) and a margin to flush and leave.
pub fn termination_grace_secs(settings: &BTreeMap<String, String>) -> i64 {
    let drain_ms = settings
        .get(table::SHUTDOWN_DRAIN_TIMEOUT_MS.name)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(table::SHUTDOWN_DRAIN_TIMEOUT_MS.default_int());
    (drain_ms + 999) / 1000 + SHUTDOWN_MARGIN_SECS
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

fn from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..Default::default()
        }),
    }
}

/// The Kafka listeners: `listen` alone (PLAINTEXT on the Kafka port), or with additional
/// listeners `listeners`, `advertised.listeners` and the protocol map, every listener
/// advertised at the broker's DNS name.
fn listener_env(ports: &ListenersSpec, advertised: &str) -> Result<Vec<EnvVar>, Error> {
    if ports.additional.is_empty() {
        return Ok(vec![
            plain(
                &env_name(table::LISTEN.name),
                format!("0.0.0.0:{}", ports.kafka_port),
            ),
            plain(
                &env_name(table::ADVERTISED_LISTENER.name),
                format!("{advertised}:{}", ports.kafka_port),
            ),
        ]);
    }
    let mut all = vec![("PLAINTEXT", "PLAINTEXT", ports.kafka_port)];
    for l in &ports.additional {
        // Service port names are at most 15 characters.
        let valid_name = (1..=15).contains(&l.name.len())
            && l.name != "PLAINTEXT"
            && l.name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_name || all.iter().any(|(n, _, _)| *n == l.name) {
            return Err(Error::InvalidSpec(format!(
                "listeners.additional: {:?} is not a new listener name of 1 to 15 of A-Z, 0-9 and _",
                l.name
            )));
        }
        if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&l.protocol()) {
            return Err(Error::InvalidSpec(format!(
                "listeners.additional {}: protocol {} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                l.name,
                l.protocol()
            )));
        }
        if all.iter().any(|(_, _, p)| *p == l.port) || l.port == ports.http_port {
            return Err(Error::InvalidSpec(format!(
                "listeners.additional {}: port {} is taken",
                l.name, l.port
            )));
        }
        all.push((&l.name, l.protocol(), l.port));
    }
    let list = |host: &str| {
        all.iter()
            .map(|(n, _, p)| format!("{n}://{host}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let map = all
        .iter()
        .map(|(n, protocol, _)| format!("{n}:{protocol}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(vec![
        plain(&env_name(table::LISTENERS.name), list("0.0.0.0")),
        plain(
            &env_name(table::ADVERTISED_LISTENERS.name),
            list(advertised),
        ),
        plain(&env_name(table::LISTENER_SECURITY_PROTOCOL_MAP.name), map),
    ])
}

fn object_store_env(spec: &ObjectStoreSpec, env: &mut Vec<EnvVar>) -> Result<(), Error> {
    if !spec.url.starts_with("s3://") {
        return Err(Error::InvalidSpec(format!(
            "objectStore.url must be s3://bucket[/prefix], not {}",
            spec.url
        )));
    }
    env.push(plain(&env_name(table::OBJECT_STORE.name), &spec.url));
    if let Some(endpoint) = &spec.endpoint {
        env.push(plain("AWS_ENDPOINT_URL", endpoint));
    }
    if let Some(region) = &spec.region {
        env.push(plain("AWS_REGION", region));
    }
    if spec.allow_http {
        env.push(plain("AWS_ALLOW_HTTP", "true"));
    }
    if let Some(c) = &spec.credentials {
        env.push(from_secret(
            "AWS_ACCESS_KEY_ID",
            &c.secret_name,
            &c.access_key_id_key,
        ));
        env.push(from_secret(
            "AWS_SECRET_ACCESS_KEY",
            &c.secret_name,
            &c.secret_access_key_key,
        ));
    }
    Ok(())
}

/// The container's environment. Order matters: Kubernetes expands `$(NAME)` only for
/// variables defined earlier in the list.
pub fn broker_env(
    cluster: &KafscaleCluster,
    headless_service: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Vec<EnvVar>, Error> {
    let spec = &cluster.spec;
    let ns = cluster.metadata.namespace.as_deref().unwrap_or("default");
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let ports = &spec.listeners;
    let mut env = vec![
        from_field("POD_NAME", "metadata.name"),
        // The StatefulSet ordinal: broker ids stay with their pods across restarts.
        from_field(
            &env_name(table::BROKER_ID.name),
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
        plain(
            &env_name(table::HTTP_LISTEN.name),
            format!("0.0.0.0:{}", ports.http_port),
        ),
    ];
    let advertised = format!("$(POD_NAME).{headless_service}.{ns}.svc");
    env.extend(listener_env(ports, &advertised)?);
    object_store_env(&spec.object_store, &mut env)?;
    let etcd = &spec.etcd;
    if etcd.endpoints.is_empty() {
        return Err(Error::InvalidSpec("etcd.endpoints is empty".into()));
    }
    let prefix = etcd
        .prefix
        .clone()
        .unwrap_or_else(|| format!("{ns}/{name}"));
    let auth = match &etcd.credentials {
        None => String::new(),
        Some(c) => {
            // Outside KAFSCALE_*: the broker refuses variables it does not know there.
            env.push(from_secret(
                "ETCD_USERNAME",
                &c.secret_name,
                &c.username_key,
            ));
            env.push(from_secret(
                "ETCD_PASSWORD",
                &c.secret_name,
                &c.password_key,
            ));
            "$(ETCD_USERNAME):$(ETCD_PASSWORD)@".to_owned()
        }
    };
    env.push(plain(
        &env_name(table::METADATA.name),
        format!("etcd://{auth}{}/{prefix}", etcd.endpoints.join(",")),
    ));
    env.extend(settings.iter().map(|(k, v)| plain(&env_name(k), v)));
    Ok(env)
}
