//! In-process lease table: TTLs, deadlines on tokio's clock, and the keys attached to each
//! lease so that expiry can delete them.

use kafscale_core::ports::{LeaseId, MetadataError, WatchEventKind};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

use super::state::Change;

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct LeaseTable {
    leases: HashMap<LeaseId, Lease>,
    next_id: i64,
}

impl LeaseTable {
    pub(crate) fn new() -> LeaseTable {
        // Seeded from the wall clock so that ids are not reused across restarts of a durable
        // store, where a stale id in a log line would otherwise name a new lease.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let seed = i64::try_from(seed % (1 << 52)).unwrap_or(0);
        LeaseTable {
            leases: HashMap::new(),
            next_id: seed.max(1),
        }
    }

    pub(crate) fn grant(&mut self, ttl: Duration, now: Instant) -> LeaseId {
        let id = LeaseId(self.next_id);
        self.next_id += 1;
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
        id
    }

    /// A lease whose deadline has passed is gone even if the sweeper has not run yet.
    pub(crate) fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Result<(), MetadataError> {
        match self.leases.get_mut(&id) {
            Some(lease) if lease.deadline > now => {
                lease.deadline = now + lease.ttl;
                Ok(())
            }
            _ => Err(MetadataError::LeaseNotFound(id)),
        }
    }

    /// Those of `ids` that exist and have not expired.
    pub(crate) fn live(
        &self,
        ids: impl IntoIterator<Item = LeaseId>,
        now: Instant,
    ) -> HashSet<LeaseId> {
        ids.into_iter()
            .filter(|id| self.leases.get(id).is_some_and(|l| l.deadline > now))
            .collect()
    }

    /// The keys attached to a lease, if it exists (expired or not).
    pub(crate) fn keys(&self, id: LeaseId) -> Option<Vec<String>> {
        self.leases
            .get(&id)
            .map(|lease| lease.keys.iter().cloned().collect())
    }

    /// Forgets a lease; its keys must have been deleted first.
    pub(crate) fn remove(&mut self, id: LeaseId) {
        self.leases.remove(&id);
    }

    /// Leases past their deadline, with their keys. They stay in the table until the caller
    /// has deleted the keys and calls [`LeaseTable::remove`], so a failed delete is retried.
    pub(crate) fn expired(&self, now: Instant) -> Vec<(LeaseId, Vec<String>)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, l)| (*id, l.keys.iter().cloned().collect()))
            .collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }

    /// Moves keys between leases as committed changes dictate.
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            let key = &change.event.kv.key;
            if let Some(prev) = change.prev_lease {
                if let Some(lease) = self.leases.get_mut(&prev) {
                    lease.keys.remove(key);
                }
            }
            if change.event.kind == WatchEventKind::Put {
                if let Some(lease) = change.event.kv.lease {
                    if let Some(lease) = self.leases.get_mut(&lease) {
                        lease.keys.insert(key.clone());
                    }
                }
            }
        }
    }
}
