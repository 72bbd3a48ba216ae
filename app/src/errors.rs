//! Why a request, or one topic, partition, group or resource of it, failed, and the one place
//! where that becomes a Kafka error code ([`RequestError::code`]). A handler decides an error
//! by its kind: a core error, a group error, or a condition of the request itself; it never
//! picks a number.

use kafka_protocol::error::ResponseError;
use kafscale_core::batch::BatchError;
use kafscale_core::group::GroupError;
use kafscale_core::txn::TxnError;
use kafscale_core::Error;

/// What a handler answers with an error code (and, where the API has one, a message).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Core(#[from] Error),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// A transactional batch for a partition its transaction does not hold.
    #[error("partition was not added to the transaction")]
    PartitionNotInTransaction,
    /// The transaction's coordinator, another broker, cannot verify the batch's transaction
    /// now: retriable, as Kafka answers (NOT_ENOUGH_REPLICAS, which every producer retries).
    #[error("cannot verify the transaction with its coordinator: {0}")]
    TxnUnverified(String),
    /// The transaction's coordinator, another broker, refused the producer when asked to
    /// verify its transaction: its code is passed on, as Kafka does (a fenced epoch, say).
    #[error("the transaction's coordinator refused the producer: {}", error_name(*.0))]
    RefusedByCoordinator(i16),
    #[error("not authorized on the transactional id")]
    TransactionalIdAuthorizationFailed,
    #[error("transactional id {0} not found")]
    TransactionalIdNotFound(String),
    /// Transaction markers are written by the brokers only.
    #[error("control batches cannot be produced by clients")]
    ControlBatchFromClient,
    /// Another part of a batched request failed, so this one was not tried.
    #[error("not attempted: another part of the request failed")]
    OperationNotAttempted,
    /// The request contradicts itself or asks what no broker serves (a duplicate name, an
    /// unknown operation, a resource type that cannot be altered).
    #[error("{0}")]
    Invalid(String),
    /// A config the request gives cannot be taken as it is (a null value).
    #[error("{0}")]
    InvalidConfig(String),
    #[error("replication factor must be -1 or positive")]
    InvalidReplicationFactor,
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A partition count that cannot be reached from the current one.
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("invalid acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("no records")]
    NoRecords,
    #[error("record batch of {size} bytes exceeds the topic's max.message.bytes of {max}")]
    TopicMessageTooLarge { size: usize, max: usize },
    /// Records without a key produced to a compacted topic (KIP-467: their indexes in the
    /// batch).
    #[error("compacted topic cannot accept records without a key ({} of the batch)", .indexes.len())]
    KeylessRecordInCompactedTopic { indexes: Vec<i32> },
    /// CreateTime records whose timestamps lie too far from the broker's clock: (index in
    /// the batch, timestamp) of each, and the window `[low, high]` they missed.
    #[error("{} record(s) with timestamps outside [{low}, {high}], the topic's message.timestamp.before/after.max.ms around the broker's time", .records.len())]
    InvalidTimestamp {
        records: Vec<(i32, i64)>,
        low: i64,
        high: i64,
    },
    #[error("zstd requires produce v7 or later")]
    ZstdNeedsProduceV7,
    /// The object store is known to be down: refused before anything is queued.
    #[error("object store unavailable; retry later")]
    StorageUnavailable,
    #[error("{0}")]
    TimedOut(&'static str),
    /// A topic or partition the request names that does not exist (where the API has no
    /// room for its name in the message).
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id {0}")]
    UnknownTopicId(uuid::Uuid),
    /// A partition whose topic exists but which has no live leader now.
    #[error("no leader available")]
    LeaderNotAvailable,
    /// A group coordinator that is moving between brokers; the client retries.
    #[error("the group's coordinator is moving; retry")]
    CoordinatorMoving,
    #[error("group {0} not found")]
    GroupIdNotFound(String),
    /// A committed offset a transaction is changing (OffsetFetch `require_stable`).
    #[error("a transaction has an offset of the partition pending; retry")]
    UnstableOffsetCommit,
    /// DeleteRecords before the log start or beyond the high watermark.
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error("fetch sessions are not supported")]
    FetchSessionIdNotFound,
    #[error("unsupported version")]
    UnsupportedVersion,
    #[error("endpoint type {0} is not served: KafScale brokers are their own controllers")]
    UnsupportedEndpointType(i8),
    /// A SASL request out of turn: on a listener without SASL, or after authentication.
    #[error("no SASL exchange is under way on this connection")]
    IllegalSaslState,
    #[error("SASL mechanism not enabled on this listener")]
    UnsupportedSaslMechanism,
    #[error("{0}")]
    UnacceptableCredential(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    DuplicateResource(String),
    #[error("not authorized on the cluster")]
    ClusterAuthorizationFailed,
    #[error("not authorized on the topic")]
    TopicAuthorizationFailed,
    #[error("not authorized on the group")]
    GroupAuthorizationFailed,
    /// The one answer to a failed authentication, whatever the cause.
    #[error("{0}")]
    SaslAuthenticationFailed(&'static str),
}

impl RequestError {
    /// The Kafka error code of this error: the one place the broker chooses codes.
    pub fn code(&self) -> i16 {
        use RequestError as E;
        use ResponseError as R;
        let r = match self {
            E::RefusedByCoordinator(code) => return *code,
            E::TxnUnverified(_) => R::NotEnoughReplicas,
            E::Core(Error::Group(g)) | E::Group(g) => group_kind(g),
            E::Core(e) => core_kind(e),
            E::Txn(TxnError::Coordinator(g)) => group_kind(g),
            E::Txn(t) => txn_kind(t),
            E::PartitionNotInTransaction => R::InvalidTxnState,
            E::TransactionalIdAuthorizationFailed => R::TransactionalIdAuthorizationFailed,
            E::TransactionalIdNotFound(_) => R::TransactionalIdNotFound,
            E::OperationNotAttempted => R::OperationNotAttempted,
            E::ControlBatchFromClient => R::InvalidRecord,
            E::Invalid(_) => R::InvalidRequest,
            E::InvalidConfig(_) => R::InvalidConfig,
            E::InvalidReplicationFactor => R::InvalidReplicationFactor,
            E::InvalidReplicaAssignment(_) => R::InvalidReplicaAssignment,
            E::InvalidPartitions(_) => R::InvalidPartitions,
            E::InvalidRequiredAcks(_) => R::InvalidRequiredAcks,
            E::NoRecords => R::InvalidRecord,
            E::TopicMessageTooLarge { .. } => R::MessageTooLarge,
            E::InvalidTimestamp { .. } => R::InvalidTimestamp,
            E::KeylessRecordInCompactedTopic { .. } => R::InvalidRecord,
            E::ZstdNeedsProduceV7 => R::UnsupportedCompressionType,
            E::StorageUnavailable => R::KafkaStorageError,
            E::CoordinatorMoving => R::CoordinatorNotAvailable,
            E::TimedOut(_) => R::RequestTimedOut,
            E::UnknownTopicOrPartition => R::UnknownTopicOrPartition,
            E::UnknownTopicId(_) => R::UnknownTopicId,
            E::LeaderNotAvailable => R::LeaderNotAvailable,
            E::GroupIdNotFound(_) => R::GroupIdNotFound,
            E::UnstableOffsetCommit => R::UnstableOffsetCommit,
            E::OffsetOutOfRange => R::OffsetOutOfRange,
            E::FetchSessionIdNotFound => R::FetchSessionIdNotFound,
            E::UnsupportedVersion => R::UnsupportedVersion,
            E::UnsupportedEndpointType(_) => R::UnsupportedEndpointType,
            E::IllegalSaslState => R::IllegalSaslState,
            E::UnsupportedSaslMechanism => R::UnsupportedSaslMechanism,
            E::SaslAuthenticationFailed(_) => R::SaslAuthenticationFailed,
            E::UnacceptableCredential(_) => R::UnacceptableCredential,
            E::ClusterAuthorizationFailed => R::ClusterAuthorizationFailed,
            E::TopicAuthorizationFailed => R::TopicAuthorizationFailed,
            E::GroupAuthorizationFailed => R::GroupAuthorizationFailed,
            E::ResourceNotFound(_) => R::ResourceNotFound,
            E::DuplicateResource(_) => R::DuplicateResource,
        };
        r.code()
    }

    /// [`Self::code`] for a transactional API whose versions before `fenced_since` predate
    /// PRODUCER_FENCED (KIP-588): Kafka answers those INVALID_PRODUCER_EPOCH.
    pub fn txn_code(&self, version: i16, fenced_since: i16) -> i16 {
        let code = self.code();
        if version < fenced_since && code == ResponseError::ProducerFenced.code() {
            ResponseError::InvalidProducerEpoch.code()
        } else {
            code
        }
    }

    /// Whether the client should look the partition's leader up again (and gets a hint of
    /// where it went, where the API carries one).
    pub fn leader_moved(&self) -> bool {
        self.code() == ResponseError::NotLeaderOrFollower.code()
    }

    /// [`Self::leader_moved`], or a leader epoch older than the leader's.
    pub fn leader_moved_or_fenced(&self) -> bool {
        self.leader_moved() || self.code() == ResponseError::FencedLeaderEpoch.code()
    }
}

/// The code of success.
pub const NO_ERROR: i16 = 0;

/// The code of an outcome: [`NO_ERROR`] for success.
pub fn code_of<T>(result: &Result<T, RequestError>) -> i16 {
    result.as_ref().err().map_or(NO_ERROR, RequestError::code)
}

/// `UNKNOWN_TOPIC_OR_PARTITION`, as Kafka spells its error names (`NONE` for success).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(c)) => format!("error code {c}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

fn core_kind(e: &Error) -> ResponseError {
    use ResponseError as R;
    match e {
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
        Error::OutOfOrderSequence { .. } => R::OutOfOrderSequenceNumber,
        Error::InvalidProducerEpoch { .. } => R::InvalidProducerEpoch,
        Error::UnknownProducerId(_) => R::UnknownProducerId,
        Error::ShuttingDown => R::NotLeaderOrFollower,
        Error::Group(g) => group_kind(g),
    }
}

fn txn_kind(e: &TxnError) -> ResponseError {
    use ResponseError as R;
    match e {
        TxnError::InvalidTransactionalId(_) => R::InvalidRequest,
        TxnError::InvalidTimeout { .. } => R::InvalidTransactionTimeout,
        TxnError::ProducerFenced { .. } => R::ProducerFenced,
        TxnError::InvalidProducerIdMapping => R::InvalidProducerIdMapping,
        TxnError::ConcurrentTransactions => R::ConcurrentTransactions,
        TxnError::InvalidTxnState { .. } => R::InvalidTxnState,
        TxnError::Coordinator(g) => group_kind(g),
        // Retriable: the client looks the coordinator up again and retries.
        TxnError::ProducerIds(_) | TxnError::Markers(_) | TxnError::Metadata(_) => {
            R::CoordinatorNotAvailable
        }
    }
}

fn group_kind(e: &GroupError) -> ResponseError {
    use ResponseError as R;
    match e {
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
        GroupError::ProducerFenced { .. } => R::ProducerFenced,
        GroupError::NotCoordinator(_) => R::NotCoordinator,
        GroupError::CoordinatorLoading(_) => R::CoordinatorLoadInProgress,
        // Retriable for every client: it looks the coordinator up again and retries.
        GroupError::CoordinatorNotAvailable(_) | GroupError::Metadata(_) => {
            R::CoordinatorNotAvailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafscale_core::group::GroupId;

    #[test]
    fn a_group_error_has_one_code_however_it_arrives() {
        let direct = RequestError::from(GroupError::GroupNotFound(GroupId("g".into())));
        let via_core =
            RequestError::from(Error::Group(GroupError::GroupNotFound(GroupId("g".into()))));
        assert_eq!(direct.code(), ResponseError::GroupIdNotFound.code());
        assert_eq!(via_core.code(), direct.code());
    }

    #[test]
    fn success_is_code_zero_and_messages_are_the_wire_texts() {
        assert_eq!(code_of(&Ok::<(), RequestError>(())), 0);
        let e = RequestError::TopicMessageTooLarge { size: 10, max: 5 };
        assert_eq!(
            code_of(&Err::<(), _>(e)),
            ResponseError::MessageTooLarge.code()
        );
        assert_eq!(
            RequestError::InvalidRequiredAcks(7).to_string(),
            "invalid acks 7"
        );
    }

    #[test]
    fn older_transactional_clients_get_invalid_producer_epoch_for_a_fence() {
        let fenced = RequestError::from(TxnError::ProducerFenced {
            producer_id: 1,
            epoch: 0,
        });
        assert_eq!(
            fenced.txn_code(3, 4),
            ResponseError::InvalidProducerEpoch.code()
        );
        assert_eq!(fenced.txn_code(4, 4), ResponseError::ProducerFenced.code());
        let timeout = RequestError::from(TxnError::InvalidTimeout {
            timeout_ms: 0,
            max_ms: 1,
        });
        assert_eq!(
            timeout.txn_code(0, 4),
            ResponseError::InvalidTransactionTimeout.code()
        );
    }

    #[test]
    fn leader_moves_are_recognised_by_kind() {
        let p = kafscale_core::PartitionKey {
            topic: kafscale_core::TopicId(uuid::Uuid::nil()),
            partition: kafscale_core::PartitionId(0),
        };
        assert!(RequestError::from(Error::NotLeader(p)).leader_moved());
        assert!(RequestError::from(Error::LeaderLoading(p)).leader_moved());
        assert!(!RequestError::from(Error::LeaderNotAvailable(p)).leader_moved_or_fenced());
        assert!(!RequestError::LeaderNotAvailable.leader_moved());
    }
}
