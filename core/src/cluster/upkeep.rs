//! Upkeep of the metadata store: its status (size, keys, revision, alarms) polled for metrics
//! and readiness, a probe write while writes are refused for lack of space (so that the
//! broker notices when an operator has made room), and, on the controller, compaction of the
//! store's history.
//!
//! etcd keeps every revision until compacted; under a steady load its database would grow
//! until the quota's NOSPACE alarm refuses every write. The controller compacts to the
//! revision it saw `compaction_retention` ago: watches that fall behind by less than that
//! can still resume, and the database stays flat.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Inner;
use crate::ports::metadata::MetadataStoreExt;
use crate::ports::StoreStatus;
use crate::schema::keys;

/// What is known of the store's health.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    pub status: Option<StoreStatus>,
    /// The revision the controller last compacted to.
    pub compacted: i64,
    pub compactions: u64,
}

pub(super) async fn run(inner: Arc<Inner>) {
    let mut samples: VecDeque<(i64, i64)> = VecDeque::new();
    let mut last_compaction = inner.clock.now_ms();
    let mut last_problem: Option<String> = None;
    loop {
        inner
            .clock
            .sleep(inner.config.metadata_status_interval)
            .await;
        match inner.meta.status().await {
            Ok(status) => {
                let now = inner.clock.now_ms();
                samples.push_back((now, status.revision));
                inner.write_health().status = Some(status);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the metadata store's status"),
        }
        if inner.log.metadata_full() {
            probe(&inner).await;
        }
        let problem = super::Cluster::problem_of(&inner);
        if problem != last_problem {
            match &problem {
                Some(p) => tracing::warn!(problem = %p, "not ready"),
                None => tracing::info!("metadata store takes writes again: ready"),
            }
            last_problem = problem;
        }
        let retention = inner.config.metadata_compaction_retention.as_millis() as i64;
        let now = inner.clock.now_ms();
        while samples.len() > 1 && samples[1].0 <= now - retention {
            samples.pop_front();
        }
        let due =
            now - last_compaction >= inner.config.metadata_compaction_interval.as_millis() as i64;
        if due && inner.is_controller() {
            last_compaction = now;
            if let Some(&(at, revision)) = samples.front().filter(|(at, _)| *at <= now - retention)
            {
                compact(&inner, revision, now - at).await;
            }
        }
    }
}

/// A small write: succeeds once the store takes writes again.
async fn probe(inner: &Arc<Inner>) {
    let value = bytes::Bytes::from(inner.clock.now_ms().to_string());
    match inner.meta.put(&keys::store_probe(), value).await {
        Ok(o) if o.succeeded => inner.log.clear_metadata_full(),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "metadata store still refuses writes"),
    }
}

async fn compact(inner: &Arc<Inner>, revision: i64, age_ms: i64) {
    if revision <= inner.read_health().compacted {
        return;
    }
    match inner.meta.compact(revision).await {
        Ok(()) => {
            let mut h = inner.write_health();
            h.compacted = revision;
            h.compactions += 1;
            tracing::debug!(revision, age_ms, "metadata store history compacted");
        }
        Err(e) => {
            tracing::warn!(revision, error = %e, "cannot compact the metadata store's history")
        }
    }
}

impl super::Cluster {
    /// Why this broker cannot take writes now, if it cannot: the metadata store is
    /// unreachable, has raised an alarm, or refused the last write for lack of space.
    pub fn metadata_problem(&self) -> Option<String> {
        Self::problem_of(&self.inner)
    }

    fn problem_of(inner: &Inner) -> Option<String> {
        if !inner.metadata_ok.load(Ordering::SeqCst) {
            return Some("metadata store unreachable".into());
        }
        let health = inner.read_health();
        if let Some(alarms) = health
            .status
            .as_ref()
            .map(|s| &s.alarms)
            .filter(|a| !a.is_empty())
        {
            return Some(format!("metadata store alarm: {}", alarms.join(", ")));
        }
        drop(health);
        if inner.log.metadata_full() {
            return Some("metadata store out of space: writes refused".into());
        }
        None
    }

    /// The metadata store's last reported status and the controller's compactions.
    pub fn store_health(&self) -> StoreHealth {
        self.inner.read_health().clone()
    }
}
