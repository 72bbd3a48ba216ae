//! The metadata schema: every key KafScale keeps in the metadata store, the records they
//! hold and how those are encoded, and the fenced transactions that write them.
//!
//! ```text
//! kafscale/topics/<name>                                  TopicRecord (JSON)
//! kafscale/leaders/<topic id>/<partition>                 LeaderRecord (JSON): changes with leadership only
//! kafscale/checkpoints/<topic id>/<partition>             Checkpoint (binary): a partition's state up to its tail
//! kafscale/segments/<topic id>/<partition>/<base>         segment (binary): a merged range
//! kafscale/flushes/<broker>/<incarnation>/<seq>           FlushRecord (binary): what one flush committed
//! kafscale/fences/<broker>                                the broker's fence (its revision is what counts)
//! kafscale/producer-ids                                   next free producer id block (JSON)
//! kafscale/brokers/<id>                                   BrokerRecord (JSON), under the broker's lease
//! kafscale/controller                                     ControllerRecord (JSON), under the controller's lease
//! kafscale/moves/<topic id>/<partition>                   MoveRecord (JSON): a hand-over under way
//! kafscale/groups/shards/<shard>                          ShardRecord (JSON)
//! kafscale/groups/state/<shard>/<group>                   GroupSnapshot (JSON)
//! kafscale/groups/offsets/<shard>/<group>/<topic>/<p>     CommittedOffset
//! kafscale/groups/txn-offsets/<shard>/<group>/<producer id>/<topic>/<p>
//!                                                         CommittedOffset staged by a transaction
//! kafscale/txns/<shard>/<transactional id>                TxnRecord (JSON): a transactional id's state
//! kafscale/configs/brokers/<id>|default                  dynamic broker configs (JSON map): AlterConfigs
//! kafscale/users/<name>                                   UserRecord (JSON): SCRAM credentials
//! kafscale/acls/<type>/<pattern>/<name>/<principal>/<host>/<operation>/<permission>
//!                                                         AclBinding (JSON)
//! kafscale/secrets/scram-decoy                            random bytes shared by the brokers
//! ```
//!
//! Keys stay O(brokers + topics + partitions + segments + groups + committed offsets), plus
//! the flush records written since the last checkpoint round of each broker.
//!
//! # The write path's budget
//! A flush commits with **one** transaction: it compares the broker's fence and puts one
//! flush record of a constant size plus a few bytes per partition in the flush. A
//! partition's state is its checkpoint plus the flush records after it; checkpoints are
//! written in rounds (many partitions per transaction, their chunk lists in one checkpoint
//! object in the object store), and the flush records a round covers are deleted.

pub mod codec;
pub mod keys;
pub mod records;

pub use codec::CodecError;
pub use records::{
    Checkpoint, ChunkRecord, Cleaned, FlushPart, FlushRecord, SectionRef, SegmentRecord,
    SegmentRef, Tail,
};

use crate::ports::metadata::KeyValue;
use crate::ports::{Compare, MetadataError, TxnOp};

/// A record read from the store that does not decode.
pub fn corrupt(kv: &KeyValue, e: CodecError) -> MetadataError {
    MetadataError::Corrupt {
        key: kv.key.clone(),
        message: e.to_string(),
    }
}

/// The compare of a fenced write: the key still has the mod revision the writer last saw
/// (0: it is still absent).
pub fn unchanged(key: String, revision: i64) -> Compare {
    Compare::ModRevision { key, revision }
}

pub fn put(key: String, value: bytes::Bytes) -> TxnOp {
    TxnOp::Put {
        key,
        value,
        lease: None,
    }
}
