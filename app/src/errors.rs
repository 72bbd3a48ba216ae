//! The one place where core errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use kafscale_core::batch::BatchError;
use kafscale_core::group::GroupError;
use kafscale_core::Error;

pub fn code(e: &Error) -> i16 {
    use ResponseError as R;
    let r = match e {
        Error::UnknownTopic(_) | Error::UnknownPartition(_) => R::UnknownTopicOrPartition,
        Error::TopicAlreadyExists(_) => R::TopicAlreadyExists,
        Error::InvalidTopic(_) => R::InvalidTopicException,
        Error::InvalidPartitions(_) => R::InvalidPartitions,
        Error::InvalidConfig { .. } => R::InvalidConfig,
        Error::NotLeader(_) | Error::LeaderLoading(_) => R::NotLeaderOrFollower,
        Error::LeaderNotAvailable(_) => R::LeaderNotAvailable,
        Error::FencedLeaderEpoch { .. } => R::FencedLeaderEpoch,
        Error::UnknownLeaderEpoch { .. } => R::UnknownLeaderEpoch,
        Error::CorruptBatch(BatchError::CrcMismatch { .. } | BatchError::Truncated { .. }) => {
            R::CorruptMessage
        }
        Error::CorruptBatch(_) => R::InvalidRecord,
        Error::BatchTooLarge { .. } => R::MessageTooLarge,
        Error::OffsetOutOfRange { .. } => R::OffsetOutOfRange,
        Error::CorruptData { .. } | Error::MissingData(_) => R::KafkaStorageError,
        Error::Store(_) | Error::Metadata(_) => R::KafkaStorageError,
        Error::Timeout(_) => R::RequestTimedOut,
        Error::ShuttingDown => R::NotLeaderOrFollower,
        Error::Group(g) => return group_code(g),
    };
    r.code()
}

/// Kafka code of a consumer-group error.
pub fn group_code(e: &GroupError) -> i16 {
    use ResponseError as R;
    let r = match e {
        GroupError::InvalidGroupId(_) => R::InvalidGroupId,
        GroupError::InvalidSessionTimeout(_) => R::InvalidSessionTimeout,
        GroupError::InconsistentProtocol => R::InconsistentGroupProtocol,
        GroupError::UnknownMember(_) => R::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => R::IllegalGeneration,
        GroupError::MemberIdRequired(_) => R::MemberIdRequired,
        GroupError::FencedInstance { .. } => R::FencedInstanceId,
        GroupError::RebalanceInProgress => R::RebalanceInProgress,
        GroupError::GroupNotFound(_) => R::GroupIdNotFound,
        GroupError::NonEmptyGroup(_) => R::NonEmptyGroup,
        GroupError::SubscribedToTopic(_) => R::GroupSubscribedToTopic,
        GroupError::MetadataTooLarge { .. } => R::OffsetMetadataTooLarge,
        GroupError::NotCoordinator(_) => R::NotCoordinator,
        GroupError::CoordinatorLoading(_) => R::CoordinatorLoadInProgress,
        // Retriable for every client: it looks the coordinator up again and retries.
        GroupError::CoordinatorNotAvailable(_) | GroupError::Metadata(_) => {
            R::CoordinatorNotAvailable
        }
    };
    r.code()
}

/// Kafka codes used directly by handlers for request-level problems.
pub mod codes {
    use kafka_protocol::error::ResponseError as R;

    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = R::UnknownTopicOrPartition.code();
    pub const UNKNOWN_TOPIC_ID: i16 = R::UnknownTopicId.code();
    pub const INVALID_REQUIRED_ACKS: i16 = R::InvalidRequiredAcks.code();
    pub const INVALID_RECORD: i16 = R::InvalidRecord.code();
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = R::UnsupportedCompressionType.code();
    pub const UNSUPPORTED_VERSION: i16 = R::UnsupportedVersion.code();
    pub const INVALID_TOPIC: i16 = R::InvalidTopicException.code();
    pub const INVALID_REPLICATION_FACTOR: i16 = R::InvalidReplicationFactor.code();
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = R::FetchSessionIdNotFound.code();
    pub const KAFKA_STORAGE_ERROR: i16 = R::KafkaStorageError.code();
    pub const REQUEST_TIMED_OUT: i16 = R::RequestTimedOut.code();
    pub const INVALID_REQUEST: i16 = R::InvalidRequest.code();
    pub const COORDINATOR_NOT_AVAILABLE: i16 = R::CoordinatorNotAvailable.code();
    pub const GROUP_ID_NOT_FOUND: i16 = R::GroupIdNotFound.code();
    pub const INVALID_GROUP_ID: i16 = R::InvalidGroupId.code();
    pub const MESSAGE_TOO_LARGE: i16 = R::MessageTooLarge.code();
    pub const OFFSET_OUT_OF_RANGE: i16 = R::OffsetOutOfRange.code();
    pub const INVALID_PARTITIONS: i16 = R::InvalidPartitions.code();
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = R::InvalidReplicaAssignment.code();
    pub const INVALID_CONFIG: i16 = R::InvalidConfig.code();
    pub const LEADER_NOT_AVAILABLE: i16 = R::LeaderNotAvailable.code();
    pub const NOT_LEADER_OR_FOLLOWER: i16 = R::NotLeaderOrFollower.code();
    pub const FENCED_LEADER_EPOCH: i16 = R::FencedLeaderEpoch.code();
    pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = R::UnsupportedEndpointType.code();
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
        R::TransactionalIdAuthorizationFailed.code();
}
