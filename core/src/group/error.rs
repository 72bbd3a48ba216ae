//! Errors of the group coordinator. Each kind is one Kafka error code, chosen in the app.

use crate::ports::MetadataError;

use super::types::{GenerationId, GroupId, InstanceId, MemberId};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    #[error("session timeout {0} ms is outside the allowed range")]
    InvalidSessionTimeout(i32),
    #[error("protocol type or protocols do not match the group's")]
    InconsistentProtocol,
    #[error("unknown member {0} of the group")]
    UnknownMember(MemberId),
    #[error("generation {requested} is not the group's generation {current}")]
    IllegalGeneration {
        requested: GenerationId,
        current: GenerationId,
    },
    /// A first join (v4+): the client must rejoin with this member id.
    #[error("member id required; rejoin as {0}")]
    MemberIdRequired(MemberId),
    #[error("static member {instance} is now member {current}, not {requested}")]
    FencedInstance {
        instance: InstanceId,
        requested: MemberId,
        current: MemberId,
    },
    #[error("group is rebalancing")]
    RebalanceInProgress,
    #[error("group {0} does not exist")]
    GroupNotFound(GroupId),
    #[error("group {0} still has members")]
    NonEmptyGroup(GroupId),
    #[error("group is subscribed to topic {0}")]
    SubscribedToTopic(String),
    #[error("offset metadata of {size} bytes exceeds the limit of {max} bytes")]
    MetadataTooLarge { size: usize, max: usize },
    /// TxnOffsetCommit from a producer whose id has been seen here at a newer epoch (in a
    /// transaction marker or a newer producer's commit): a zombie.
    #[error("producer {producer_id} epoch {epoch} is fenced: the group's coordinator has seen epoch {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("this broker is not the coordinator of group {0}")]
    NotCoordinator(GroupId),
    #[error("coordinator of group {0} is loading")]
    CoordinatorLoading(GroupId),
    /// The group is being deleted or its state is unknown for now; clients retry.
    #[error("coordinator not available for group {0}")]
    CoordinatorNotAvailable(GroupId),
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
}

impl GroupError {
    /// Whether the same request may succeed when retried as it is.
    pub fn is_retriable(&self) -> bool {
        match self {
            GroupError::NotCoordinator(_)
            | GroupError::CoordinatorLoading(_)
            | GroupError::CoordinatorNotAvailable(_)
            | GroupError::RebalanceInProgress => true,
            GroupError::Metadata(e) => e.is_retriable(),
            _ => false,
        }
    }
}

pub type GroupResult<T> = Result<T, GroupError>;
