//! Retention: moves a partition's log start past chunks that are too old (`retention.ms`) or
//! beyond the size budget (`retention.bytes`), in metadata first. The objects they lived in
//! become garbage once nothing references them (see `gc`).
//!
//! Runs inside the flusher task with no flush under way (the pipeline drained first), so that
//! every metadata write of a partition this broker leads is serialised with its commits and
//! sees the revision they left.

use super::keys;
use super::state::PartitionRecord;
use super::{lock, Shared};
use crate::error::Result;
use crate::ports::metadata::encode_json;
use crate::ports::{Compare, Txn, TxnOp};
use crate::topic::TopicRecord;
use crate::types::{Millis, PartitionKey};

/// Chunk keys deleted per transaction, below etcd's 128 operations.
const DELETES_PER_TXN: usize = 100;

/// Retention settings of a topic; `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub ms: Option<i64>,
    pub bytes: Option<i64>,
}

impl Retention {
    /// Reads `retention.ms` / `retention.bytes` from the topic configs (validated at creation),
    /// falling back to the broker defaults; negative values mean unlimited.
    pub fn of(topic: &TopicRecord, default_ms: i64, default_bytes: i64) -> Retention {
        let get = |name: &str, default: i64| {
            topic
                .configs
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default)
        };
        let ms = get("retention.ms", default_ms);
        let bytes = get("retention.bytes", default_bytes);
        Retention {
            ms: (ms >= 0).then_some(ms),
            bytes: (bytes >= 0).then_some(bytes),
        }
    }
}

impl Shared {
    pub(super) async fn enforce_retention(&self) {
        let now = self.clock.now_ms();
        let partitions: Vec<PartitionKey> = {
            let map = self.partitions.read().unwrap_or_else(|e| e.into_inner());
            map.keys().copied().collect()
        };
        for key in partitions {
            let Some(topic) = self.topic_record(key) else {
                continue;
            };
            let retention = Retention::of(
                &topic,
                self.config.default_retention_ms,
                self.config.default_retention_bytes,
            );
            if retention.ms.is_none() && retention.bytes.is_none() {
                continue;
            }
            if let Err(e) = self.apply_retention(key, retention, now).await {
                tracing::warn!(partition = %key, error = %e, "retention pass failed");
            }
        }
    }

    fn topic_record(&self, key: PartitionKey) -> Option<TopicRecord> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get_by_id(key.topic).cloned()
    }

    async fn apply_retention(
        &self,
        key: PartitionKey,
        retention: Retention,
        now: Millis,
    ) -> Result<()> {
        // Serialised with compaction's commits: both replace chunk keys.
        let _maintenance = self.maintenance.lock().await;
        let partition = self.partition(key)?;
        let (record, revision, leader_revision, doomed, new_start) = {
            let p = lock(&partition);
            if !p.writable() {
                return Ok(());
            }
            let chunks: Vec<_> = p
                .index
                .from_offset(p.record.log_start_offset)
                .cloned()
                .collect();
            let mut total: i64 = chunks.iter().map(|c| i64::from(c.length)).sum();
            let mut doomed = Vec::new();
            for c in &chunks {
                let too_old = retention.ms.is_some_and(|ms| c.max_timestamp < now - ms);
                let too_big = retention.bytes.is_some_and(|b| total > b);
                if !(too_old || too_big) || doomed.len() == DELETES_PER_TXN {
                    break;
                }
                total -= i64::from(c.length);
                doomed.push(c.base_offset);
            }
            let Some(last) = doomed.last().and_then(|b| p.index.find(*b)) else {
                return Ok(());
            };
            let new_start = last.last_offset.next();
            (p.record, p.revision, p.leader_revision, doomed, new_start)
        };
        debug_assert!(new_start > record.log_start_offset);
        let new_record = PartitionRecord {
            log_start_offset: new_start,
            ..record
        };
        let pk = keys::partition(key);
        let mut txn = Txn::new()
            .when(Compare::ModRevision {
                key: keys::leader(key),
                revision: leader_revision,
            })
            .when(Compare::ModRevision {
                key: pk.clone(),
                revision,
            })
            .then(TxnOp::Put {
                key: pk,
                value: encode_json(&new_record),
                lease: None,
            });
        for base in &doomed {
            txn = txn.then(TxnOp::Delete {
                key: keys::chunk(key, *base),
            });
        }
        let outcome = self.meta.txn(txn).await;
        let mut p = lock(&partition);
        match outcome {
            Ok(o) if o.succeeded => {
                p.record = new_record;
                p.revision = o.revision;
                p.index.truncate_before(new_start);
                tracing::info!(partition = %key, log_start = new_start.0, chunks = doomed.len(), "retention advanced the log start");
            }
            // Another writer changed the partition: re-read before touching it again.
            Ok(_) => p.stale = true,
            Err(e) => {
                p.stale = true;
                return Err(e.into());
            }
        }
        Ok(())
    }
}
