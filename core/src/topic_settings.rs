//! A topic's effective settings, typed: what the topic sets, else the broker's defaults.
//! Handlers and the log read these instead of parsing a topic's config strings.

use crate::batch::Codec;
use crate::log::{LogConfig, Retention};
use crate::topic::TopicRecord;
use crate::unpack::Level;

/// The settings of one topic that KafScale acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    /// `retention.ms` / `retention.bytes`, or the broker's `log.retention.*`.
    pub retention: Retention,
    /// The topic's own `max.message.bytes`, if it sets one; the broker's
    /// `message.max.bytes` applies to every topic anyway (the log checks it).
    pub max_message_bytes: Option<usize>,
    /// `compression.type`: the codec batches are stored in, with its level; `None`
    /// (`producer`) keeps each batch as its producer compressed it.
    pub compression: Option<(Codec, Level)>,
}

impl TopicSettings {
    /// Configs were validated when they were set; a value that does not parse (recorded
    /// before validation existed) counts as unset.
    pub fn of(topic: &TopicRecord, log: &LogConfig) -> TopicSettings {
        let ms = parsed(topic, "retention.ms").unwrap_or(log.default_retention_ms);
        let bytes = parsed(topic, "retention.bytes").unwrap_or(log.default_retention_bytes);
        TopicSettings {
            retention: Retention {
                ms: (ms >= 0).then_some(ms),
                bytes: (bytes >= 0).then_some(bytes),
            },
            max_message_bytes: parsed(topic, "max.message.bytes"),
            compression: compression(topic),
        }
    }
}

fn compression(topic: &TopicRecord) -> Option<(Codec, Level)> {
    let level = |name: &str| parsed::<i32>(topic, name);
    match topic.configs.get("compression.type").map(String::as_str) {
        Some("uncompressed") => Some((Codec::None, None)),
        Some("gzip") => Some((
            Codec::Gzip,
            level("compression.gzip.level").filter(|l| *l >= 1),
        )),
        Some("snappy") => Some((Codec::Snappy, None)),
        Some("lz4") => Some((Codec::Lz4, level("compression.lz4.level"))),
        Some("zstd") => Some((Codec::Zstd, level("compression.zstd.level"))),
        _ => None,
    }
}

fn parsed<T: std::str::FromStr>(topic: &TopicRecord, name: &str) -> Option<T> {
    topic.configs.get(name).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicRecord {
        TopicRecord {
            id: crate::types::TopicId::random(),
            name: "t".into(),
            partitions: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_ms: 0,
        }
    }

    #[test]
    fn compression_type_and_levels() {
        let log = LogConfig::default();
        let of = |c: &[(&str, &str)]| TopicSettings::of(&topic(c), &log).compression;
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[("compression.type", "producer")]), None);
        assert_eq!(
            of(&[("compression.type", "uncompressed")]),
            Some((Codec::None, None))
        );
        assert_eq!(of(&[("compression.type", "lz4")]), Some((Codec::Lz4, None)));
        assert_eq!(
            of(&[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "9")
            ]),
            Some((Codec::Zstd, Some(9)))
        );
        assert_eq!(
            of(&[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "-1")
            ]),
            Some((Codec::Gzip, None))
        );
    }

    #[test]
    fn topic_values_win_over_broker_defaults() {
        let log = LogConfig {
            default_retention_ms: 1_000,
            default_retention_bytes: -1,
            ..LogConfig::default()
        };
        let s = TopicSettings::of(&topic(&[]), &log);
        assert_eq!(s.retention.ms, Some(1_000));
        assert_eq!(s.retention.bytes, None);
        assert_eq!(s.max_message_bytes, None);
        let s = TopicSettings::of(
            &topic(&[
                ("retention.ms", "-1"),
                ("retention.bytes", "500"),
                ("max.message.bytes", "2048"),
            ]),
            &log,
        );
        assert_eq!(s.retention.ms, None);
        assert_eq!(s.retention.bytes, Some(500));
        assert_eq!(s.max_message_bytes, Some(2048));
    }
}
