//! The topic configs KafScale accepts, with Kafka's names, types, defaults and ranges, and the
//! rules for changing them (set, delete, append, subtract).
//!
//! Two kinds of entries: configs the log honours (retention, and the ones whose only
//! supported value is Kafka's default), and configs that describe replication or local log
//! files, which have no meaning on object storage; those are accepted and validated so that
//! tools setting them keep working, and their documentation says they are not enforced.
//! Any other name is refused.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::log::LogConfig;
use crate::settings;

/// Kafka's config types, as DescribeConfigs reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

/// Where a topic's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultFrom {
    /// A fixed value (Kafka's default, which the broker has no setting for).
    Fixed(&'static str),
    /// `retention.ms`: the broker's `log.retention.ms`.
    RetentionMs,
    /// `retention.bytes`: the broker's `log.retention.bytes`.
    RetentionBytes,
    /// `max.message.bytes`: the broker's `message.max.bytes`.
    MaxMessageBytes,
    /// `segment.bytes`: the broker's `log.segment.bytes`.
    SegmentBytes,
}

/// What values a config takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    /// An integer in `[min, max]` (of the config's type).
    Range(i64, i64),
    /// A floating point number in `[min, max]`.
    Fraction(f64, f64),
    /// One of these (case-sensitive, as Kafka's validators).
    OneOf(&'static [&'static str]),
    /// `true` or `false`, in any case.
    Bool,
    /// Any text (configs accepted only so that tools setting them keep working).
    Text,
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Broker setting that provides the default (Kafka's synonym), if any.
    pub broker_synonym: Option<&'static str>,
    pub documentation: &'static str,
    /// Whether the log acts on the value (otherwise it is accepted and recorded only).
    pub enforced: bool,
    default: DefaultFrom,
    rule: Rule,
}

const I32: i64 = i32::MAX as i64;
const I64: i64 = i64::MAX;

pub(crate) const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: DefaultFrom,
    rule: Rule,
    broker_synonym: Option<&'static str>,
    enforced: bool,
    documentation: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        broker_synonym,
        documentation,
        enforced,
        default,
        rule,
    }
}

use ConfigType as T;
use DefaultFrom as D;
use Rule as R;

/// Every accepted topic config, by name.
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", T::List, D::Fixed("delete"), R::OneOf(&["delete", "compact"]),
        Some("log.cleanup.policy"), true,
        "delete: old data goes by retention.ms/bytes; compact: records need keys, the log cleaner keeps the latest record of each key, and time and size retention do not apply unless delete is listed too"),
    def("compression.gzip.level", T::Int, D::Fixed("-1"), R::Range(-1, 9),
        Some("compression.gzip.level"), true,
        "gzip level for batches the broker compresses (compression.type gzip); -1: the codec's default"),
    def("compression.lz4.level", T::Int, D::Fixed("9"), R::Range(1, 17),
        Some("compression.lz4.level"), true,
        "lz4 level for batches the broker compresses (compression.type lz4)"),
    def("compression.type", T::String, D::Fixed("producer"),
        R::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Some("compression.type"), true,
        "codec batches are stored in: producer keeps the producer's; any other is applied to batches sent otherwise (uncompressed stores them uncompressed)"),
    def("compression.zstd.level", T::Int, D::Fixed("3"), R::Range(-131072, 22),
        Some("compression.zstd.level"), true,
        "zstd level for batches the broker compresses (compression.type zstd)"),
    def("delete.retention.ms", T::Long, D::Fixed("86400000"), R::Range(0, I64),
        Some("log.cleaner.delete.retention.ms"), true,
        "how long a tombstone (null value) of a compacted topic, or a transaction marker none of whose records remain, is kept after its segment was first cleaned"),
    def("file.delete.delay.ms", T::Long, D::Fixed("60000"), R::Range(0, I64),
        Some("log.segment.delete.delay.ms"), false,
        "delay before a deleted file is removed (not applicable to object storage)"),
    def("flush.messages", T::Long, D::Fixed("9223372036854775807"), R::Range(1, I64),
        Some("log.flush.interval.messages"), false,
        "local fsync interval in messages (not applicable: data is flushed to object storage)"),
    def("flush.ms", T::Long, D::Fixed("9223372036854775807"), R::Range(0, I64),
        Some("log.flush.interval.ms"), false,
        "local fsync interval (not applicable: data is flushed to object storage)"),
    def("follower.replication.throttled.replicas", T::List, D::Fixed(""), R::Text,
        Some("follower.replication.throttled.replicas"), false,
        "replicas throttled on followers (not applicable: brokers do not replicate to each other)"),
    def("index.interval.bytes", T::Int, D::Fixed("4096"), R::Range(0, I32),
        Some("log.index.interval.bytes"), false,
        "offset index density (not enforced: segments have their own block index)"),
    def("leader.replication.throttled.replicas", T::List, D::Fixed(""), R::Text,
        Some("leader.replication.throttled.replicas"), false,
        "replicas throttled on leaders (not applicable: brokers do not replicate to each other)"),
    def("local.retention.bytes", T::Long, D::Fixed("-2"), R::Range(-2, I64),
        Some("log.local.retention.bytes"), false,
        "tiered storage: bytes kept on local disk (not applicable: all data is in object storage)"),
    def("local.retention.ms", T::Long, D::Fixed("-2"), R::Range(-2, I64),
        Some("log.local.retention.ms"), false,
        "tiered storage: time kept on local disk (not applicable: all data is in object storage)"),
    def("max.compaction.lag.ms", T::Long, D::Fixed("9223372036854775807"), R::Range(1, I64),
        Some("log.cleaner.max.compaction.lag.ms"), true,
        "a dirty segment whose newest record is older than this is cleaned whatever the dirty ratio (compacted topics)"),
    def("max.message.bytes", T::Int, D::MaxMessageBytes, R::Range(0, I32),
        Some("message.max.bytes"), true,
        "largest record batch accepted"),
    def("message.downconversion.enable", T::Boolean, D::Fixed("true"), R::Bool,
        Some("log.message.downconversion.enable"), false,
        "down-conversion for old consumers (not applicable: fetches before magic 2 are not served)"),
    def("message.format.version", T::String, D::Fixed("3.0-IV1"), R::Text,
        Some("log.message.format.version"), false,
        "deprecated since Kafka 3.0, which ignores it; accepted and ignored likewise"),
    def("message.timestamp.type", T::String, D::Fixed("CreateTime"),
        R::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"), true,
        "whether record timestamps are the producer's (CreateTime) or the broker's when it stores the batch (LogAppendTime)"),
    def("message.timestamp.after.max.ms", T::Long, D::Fixed("9223372036854775807"),
        R::Range(0, I64), Some("log.message.timestamp.after.max.ms"), true,
        "largest allowed lead of a record's timestamp over the broker's clock (CreateTime; every record)"),
    def("message.timestamp.before.max.ms", T::Long, D::Fixed("9223372036854775807"),
        R::Range(0, I64), Some("log.message.timestamp.before.max.ms"), true,
        "largest allowed lag of a record's timestamp behind the broker's clock (CreateTime; every record, so the broker decompresses batches of topics that set it)"),
    def("message.timestamp.difference.max.ms", T::Long, D::Fixed("9223372036854775807"),
        R::Range(0, I64), Some("log.message.timestamp.difference.max.ms"), true,
        "deprecated by KIP-937: both message.timestamp.before.max.ms and after.max.ms where those are not set"),
    def("min.cleanable.dirty.ratio", T::Double, D::Fixed("0.5"), R::Fraction(0.0, 1.0),
        Some("log.cleaner.min.cleanable.ratio"), true,
        "share of a compacted partition's segment bytes not yet cleaned that starts a clean"),
    def("min.compaction.lag.ms", T::Long, D::Fixed("0"), R::Range(0, I64),
        Some("log.cleaner.min.compaction.lag.ms"), true,
        "a segment holding a record younger than this is not cleaned (compacted topics)"),
    def("min.insync.replicas", T::Int, D::Fixed("1"), R::Range(1, I32),
        Some("min.insync.replicas"), false,
        "replicas that must acknowledge acks=all (not applicable: object storage replicates)"),
    def("preallocate", T::Boolean, D::Fixed("false"), R::Bool,
        Some("log.preallocate"), false,
        "preallocate local segment files (not applicable to object storage)"),
    def("remote.log.copy.disable", T::Boolean, D::Fixed("false"), R::Bool, None, false,
        "tiered storage: stop copying to remote storage (not applicable: every topic lives in object storage)"),
    def("remote.log.delete.on.disable", T::Boolean, D::Fixed("false"), R::Bool, None, false,
        "tiered storage: delete remote data when it is disabled (not applicable: every topic lives in object storage)"),
    def("remote.storage.enable", T::Boolean, D::Fixed("false"), R::Bool, None, false,
        "tiered storage (not applicable: every topic lives in object storage)"),
    def("retention.bytes", T::Long, D::RetentionBytes, R::Range(-1, I64),
        Some("log.retention.bytes"), true,
        "size a partition may grow to before old data is deleted; -1 = unlimited"),
    def("retention.ms", T::Long, D::RetentionMs, R::Range(-1, I64),
        Some("log.retention.ms"), true,
        "how long data is kept before it is deleted; -1 = unlimited"),
    def("segment.bytes", T::Int, D::SegmentBytes, R::Range(14, I32),
        Some("log.segment.bytes"), true,
        "largest segment object a merge of flushed data or a clean writes"),
    def("segment.index.bytes", T::Int, D::Fixed("10485760"), R::Range(4, I32),
        Some("log.index.size.max.bytes"), false,
        "size of a local offset index (not applicable to object storage)"),
    def("segment.jitter.ms", T::Long, D::Fixed("0"), R::Range(0, I64),
        Some("log.roll.jitter.ms"), false,
        "jitter of segment rolling (not enforced)"),
    def("segment.ms", T::Long, D::Fixed("604800000"), R::Range(1, I64),
        Some("log.roll.ms"), true,
        "where a topic sets it: flushed data whose oldest chunk's newest record is older than this is merged into a segment whatever its size (so retention and the cleaner, which take whole segments, reach it)"),
    def("unclean.leader.election.enable", T::Boolean, D::Fixed("false"), R::Bool,
        Some("unclean.leader.election.enable"), false,
        "elect out-of-sync replicas (not applicable: every broker reads the same storage)"),
];

/// The definition of a topic config, if KafScale accepts it.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl TopicConfigDef {
    /// The value a topic has when it does not set this config.
    pub fn default_value(&self, log: &LogConfig) -> String {
        match self.default {
            D::Fixed(v) => v.to_owned(),
            D::RetentionMs => log.default_retention_ms.to_string(),
            D::RetentionBytes => log.default_retention_bytes.to_string(),
            D::MaxMessageBytes => log.max_batch_bytes.to_string(),
            D::SegmentBytes => log.segment_bytes.to_string(),
        }
    }

    /// Whether the default follows a broker setting (rather than being fixed).
    pub fn follows_broker(&self) -> bool {
        !matches!(self.default, D::Fixed(_))
    }

    /// Whether the broker's configuration sets the default to something other than the
    /// setting's built-in value (so that it comes from the broker's configuration).
    pub fn broker_overrides_default(&self, log: &LogConfig) -> bool {
        let built_in = match self.default {
            D::Fixed(_) => return false,
            D::RetentionMs => settings::LOG_RETENTION_MS,
            D::RetentionBytes => settings::LOG_RETENTION_BYTES,
            D::MaxMessageBytes => settings::MESSAGE_MAX_BYTES,
            D::SegmentBytes => settings::LOG_SEGMENT_BYTES,
        };
        self.default_value(log) != built_in.default_text()
    }

    /// Checks one value against the type, range and what KafScale supports.
    pub fn validate(&self, value: &str) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidConfig {
            name: self.name.to_owned(),
            reason: format!("{value:?}: {reason}"),
        };
        let items: Vec<&str> = if self.config_type == T::List {
            split_list(value)
        } else {
            vec![value]
        };
        if self.config_type == T::List && items.is_empty() && self.rule != R::Text {
            return Err(bad("expected at least one value".into()));
        }
        for item in items {
            match self.rule {
                R::Range(min, max) => match item.trim().parse::<i64>() {
                    Ok(v) if (min..=max).contains(&v) => {}
                    _ => return Err(bad(format!("expected an integer in [{min}, {max}]"))),
                },
                R::Fraction(min, max) => match item.trim().parse::<f64>() {
                    Ok(v) if (min..=max).contains(&v) => {}
                    _ => return Err(bad(format!("expected a number in [{min}, {max}]"))),
                },
                R::Bool => {
                    if !item.eq_ignore_ascii_case("true") && !item.eq_ignore_ascii_case("false") {
                        return Err(bad("expected true or false".into()));
                    }
                }
                R::Text => {}
                R::OneOf(allowed) => {
                    if !allowed.contains(&item) {
                        return Err(bad(format!("expected one of {}", allowed.join(", "))));
                    }
                }
            }
        }
        Ok(())
    }
}

fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks every config of a topic: known names, valid values.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in configs {
        lookup(name)?.validate(value)?;
    }
    Ok(())
}

fn lookup(name: &str) -> Result<&'static TopicConfigDef, Error> {
    lookup_in(TOPIC_CONFIGS, "topic", name)
}

/// The definition of `name` in `defs`, or the error for an unknown `kind` config.
pub(crate) fn lookup_in(
    defs: &'static [TopicConfigDef],
    kind: &str,
    name: &str,
) -> Result<&'static TopicConfigDef, Error> {
    defs.iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::InvalidConfig {
            name: name.to_owned(),
            reason: format!("unknown {kind} config"),
        })
}

/// One change of an incremental alteration (Kafka's IncrementalAlterConfigs operations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    /// Back to the default.
    Delete,
    /// Adds items to a list config (items already present are kept once).
    Append(String),
    /// Removes items from a list config.
    Subtract(String),
}

/// Applies `ops` to a topic's configs and validates the result. A config is named at most
/// once (the caller refuses duplicates); APPEND and SUBTRACT work only on list configs and
/// start from the default when the topic does not set the config.
pub fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    log: &LogConfig,
) -> Result<BTreeMap<String, String>, Error> {
    apply_ops_in(TOPIC_CONFIGS, "topic", current, ops, log)
}

/// [`apply_ops`] over the configs of another table (`kind` names it in errors): the broker's
/// dynamic configs change by the same rules.
pub(crate) fn apply_ops_in(
    defs: &'static [TopicConfigDef],
    kind: &str,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    log: &LogConfig,
) -> Result<BTreeMap<String, String>, Error> {
    let mut next = current.clone();
    for (name, op) in ops {
        let d = lookup_in(defs, kind, name)?;
        let list_only = |verb: &str| Error::InvalidConfig {
            name: name.clone(),
            reason: format!("{verb} applies only to list configs; {name} is not a list"),
        };
        match op {
            ConfigOp::Set(v) => {
                d.validate(v)?;
                next.insert(name.clone(), v.clone());
            }
            ConfigOp::Delete => {
                next.remove(name);
            }
            ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                if d.config_type != T::List {
                    return Err(list_only(if matches!(op, ConfigOp::Append(_)) {
                        "APPEND"
                    } else {
                        "SUBTRACT"
                    }));
                }
                let base = next
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| d.default_value(log));
                let mut items: Vec<String> =
                    split_list(&base).into_iter().map(str::to_owned).collect();
                for item in split_list(v) {
                    if matches!(op, ConfigOp::Append(_)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_owned());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                let joined = items.join(",");
                d.validate(&joined)?;
                next.insert(name.clone(), joined);
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_names_types_ranges_and_support() {
        assert!(validate_all(&map(&[
            ("retention.ms", "1000"),
            ("cleanup.policy", "delete")
        ]))
        .is_ok());
        assert!(validate_all(&map(&[("retention.ms", "-1"), ("preallocate", "TRUE")])).is_ok());
        // Legacy and replication configs Kafka 3.x still accepts (librdkafka's test 0092
        // sets message.format.version).
        assert!(validate_all(&map(&[
            ("message.format.version", "2.8-IV1"),
            ("leader.replication.throttled.replicas", ""),
            ("follower.replication.throttled.replicas", "0:1,1:2"),
            ("local.retention.ms", "-2"),
            ("remote.storage.enable", "false"),
            ("compression.type", "lz4"),
            ("compression.zstd.level", "-5"),
        ]))
        .is_ok());
        assert!(validate_all(&map(&[("cleanup.policy", "compact,delete")])).is_ok());
        for (k, v) in [
            ("retention.ms", "-2"),
            ("retention.ms", "soon"),
            ("max.message.bytes", "99999999999"),
            ("cleanup.policy", "shred"),
            ("cleanup.policy", ""),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("preallocate", "yes"),
            ("no.such.config", "1"),
        ] {
            let err = validate_all(&map(&[(k, v)])).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{k}={v}");
        }
    }

    #[test]
    fn defaults_follow_the_broker() {
        let log = LogConfig {
            default_retention_ms: 1234,
            ..LogConfig::default()
        };
        let d = find("retention.ms").unwrap();
        assert_eq!(d.default_value(&log), "1234");
        assert!(d.broker_overrides_default(&log));
        assert_eq!(
            find("cleanup.policy").unwrap().default_value(&log),
            "delete"
        );
        assert!(!find("cleanup.policy")
            .unwrap()
            .broker_overrides_default(&log));
    }

    #[test]
    fn incremental_ops() {
        let log = LogConfig::default();
        let cur = map(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let next = apply_ops(
            &cur,
            &[
                ("retention.ms".into(), ConfigOp::Set("2000".into())),
                ("segment.ms".into(), ConfigOp::Delete),
                ("cleanup.policy".into(), ConfigOp::Append("delete".into())),
            ],
            &log,
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[("retention.ms", "2000"), ("cleanup.policy", "delete")])
        );
        let err = apply_ops(
            &cur,
            &[("retention.ms".into(), ConfigOp::Append("5".into()))],
            &log,
        )
        .unwrap_err();
        assert!(err.to_string().contains("only to list configs"), "{err}");
        let appended = apply_ops(
            &cur,
            &[("cleanup.policy".into(), ConfigOp::Append("compact".into()))],
            &log,
        )
        .unwrap();
        assert_eq!(appended["cleanup.policy"], "delete,compact");
        assert!(apply_ops(
            &cur,
            &[("cleanup.policy".into(), ConfigOp::Subtract("delete".into()))],
            &log
        )
        .is_err());
    }
}
