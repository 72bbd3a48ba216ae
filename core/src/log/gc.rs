//! Garbage collection of objects that no committed chunk references: flush objects whose
//! commit failed or was fenced, and objects whose chunks retention or topic deletion removed.
//!
//! Object keys carry a UUIDv7, so their age is known without a HEAD. Objects younger than
//! `gc.grace.ms` are left alone: their commit may still be under way.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::keys;
use super::state::ChunkRecord;
use super::{LogService, Shared};
use crate::error::Result;
use crate::ports::metadata::decode_json;
use crate::types::Millis;

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    pub objects: usize,
    pub referenced: usize,
    pub deleted: usize,
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
        if !shared.collecting.load(Ordering::SeqCst) {
            continue;
        }
        match shared.collect_garbage().await {
            Ok(stats) if stats.deleted > 0 => {
                tracing::info!(
                    deleted = stats.deleted,
                    objects = stats.objects,
                    "garbage collected"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

/// Creation time of an object from the UUIDv7 in its key.
fn created_ms(key: &str) -> Option<Millis> {
    let name = key.rsplit('/').next()?.strip_suffix(".ksf")?;
    let id = uuid::Uuid::parse_str(name).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

impl Shared {
    pub(super) async fn collect_garbage(&self) -> Result<GcStats> {
        let horizon = self.clock.now_ms() - self.config.gc_grace_ms as i64;
        let objects = self.store.list(keys::DATA_PREFIX).await?;
        let old: Vec<_> = objects
            .iter()
            .filter(|o| created_ms(&o.key).is_some_and(|t| t < horizon))
            .collect();
        let mut stats = GcStats {
            objects: objects.len(),
            ..GcStats::default()
        };
        if old.is_empty() {
            return Ok(stats);
        }
        // Read references after listing: an object committed in between is young anyway.
        let chunks = self.meta.range(&keys::chunks_prefix()).await?;
        let mut referenced = HashSet::new();
        for kv in &chunks.kvs {
            referenced.insert(decode_json::<ChunkRecord>(kv)?.object);
        }
        stats.referenced = referenced.len();
        for o in old {
            if !referenced.contains(&o.key) {
                self.store.delete(&o.key).await?;
                stats.deleted += 1;
            }
        }
        Ok(stats)
    }
}

impl LogService {
    /// Turns the periodic garbage collection on or off (in a cluster, the controller
    /// collects for everyone; references are read from the shared metadata either way).
    pub fn set_collecting(&self, on: bool) {
        let was = self.shared.collecting.swap(on, Ordering::SeqCst);
        if was != on {
            tracing::debug!(on, "garbage collection on this broker");
        }
    }

    /// Runs one garbage collection pass now.
    pub async fn collect_garbage(&self) -> Result<GcStats> {
        self.shared.collect_garbage().await
    }

    /// Runs one retention pass now (normally done by the flusher every
    /// `retention_check_ms`).
    pub async fn enforce_retention(&self) {
        self.shared.enforce_retention().await
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
        assert_eq!(created_ms("data/1/not-a-uuid.ksf"), None);
        assert_eq!(created_ms("_probe/x"), None);
    }
}
