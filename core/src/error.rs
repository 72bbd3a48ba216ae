//! The core error: one enum whose kinds a caller can act on. The app maps each kind to a
//! Kafka error code in exactly one place.

use crate::batch::BatchError;
use crate::group::GroupError;
use crate::object_format::FormatError;
use crate::ports::{MetadataError, StoreError};
use crate::types::{LeaderEpoch, Offset, PartitionKey};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {0}")]
    UnknownPartition(PartitionKey),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("invalid config {name}: {reason}")]
    InvalidConfig { name: String, reason: String },
    #[error("this broker is not the leader of {0}")]
    NotLeader(PartitionKey),
    #[error("partition {0} has no leader available yet")]
    LeaderNotAvailable(PartitionKey),
    #[error("this broker is loading {0}, whose leadership it just received")]
    LeaderLoading(PartitionKey),
    #[error("leader epoch {requested} of {partition} is older than the current {current}")]
    FencedLeaderEpoch {
        partition: PartitionKey,
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("leader epoch {requested} of {partition} is newer than the current {current}")]
    UnknownLeaderEpoch {
        partition: PartitionKey,
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("invalid record batch: {0}")]
    CorruptBatch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { size: usize, max: usize },
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        offset: Offset,
        start: Offset,
        end: Offset,
    },
    #[error("corrupt stored data in {key}: {source}")]
    CorruptData {
        key: String,
        #[source]
        source: FormatError,
    },
    #[error("stored data missing: {0}")]
    MissingData(String),
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("broker is shutting down")]
    ShuttingDown,
    #[error("consumer group: {0}")]
    Group(#[from] GroupError),
}

impl Error {
    /// Whether a client may retry the same request and expect it to succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_retriable(),
            Error::Metadata(e) => e.is_retriable(),
            Error::Group(e) => e.is_retriable(),
            Error::NotLeader(_)
            | Error::LeaderNotAvailable(_)
            | Error::LeaderLoading(_)
            | Error::UnknownLeaderEpoch { .. }
            | Error::Timeout(_)
            | Error::ShuttingDown => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
