//! Layout of the log's keys in the metadata store. Keys stay O(topics + partitions + chunks);
//! chunks are later merged into segments, which bounds them further.
//!
//! ```text
//! kafscale/topics/<name>                          TopicRecord
//! kafscale/leaders/<topic id>/<partition>         LeaderRecord (changes with leadership only)
//! kafscale/partitions/<topic id>/<partition>      PartitionRecord (log start and end)
//! kafscale/chunks/<topic id>/<partition>/<base>   ChunkRecord
//! ```
//! Numbers are zero-padded so that byte order is numeric order.

use crate::types::{Offset, PartitionKey, TopicId};

pub const ROOT: &str = "kafscale/";

pub fn topics_prefix() -> String {
    format!("{ROOT}topics/")
}

pub fn topic(name: &str) -> String {
    format!("{ROOT}topics/{name}")
}

pub fn partitions_prefix() -> String {
    format!("{ROOT}partitions/")
}

pub fn topic_partitions_prefix(topic: TopicId) -> String {
    format!("{ROOT}partitions/{topic}/")
}

pub fn partition(p: PartitionKey) -> String {
    format!("{ROOT}partitions/{}/{:05}", p.topic, p.partition.0)
}

pub fn leaders_prefix() -> String {
    format!("{ROOT}leaders/")
}

pub fn topic_leaders_prefix(topic: TopicId) -> String {
    format!("{ROOT}leaders/{topic}/")
}

pub fn leader(p: PartitionKey) -> String {
    format!("{ROOT}leaders/{}/{:05}", p.topic, p.partition.0)
}

/// Parses the partition out of a leader key.
pub fn parse_leader(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("leaders/")?)
}

pub fn chunks_prefix() -> String {
    format!("{ROOT}chunks/")
}

pub fn topic_chunks_prefix(topic: TopicId) -> String {
    format!("{ROOT}chunks/{topic}/")
}

pub fn partition_chunks_prefix(p: PartitionKey) -> String {
    format!("{ROOT}chunks/{}/{:05}/", p.topic, p.partition.0)
}

pub fn chunk(p: PartitionKey, base: Offset) -> String {
    format!("{}{:020}", partition_chunks_prefix(p), base.0)
}

/// Parses the partition and base offset out of a chunk key.
pub fn parse_chunk(key: &str) -> Option<(PartitionKey, Offset)> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("chunks/")?;
    let mut parts = rest.split('/');
    let topic = uuid::Uuid::parse_str(parts.next()?).ok()?;
    let partition = parts.next()?.parse().ok()?;
    let base = parts.next()?.parse().ok()?;
    Some((
        PartitionKey {
            topic: TopicId(topic),
            partition: crate::types::PartitionId(partition),
        },
        Offset(base),
    ))
}

/// Parses the partition out of a partition key.
pub fn parse_partition(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("partitions/")?)
}

/// Parses `<topic id>/<partition>`.
pub fn parse_topic_partition(rest: &str) -> Option<PartitionKey> {
    let (topic, partition) = rest.split_once('/')?;
    Some(PartitionKey {
        topic: TopicId(uuid::Uuid::parse_str(topic).ok()?),
        partition: crate::types::PartitionId(partition.parse().ok()?),
    })
}

/// Prefix of every data object in the object store.
pub const DATA_PREFIX: &str = "data/";

/// Key of a flush object in the object store: unique per broker and flush (a UUIDv7, whose
/// timestamp tells garbage collection the object's age).
pub fn flush_object(broker: crate::types::BrokerId, flush_id: uuid::Uuid) -> String {
    format!("{DATA_PREFIX}{broker}/{}.ksf", flush_id.simple())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::PartitionId;

    #[test]
    fn chunk_keys_round_trip_and_sort() {
        let p = PartitionKey {
            topic: TopicId::random(),
            partition: PartitionId(7),
        };
        let a = chunk(p, Offset(9));
        let b = chunk(p, Offset(10));
        assert!(a < b);
        assert_eq!(parse_chunk(&b), Some((p, Offset(10))));
        assert_eq!(parse_partition(&partition(p)), Some(p));
        assert_eq!(parse_leader(&leader(p)), Some(p));
        assert_eq!(parse_leader(&partition(p)), None);
    }
}
