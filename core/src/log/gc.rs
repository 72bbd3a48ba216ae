//! Garbage collection: objects nothing references (flush objects whose commit failed or was
//! fenced, chunks merged into segments or past retention, superseded checkpoint objects), and
//! the flush records of incarnations that are gone once checkpoints cover them.
//!
//! References are every flush record's object, every checkpoint's section object together
//! with the flush objects that object's sections list, and every segment. Object keys carry
//! a UUIDv7, so their age is known without a HEAD; objects younger than `gc.grace.ms` are
//! left alone, since their commit may still be under way.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{lock, LogService, Shared};
use crate::checkpoint_format;
use crate::error::Result;
use crate::ports::{MetadataStore, ObjectStore};
use crate::schema::{self, keys, Checkpoint, FlushRecord, SegmentRecord};
use crate::types::{BrokerId, Millis};

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    pub objects: usize,
    pub referenced: usize,
    pub deleted: usize,
    /// Flush records of gone incarnations deleted.
    pub records: usize,
}

/// Whether this broker collects, and what it must not collect.
pub(super) struct Collector {
    /// Whether this broker collects garbage: always when standalone; in a cluster only the
    /// controller does, so that one LIST of the bucket per interval serves the cluster.
    collecting: AtomicBool,
    /// (broker, incarnation) of the live brokers, for collecting gone incarnations' flush
    /// records.
    live_incarnations: Mutex<Vec<(BrokerId, u64)>>,
}

impl Collector {
    pub(super) fn new(collecting: bool, live: (BrokerId, u64)) -> Collector {
        Collector {
            collecting: AtomicBool::new(collecting),
            live_incarnations: Mutex::new(vec![live]),
        }
    }

    /// A new incarnation of this broker is live.
    pub(super) fn add_live(&self, live: (BrokerId, u64)) {
        lock(&self.live_incarnations).push(live);
    }
}

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        shared
            .clock
            .sleep(Duration::from_millis(shared.config.gc_interval_ms.max(1)))
            .await;
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        if !shared.gc.collecting.load(Ordering::SeqCst) {
            continue;
        }
        match shared.collect_garbage().await {
            Ok(stats) if stats.deleted > 0 || stats.records > 0 => {
                tracing::info!(
                    deleted = stats.deleted,
                    objects = stats.objects,
                    records = stats.records,
                    "garbage collected"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

/// Creation time of an object from the UUIDv7 in its key.
pub(crate) fn created_ms(key: &str) -> Option<Millis> {
    let name = key.rsplit('/').next()?;
    let name = name
        .strip_suffix(".ksf")
        .or_else(|| name.strip_suffix(".ksc"))?;
    let id = uuid::Uuid::parse_str(name).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

impl Shared {
    pub(super) async fn collect_garbage(&self) -> Result<GcStats> {
        let live: Vec<(BrokerId, u64)> = lock(&self.gc.live_incarnations).clone();
        let records = self.delete_dead_records(&live).await?;
        let horizon = self.clock.now_ms() - self.config.gc_grace_ms as i64;
        let objects = self.store.list(keys::DATA_PREFIX).await?;
        let old: Vec<_> = objects
            .iter()
            .filter(|o| created_ms(&o.key).is_some_and(|t| t < horizon))
            .collect();
        let mut stats = GcStats {
            objects: objects.len(),
            records,
            ..GcStats::default()
        };
        if old.is_empty() {
            return Ok(stats);
        }
        // Read references after listing: an object committed in between is young anyway.
        let referenced = self.referenced_objects().await?;
        stats.referenced = referenced.len();
        for o in old {
            if !referenced.contains(&o.key) {
                self.store.delete(&o.key).await?;
                stats.deleted += 1;
            }
        }
        Ok(stats)
    }

    async fn referenced_objects(&self) -> Result<HashSet<String>> {
        referenced_objects(self.meta.as_ref(), self.store.as_ref()).await
    }
}

/// Every object the metadata references: flush records' objects, segments, and checkpoint
/// objects with the flush objects their sections list.
pub(crate) async fn referenced_objects(
    meta: &dyn MetadataStore,
    store: &dyn ObjectStore,
) -> Result<HashSet<String>> {
    let mut referenced = HashSet::new();
    for kv in &meta.range(&keys::flushes_prefix()).await?.kvs {
        if kv.value.is_empty() {
            continue;
        }
        let r = FlushRecord::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
        referenced.insert(r.object);
    }
    for kv in &meta.range(&keys::segments_prefix()).await?.kvs {
        let s = SegmentRecord::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
        referenced.insert(s.object);
    }
    let mut checkpoint_objects = HashSet::new();
    for kv in &meta.range(&keys::checkpoints_prefix()).await?.kvs {
        let c = Checkpoint::decode(&kv.value).map_err(|e| schema::corrupt(kv, e))?;
        if let Some(s) = c.section {
            checkpoint_objects.insert(s.object);
        }
    }
    for object in checkpoint_objects {
        let bytes = store.get(&object).await?;
        let listed = checkpoint_format::referenced_objects(&bytes).map_err(|e| {
            crate::error::Error::MissingData(format!("checkpoint object {object}: {e}"))
        })?;
        referenced.extend(listed);
        referenced.insert(object);
    }
    Ok(referenced)
}

impl LogService {
    /// Turns the periodic garbage collection on or off (in a cluster, the controller
    /// collects for everyone; references are read from the shared metadata either way).
    pub fn set_collecting(&self, on: bool) {
        let was = self.shared.gc.collecting.swap(on, Ordering::SeqCst);
        if was != on {
            tracing::debug!(on, "garbage collection on this broker");
        }
    }

    /// The brokers alive, (id, incarnation): flush records of any other incarnation are
    /// collected once checkpoints cover them.
    pub fn set_live_incarnations(&self, live: Vec<(BrokerId, u64)>) {
        *lock(&self.shared.gc.live_incarnations) = live;
    }

    /// Runs one garbage collection pass now.
    pub async fn collect_garbage(&self) -> Result<GcStats> {
        self.shared.collect_garbage().await
    }

    /// Runs one retention pass now (normally part of a checkpoint round every
    /// `retention_check_ms`).
    pub async fn enforce_retention(&self) -> Result<()> {
        self.shared
            .checkpoint_round(super::maintenance::Round::Periodic {
                retention: true,
                clean: false,
                all_dirty: true,
            })
            .await
    }

    /// Runs one checkpoint round now (normally every `checkpoint_interval_ms`).
    pub async fn checkpoint(&self) -> Result<()> {
        self.shared
            .checkpoint_round(super::maintenance::Round::Periodic {
                retention: false,
                clean: false,
                all_dirty: true,
            })
            .await
    }

    /// Runs one checkpoint round with the log cleaner now (normally every
    /// `log.cleaner.backoff.ms`): the partitions of compacted topics whose clean is due are
    /// cleaned and checkpointed.
    pub async fn clean(&self) -> Result<()> {
        self.shared
            .checkpoint_round(super::maintenance::Round::Periodic {
                retention: false,
                clean: true,
                all_dirty: true,
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_age_comes_from_the_key() {
        let id = uuid::Uuid::now_v7();
        let key = keys::flush_object(crate::types::BrokerId(1), id);
        let t = created_ms(&key).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        assert!((now - t).abs() < 5_000);
        assert_eq!(
            created_ms(&keys::checkpoint_object(BrokerId(2), id)),
            created_ms(&key)
        );
        assert_eq!(created_ms("data/1/not-a-uuid.ksf"), None);
        assert_eq!(created_ms("_probe/x"), None);
    }
}
