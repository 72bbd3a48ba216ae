//! One handler per Kafka API: wire request in, core calls, wire response out.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
mod group_common;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
mod leader_hint;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl;
pub mod scram_credentials;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Converts between the wire's UUIDs and ours (the same crate, kept apart at the boundary).
pub(crate) fn wire_uuid(id: kafscale_core::TopicId) -> uuid::Uuid {
    id.0
}

/// Records in a buffer of whole v2 batches, from their headers alone (for metrics); stops at
/// the first batch it cannot read.
pub(crate) fn record_count(mut buf: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(h) = kafscale_core::batch::peek_header(buf) {
        n += u64::try_from(h.record_count).unwrap_or(0);
        buf = &buf[h.size..];
    }
    n
}
