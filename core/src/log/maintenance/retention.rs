//! Retention: moves a partition's log start past chunks that are too old (`retention.ms`) or
//! beyond the size budget (`retention.bytes`), in metadata first. The objects they lived in
//! become garbage once nothing references them (see `gc`).
//!
//! A checkpoint round records the new log starts; the segment keys below them are deleted
//! afterwards.

use crate::log::{lock, Shared};
use crate::topic::TopicRecord;
use crate::topic_settings::TopicSettings;
use crate::types::{Millis, Offset, PartitionKey};

/// Retention settings of a topic ([`TopicSettings`] reads them); `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub ms: Option<i64>,
    pub bytes: Option<i64>,
}

impl Shared {
    /// The log starts retention asks for: past chunks that are too old, or beyond the size
    /// budget, of every partition this broker leads.
    pub(in crate::log) fn retention_targets(&self) -> Vec<(PartitionKey, Offset)> {
        let now = self.clock.now_ms();
        let partitions: Vec<PartitionKey> = {
            let map = self.partitions.read();
            map.keys().copied().collect()
        };
        let mut out = Vec::new();
        for key in partitions {
            let Some(topic) = self.topic_record(key) else {
                continue;
            };
            let retention = TopicSettings::of(&topic, &self.config).retention;
            if retention.ms.is_none() && retention.bytes.is_none() {
                continue;
            }
            if let Some(start) = self.retention_target(key, retention, now) {
                out.push((key, start));
            }
        }
        out
    }

    pub(super) fn topic_record(&self, key: PartitionKey) -> Option<TopicRecord> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get_by_id(key.topic).cloned()
    }

    fn retention_target(
        &self,
        key: PartitionKey,
        retention: Retention,
        now: Millis,
    ) -> Option<Offset> {
        let partition = self.partitions.get(key).ok()?;
        let p = lock(&partition);
        if !p.writable() {
            return None;
        }
        let chunks: Vec<_> = p.index.from_offset(p.record.log_start_offset).collect();
        let mut total: i64 = chunks.iter().map(|c| i64::from(c.length)).sum();
        let mut new_start = None;
        for c in &chunks {
            let too_old = retention.ms.is_some_and(|ms| c.max_timestamp < now - ms);
            let too_big = retention.bytes.is_some_and(|b| total > b);
            if !(too_old || too_big) {
                break;
            }
            total -= i64::from(c.length);
            new_start = Some(c.last_offset.next());
        }
        new_start.filter(|s| *s > p.record.log_start_offset)
    }
}
