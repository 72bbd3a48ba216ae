//! Producer ids for idempotent producers: unique across the cluster, handed out from blocks
//! reserved in the metadata store (`kafscale/producer-ids`, the next free id), so a broker
//! writes there once per block, not once per producer.

use serde::{Deserialize, Serialize};

use super::LogService;
use crate::error::{Error, Result};
use crate::ports::metadata::{decode_json, encode_json};
use crate::ports::{KeyValue, MetadataError, MetadataStoreExt};
use crate::schema::keys;

/// Ids reserved per trip to the metadata store.
const BLOCK: i64 = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct NextId {
    next: i64,
}

/// The next free producer id a `producer-ids` value holds.
pub(crate) fn decode_next(kv: &KeyValue) -> std::result::Result<i64, MetadataError> {
    Ok(decode_json::<NextId>(kv)?.next)
}

pub(crate) fn encode_next(next: i64) -> bytes::Bytes {
    encode_json(&NextId { next })
}

/// The ids of the block this broker reserved: `next..end`.
#[derive(Debug, Default)]
pub(super) struct IdBlock {
    next: i64,
    end: i64,
}

impl LogService {
    /// A producer id no other producer of the cluster has had.
    pub async fn allocate_producer_id(&self) -> Result<i64> {
        let mut block = self.shared.producer_ids.lock().await;
        if block.next >= block.end {
            *block = self.reserve_block().await?;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    async fn reserve_block(&self) -> Result<IdBlock> {
        let meta = &self.shared.meta;
        for _ in 0..20 {
            let (start, revision) = match meta.get(&keys::producer_ids()).await? {
                Some(kv) => (decode_next(&kv)?, kv.mod_revision),
                None => (0, 0),
            };
            let end = start + BLOCK;
            let outcome = meta
                .compare_and_swap(&keys::producer_ids(), revision, encode_next(end))
                .await?;
            if outcome.succeeded {
                tracing::debug!(start, end, "reserved producer ids");
                return Ok(IdBlock { next: start, end });
            }
        }
        Err(Error::Timeout(0))
    }
}
