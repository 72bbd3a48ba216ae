//! The broker configs Kafka lets AlterConfigs change while brokers run ("dynamic" broker
//! configs) and that KafScale has no setting of its own for. They are kept in the metadata
//! store, per broker or as the cluster-wide default (Kafka's resource name ""), so that tools
//! and tests changing them keep working and DescribeConfigs shows what was set.
//!
//! None of them changes what a broker does: each entry's documentation says why it has no
//! meaning here (no Kerberos, no log cleaner threads, no replication). KafScale's own
//! settings (the registry in [`crate::settings`], and Kafka's configs with one fixed value)
//! come from the configuration file, environment and flags and are read-only: AlterConfigs
//! refuses them, as Kafka refuses its static configs.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::log::{ConfigChange, LogConfig};
use crate::ports::metadata::{encode_json, MetadataStoreExt};
use crate::ports::MetadataStore;
use crate::schema::keys;
use crate::settings;
use crate::topic_config::{
    apply_ops_in, def, lookup_in, ConfigType as T, DefaultFrom as D, Rule as R, TopicConfigDef,
};
use crate::types::BrokerId;

/// Whose dynamic configs: one broker's, or the default of every broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerScope {
    /// Kafka's broker resource with an empty name.
    ClusterDefault,
    Broker(BrokerId),
}

const I32: i64 = i32::MAX as i64;
const I64: i64 = i64::MAX;
const NO_KERBEROS: &str = "recorded only: KafScale has no Kerberos (GSSAPI) login";
const NO_THREAD_POOL: &str =
    "recorded only: KafScale's request and background work runs on one async runtime, sized at start";
const NO_REPLICATION: &str = "recorded only: brokers do not replicate to each other";
const NO_LOCAL_CLEANER: &str =
    "recorded only: the log cleaner runs in each broker's maintenance rounds, one partition at a time (log.cleaner.backoff.ms and log.cleaner.dedupe.buffer.size are broker settings)";
const NO_CONNECTION_QUOTA: &str = "recorded only: connection quotas are not enforced";

/// Kafka's dynamic broker configs accepted here, by name (none is applied: see the docs).
#[rustfmt::skip]
pub const BROKER_DYNAMIC_CONFIGS: &[TopicConfigDef] = &[
    def("background.threads", T::Int, D::Fixed("10"), R::Range(1, I32), None, false, NO_THREAD_POOL),
    def("follower.replication.throttled.rate", T::Long, D::Fixed("9223372036854775807"),
        R::Range(0, I64), None, false, NO_REPLICATION),
    def("leader.replication.throttled.rate", T::Long, D::Fixed("9223372036854775807"),
        R::Range(0, I64), None, false, NO_REPLICATION),
    def("log.cleaner.io.max.bytes.per.second", T::Double, D::Fixed("1.7976931348623157E308"),
        R::Fraction(0.0, f64::MAX), None, false, NO_LOCAL_CLEANER),
    def("log.cleaner.threads", T::Int, D::Fixed("1"), R::Range(0, I32), None, false,
        NO_LOCAL_CLEANER),
    def("max.connection.creation.rate", T::Int, D::Fixed("2147483647"), R::Range(0, I32), None,
        false, NO_CONNECTION_QUOTA),
    def("max.connections", T::Int, D::Fixed("2147483647"), R::Range(0, I32), None, false,
        NO_CONNECTION_QUOTA),
    def("max.connections.per.ip", T::Int, D::Fixed("2147483647"), R::Range(0, I32), None, false,
        NO_CONNECTION_QUOTA),
    def("num.io.threads", T::Int, D::Fixed("8"), R::Range(1, I32), None, false, NO_THREAD_POOL),
    def("num.network.threads", T::Int, D::Fixed("3"), R::Range(1, I32), None, false,
        NO_THREAD_POOL),
    def("num.recovery.threads.per.data.dir", T::Int, D::Fixed("1"), R::Range(1, I32), None, false,
        "recorded only: brokers keep no local log to recover"),
    def("num.replica.fetchers", T::Int, D::Fixed("1"), R::Range(1, I32), None, false,
        NO_REPLICATION),
    def("sasl.kerberos.kinit.cmd", T::String, D::Fixed("/usr/bin/kinit"), R::Text, None, false,
        NO_KERBEROS),
    def("sasl.kerberos.min.time.before.relogin", T::Long, D::Fixed("60000"), R::Range(0, I64),
        None, false, NO_KERBEROS),
    def("sasl.kerberos.principal.to.local.rules", T::List, D::Fixed("DEFAULT"), R::Text, None,
        false, NO_KERBEROS),
    def("sasl.kerberos.service.name", T::String, D::Fixed(""), R::Text, None, false, NO_KERBEROS),
    def("sasl.kerberos.ticket.renew.jitter", T::Double, D::Fixed("0.05"), R::Fraction(0.0, 1.0),
        None, false, NO_KERBEROS),
    def("sasl.kerberos.ticket.renew.window.factor", T::Double, D::Fixed("0.8"),
        R::Fraction(0.0, 1.0), None, false, NO_KERBEROS),
];

/// The dynamic config of this name, if it is one.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    BROKER_DYNAMIC_CONFIGS.iter().find(|d| d.name == name)
}

fn key(scope: BrokerScope) -> String {
    match scope {
        BrokerScope::ClusterDefault => keys::broker_configs_default(),
        BrokerScope::Broker(id) => keys::broker_configs(id),
    }
}

/// The dynamic configs set for `scope` (empty if none is).
pub async fn get(
    store: &dyn MetadataStore,
    scope: BrokerScope,
) -> Result<BTreeMap<String, String>, Error> {
    Ok(store
        .get_json::<BTreeMap<String, String>>(&key(scope))
        .await?
        .map(|(configs, _)| configs)
        .unwrap_or_default())
}

/// Why a name cannot be changed: read-only (a KafScale setting or fixed config), or unknown.
fn refuse(name: &str) -> Error {
    let reason = if settings::find(name).is_some() || settings::find_fixed(name).is_some() {
        "read-only: it comes from the broker's configuration file, environment and flags, \
         and changes on restart"
    } else {
        "not a broker config that can be changed while the broker runs"
    };
    Error::InvalidConfig {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Applies `change` to the dynamic configs of `scope` (with compare-and-swap, so that
/// concurrent changes to other configs are not lost) and returns the result; with
/// `validate_only` nothing is written. Read-only and unknown names are refused.
pub async fn alter(
    store: &dyn MetadataStore,
    scope: BrokerScope,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let named: Vec<&str> = match change {
        ConfigChange::Replace(configs) => configs.keys().map(String::as_str).collect(),
        ConfigChange::Incremental(ops) => ops.iter().map(|(n, _)| n.as_str()).collect(),
    };
    if let Some(name) = named.into_iter().find(|n| find(n).is_none()) {
        return Err(refuse(name));
    }
    let key = key(scope);
    loop {
        let (current, revision) = match store.get_json::<BTreeMap<String, String>>(&key).await? {
            Some((configs, kv)) => (configs, kv.mod_revision),
            None => (BTreeMap::new(), 0),
        };
        let next = match change {
            ConfigChange::Replace(configs) => {
                for (name, value) in configs {
                    lookup_in(BROKER_DYNAMIC_CONFIGS, "broker", name)?.validate(value)?;
                }
                configs.clone()
            }
            ConfigChange::Incremental(ops) => apply_ops_in(
                BROKER_DYNAMIC_CONFIGS,
                "broker",
                &current,
                ops,
                &LogConfig::default(),
            )?,
        };
        if validate_only || next == current {
            return Ok(next);
        }
        let value = (!next.is_empty()).then(|| encode_json(&next));
        if store
            .compare_and_replace(&key, revision, value)
            .await?
            .succeeded
        {
            return Ok(next);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn no_dynamic_config_is_also_a_setting() {
        for d in BROKER_DYNAMIC_CONFIGS {
            assert!(settings::find(d.name).is_none(), "{}", d.name);
            assert!(settings::find_fixed(d.name).is_none(), "{}", d.name);
            d.validate(&d.default_value(&LogConfig::default()))
                .unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
    }
}
