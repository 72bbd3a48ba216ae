//! The API versions this broker speaks: the intersection of what the kafka-protocol decoders
//! accept and what the handlers implement, with floors low enough for kafkajs, aiokafka and
//! older librdkafka.

use kafka_protocol::messages::ApiKey;

pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // v0-2 are advertised (old librdkafka enables compression only then) but refused.
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    // Consumer groups. OffsetCommit below v2 and OffsetFetch below v1 cannot be decoded.
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // Admin APIs (the ranges the decoders accept).
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Idempotent producers (transactional ids are refused).
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeProducers, 0, 0),
];

pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_are_decodable() {
        for (key, min, max) in SUPPORTED {
            let decodable = key.valid_versions();
            assert!(*max <= decodable.max, "{key:?}");
            // Produce below v3 is advertised on purpose and refused on use.
            if *key != ApiKey::Produce {
                assert!(*min >= decodable.min, "{key:?}");
            }
        }
    }
}
