//! Scheduled metadata backups: the controller writes a [`Backup`] to the object store every
//! `metadata.backup.interval.ms` and keeps the newest `metadata.backup.retention`.
//!
//! Backups are named by their time and revision, so that their names sort in the order they
//! were taken and the newest one tells when the next is due. That makes the schedule survive
//! restarts and controller changes: whichever broker is the controller looks at the newest
//! name, not at its own memory. The object collector only looks under `data/`, so backups
//! are never taken for garbage.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::Cluster;
use crate::backup::{Backup, BackupError};
use crate::ports::{Clock, MetadataStore, ObjectStore, PutMode};
use crate::types::Millis;

/// Where backups go in the object store.
pub const BACKUPS_PREFIX: &str = "_backups/metadata/";
/// How often the controller checks whether a backup is due, at most.
const CHECK_PERIOD: Duration = Duration::from_secs(60);

/// The object name of a backup taken at `created_ms` of `revision`.
pub fn backup_key(created_ms: Millis, revision: i64) -> String {
    format!("{BACKUPS_PREFIX}{created_ms:015}-r{revision:015}.kmb")
}

/// When the backup of this object name was taken.
fn created_ms(key: &str) -> Option<Millis> {
    key.strip_prefix(BACKUPS_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

/// Runs until `stop` is set; does nothing while this broker is not the controller or when
/// backups are off (interval zero).
pub async fn run(
    cluster: Cluster,
    meta: Arc<dyn MetadataStore>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = cluster.config().metadata_backup_interval;
    let keep = cluster.config().metadata_backup_retention.max(1);
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = clock.sleep(interval.min(CHECK_PERIOD)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !cluster.is_controller() {
            continue;
        }
        if let Err(e) = back_up_if_due(&*meta, &*store, &*clock, interval, keep).await {
            tracing::warn!(error = %e, "metadata backup failed; retrying at the next check");
        }
    }
}

/// Takes a backup if the newest is older than `interval`, then deletes all but the newest
/// `keep`. Returns the key written, if any.
pub async fn back_up_if_due(
    meta: &dyn MetadataStore,
    store: &dyn ObjectStore,
    clock: &dyn Clock,
    interval: Duration,
    keep: usize,
) -> Result<Option<String>, BackupError> {
    let now = clock.now_ms();
    let existing = store.list(BACKUPS_PREFIX).await?;
    let newest = existing.iter().filter_map(|o| created_ms(&o.key)).max();
    let due = newest.is_none_or(|t| now - t >= interval.as_millis() as i64);
    let mut written = None;
    // Only names this module gives count; anything else under the prefix is left alone.
    let mut keys: Vec<String> = existing
        .into_iter()
        .map(|o| o.key)
        .filter(|k| created_ms(k).is_some())
        .collect();
    if due {
        let backup = Backup::take(meta, now).await?;
        let key = backup_key(now, backup.revision);
        store.put(&key, backup.encode(), PutMode::Overwrite).await?;
        tracing::info!(key = %key, keys = backup.entries.len(), revision = backup.revision, "metadata backed up");
        keys.push(key.clone());
        written = Some(key);
    }
    keys.sort();
    let excess = keys.len().saturating_sub(keep);
    for key in &keys[..excess] {
        store.delete(key).await?;
    }
    Ok(written)
}
