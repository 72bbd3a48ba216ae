//! Stable committed offsets (OffsetFetch with `require_stable`, KIP-447): a partition whose
//! offset a transaction has staged (see `txn_offsets.rs`) and not yet settled is unstable,
//! because the transaction may be committing: a consumer that started from the committed
//! offset now would process again what that transaction already wrote. Kafka answers
//! UNSTABLE_OFFSET_COMMIT for it, and the consumer asks again until the markers are written.

use std::collections::BTreeSet;

use super::coordinator::GroupCoordinator;
use super::error::GroupResult;
use super::keys;
use super::types::{CommittedOffset, GroupId, OffsetKey};
use crate::schema::keys as schema_keys;
use crate::schema::records::OffsetRecord;
use crate::types::Millis;

/// The committed offsets asked for and, apart, the partitions among them that are unstable.
pub type StableOffsets = (
    Vec<(OffsetKey, Option<CommittedOffset>)>,
    BTreeSet<OffsetKey>,
);

impl GroupCoordinator {
    /// [`Self::fetch_offsets`], and which of the partitions have offsets staged by a
    /// transaction that is not settled. A staged offset older than `max_pending_ms` is a
    /// leftover (a transaction lives at most `transaction.max.timeout.ms` before its
    /// coordinator aborts it and settles its offsets) and does not count, so that it cannot
    /// hold a consumer back for ever.
    pub async fn fetch_stable_offsets(
        &self,
        group: &GroupId,
        partitions: Option<&[OffsetKey]>,
        max_pending_ms: Millis,
    ) -> GroupResult<StableOffsets> {
        self.check_coordinator(group)?;
        let shard = keys::shard_of(group);
        // Settlement moves the staged offsets to the committed ones under this lock: both
        // are read in one state.
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let staged = self
            .meta
            .range(&schema_keys::group_all_txn_offsets_prefix(group))
            .await?;
        let now = self.now();
        let unstable: BTreeSet<OffsetKey> = staged
            .kvs
            .iter()
            .filter(|kv| {
                // An unreadable value counts: unsure, the consumer waits.
                OffsetRecord::decode(&kv.value).map_or(true, |v| now - v.commit_ms < max_pending_ms)
            })
            .filter_map(|kv| schema_keys::parse_txn_offset(&kv.key))
            .map(|(_, _, key)| key)
            .collect();
        let offsets = self.fetch_offsets(group, partitions)?;
        Ok((offsets, unstable))
    }
}
