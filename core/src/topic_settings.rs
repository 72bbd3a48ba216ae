//! A topic's effective settings, typed: what the topic sets, else the broker's defaults.
//! Handlers and the log read these instead of parsing a topic's config strings.

use crate::batch::Codec;
use crate::log::{CleanPolicy, LogConfig, Retention};
use crate::topic::TopicRecord;
use crate::types::Millis;
use crate::unpack::Level;

/// The settings of one topic that KafScale acts on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicSettings {
    /// `retention.ms` / `retention.bytes`, or the broker's `log.retention.*`.
    pub retention: Retention,
    /// The topic's own `max.message.bytes`, if it sets one; the broker's
    /// `message.max.bytes` applies to every topic anyway (the log checks it).
    pub max_message_bytes: Option<usize>,
    /// `compression.type`: the codec batches are stored in, with its level; `None`
    /// (`producer`) keeps each batch as its producer compressed it.
    pub compression: Option<(Codec, Level)>,
    /// `message.timestamp.type` LogAppendTime: batches are timestamped by the broker.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (or the deprecated
    /// `message.timestamp.difference.max.ms` for both): how far a producer's timestamp may lie
    /// behind or ahead of the broker's clock; `None`: any distance.
    pub timestamp_before_max_ms: Option<i64>,
    pub timestamp_after_max_ms: Option<i64>,
    /// `cleanup.policy` lists compact: every record needs a key (KIP-467), and the log
    /// cleaner keeps the latest record of each.
    pub compacted: bool,
    /// How the log cleaner treats the topic (if it is compacted): `delete.retention.ms`,
    /// `min.compaction.lag.ms`, `max.compaction.lag.ms`, `min.cleanable.dirty.ratio`,
    /// `segment.bytes`.
    pub cleaning: CleanPolicy,
    /// `segment.bytes` (else the broker's `log.segment.bytes`): the largest segment a merge
    /// or a clean writes.
    pub segment_bytes: u64,
    /// `segment.ms`, where the topic sets it: unmerged flush chunks older than this are
    /// merged into a segment whatever their size (Kafka rolls its active segment after it),
    /// so that retention and the cleaner, which take whole segments, reach them. Topics that
    /// do not set it merge by size only, as before (its default, 7 days, would otherwise
    /// roll every flush of records stamped long ago at once).
    pub segment_ms: Option<i64>,
}

impl TopicSettings {
    /// Whether batches of this topic are changed or checked before they are stored.
    pub fn shapes_batches(&self) -> bool {
        self.compacted
            || self.compression.is_some()
            || self.log_append_time
            || self.timestamp_before_max_ms.is_some()
            || self.timestamp_after_max_ms.is_some()
    }

    /// The CreateTime timestamps a record may carry at broker time `now`
    /// (`message.timestamp.before.max.ms` / `after.max.ms`); `None` when neither is set
    /// (Kafka 3.6+'s defaults, `i64::MAX` both).
    pub fn timestamp_window(&self, now: Millis) -> Option<TimestampWindow> {
        if self.timestamp_before_max_ms.is_none() && self.timestamp_after_max_ms.is_none() {
            return None;
        }
        Some(TimestampWindow {
            low: self
                .timestamp_before_max_ms
                .map_or(Millis::MIN, |ms| now.saturating_sub(ms)),
            high: self
                .timestamp_after_max_ms
                .map_or(Millis::MAX, |ms| now.saturating_add(ms)),
        })
    }
}

/// The CreateTime timestamps a topic accepts at one moment, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    pub low: Millis,
    pub high: Millis,
}

impl TimestampWindow {
    /// Whether a record's timestamp is accepted; a record without one (-1) always is, as in
    /// Kafka.
    pub fn accepts(&self, timestamp: Millis) -> bool {
        timestamp == -1 || (self.low..=self.high).contains(&timestamp)
    }

    /// Whether the window has a lower end: the batch header bounds only the records' largest
    /// timestamp (`max_timestamp`), so checking the lower end reads every record.
    pub fn needs_every_record(&self) -> bool {
        self.low != Millis::MIN
    }
}

impl TopicSettings {
    /// Configs were validated when they were set; a value that does not parse (recorded
    /// before validation existed) counts as unset.
    pub fn of(topic: &TopicRecord, log: &LogConfig) -> TopicSettings {
        let ms = parsed(topic, "retention.ms").unwrap_or(log.default_retention_ms);
        let bytes = parsed(topic, "retention.bytes").unwrap_or(log.default_retention_bytes);
        let policy = topic.configs.get("cleanup.policy");
        let listed = |p: &str| policy.is_some_and(|v| v.split(',').any(|x| x.trim() == p));
        let compacted = listed("compact");
        // A compact-only topic keeps its data by key, never by age or size.
        let deletes = !compacted || listed("delete");
        let segment_bytes: u64 = effective(topic, log, "segment.bytes");
        TopicSettings {
            retention: Retention {
                ms: (ms >= 0 && deletes).then_some(ms),
                bytes: (bytes >= 0 && deletes).then_some(bytes),
            },
            compacted,
            cleaning: CleanPolicy {
                delete_retention_ms: effective(topic, log, "delete.retention.ms"),
                min_lag_ms: effective(topic, log, "min.compaction.lag.ms"),
                max_lag_ms: effective(topic, log, "max.compaction.lag.ms"),
                min_dirty_ratio: effective(topic, log, "min.cleanable.dirty.ratio"),
                segment_bytes,
            },
            segment_bytes,
            segment_ms: parsed(topic, "segment.ms"),
            max_message_bytes: parsed(topic, "max.message.bytes"),
            compression: compression(topic),
            log_append_time: topic
                .configs
                .get("message.timestamp.type")
                .is_some_and(|t| t == "LogAppendTime"),
            timestamp_before_max_ms: bound(topic, "message.timestamp.before.max.ms"),
            timestamp_after_max_ms: bound(topic, "message.timestamp.after.max.ms"),
        }
    }
}

/// A timestamp bound: the topic's own, else the deprecated difference; `i64::MAX` is none.
fn bound(topic: &TopicRecord, name: &str) -> Option<i64> {
    parsed::<i64>(topic, name)
        .or_else(|| parsed(topic, "message.timestamp.difference.max.ms"))
        .filter(|ms| *ms != i64::MAX)
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

/// A config's value: the topic's own, else its default (from the config table, which takes
/// the broker's where it follows one).
fn effective<T: std::str::FromStr + Default>(
    topic: &TopicRecord,
    log: &LogConfig,
    name: &str,
) -> T {
    parsed(topic, name)
        .or_else(|| {
            crate::topic_config::find(name)?
                .default_value(log)
                .parse()
                .ok()
        })
        .unwrap_or_default()
}

fn parsed<T: std::str::FromStr>(topic: &TopicRecord, name: &str) -> Option<T> {
    topic.configs.get(name).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
    fn compact_only_topics_keep_their_data_from_retention() {
        let log = LogConfig {
            default_retention_ms: 1_000,
            ..LogConfig::default()
        };
        let of = |c: &[(&str, &str)]| TopicSettings::of(&topic(c), &log);
        let compact = of(&[("cleanup.policy", "compact"), ("retention.bytes", "10")]);
        assert!(compact.compacted && compact.shapes_batches());
        assert_eq!(
            (compact.retention.ms, compact.retention.bytes),
            (None, None)
        );
        let both = of(&[
            ("cleanup.policy", "compact, delete"),
            ("retention.bytes", "10"),
        ]);
        assert!(both.compacted);
        assert_eq!(
            (both.retention.ms, both.retention.bytes),
            (Some(1_000), Some(10))
        );
        assert!(!of(&[("cleanup.policy", "delete")]).compacted);
    }

    #[test]
    fn cleaning_and_segment_settings_take_the_topic_s_values_else_the_defaults() {
        let log = LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let defaults = TopicSettings::of(&topic(&[("cleanup.policy", "compact")]), &log);
        assert_eq!(defaults.segment_bytes, 1 << 20);
        assert_eq!(defaults.segment_ms, None);
        let c = defaults.cleaning;
        assert_eq!(
            (
                c.delete_retention_ms,
                c.min_lag_ms,
                c.max_lag_ms,
                c.segment_bytes
            ),
            (86_400_000, 0, i64::MAX, 1 << 20)
        );
        assert!((c.min_dirty_ratio - 0.5).abs() < 1e-9);
        let set = TopicSettings::of(
            &topic(&[
                ("delete.retention.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("segment.bytes", "4096"),
                ("segment.ms", "250"),
            ]),
            &log,
        );
        assert_eq!(
            (
                set.cleaning.delete_retention_ms,
                set.segment_bytes,
                set.segment_ms
            ),
            (100, 4096, Some(250))
        );
        assert!((set.cleaning.min_dirty_ratio - 0.01).abs() < 1e-9);
    }

    #[test]
    fn timestamp_policy() {
        let log = LogConfig::default();
        let of = |c: &[(&str, &str)]| TopicSettings::of(&topic(c), &log);
        let plain = of(&[]);
        assert!(!plain.log_append_time && !plain.shapes_batches());
        assert!(of(&[("message.timestamp.type", "LogAppendTime")]).log_append_time);
        let old = of(&[("message.timestamp.difference.max.ms", "5000")]);
        assert_eq!(
            (old.timestamp_before_max_ms, old.timestamp_after_max_ms),
            (Some(5000), Some(5000))
        );
        let new = of(&[
            ("message.timestamp.difference.max.ms", "5000"),
            ("message.timestamp.after.max.ms", "100"),
            ("message.timestamp.before.max.ms", "9223372036854775807"),
        ]);
        assert_eq!(
            (new.timestamp_before_max_ms, new.timestamp_after_max_ms),
            (None, Some(100))
        );
        assert!(new.shapes_batches());
        // The window at broker time 10_000.
        assert_eq!(plain.timestamp_window(10_000), None);
        let w = new.timestamp_window(10_000).unwrap();
        assert!(!w.needs_every_record());
        assert!(w.accepts(10_100) && w.accepts(0) && w.accepts(-1) && !w.accepts(10_101));
        let w = old.timestamp_window(10_000).unwrap();
        assert!(w.needs_every_record());
        assert!(w.accepts(5_000) && w.accepts(15_000) && w.accepts(-1));
        assert!(!w.accepts(4_999) && !w.accepts(15_001) && !w.accepts(-2));
        // No overflow at the ends of time.
        let far = of(&[("message.timestamp.before.max.ms", "9223372036854775806")]);
        assert!(far
            .timestamp_window(10_000)
            .unwrap()
            .accepts(i64::MIN + 20_000));
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
