//! Names and values of the group domain, and the request and response shapes of the
//! coordinator. No wire types: the app converts Kafka's sentinels (-1, "") to `Option`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::types::{LeaderEpoch, Millis, Offset, PartitionId, TopicId};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A consumer group's id as the client names it.
    GroupId
);
string_newtype!(
    /// A member of a group: handed out by the coordinator, unique within the group.
    MemberId
);
string_newtype!(
    /// `group.instance.id` of a static member: survives restarts of the member.
    InstanceId
);

/// Grows by one at every completed rebalance; fences members of older generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GenerationId(pub i32);

impl GenerationId {
    pub fn next(self) -> GenerationId {
        GenerationId(self.0.saturating_add(1))
    }
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// Being deleted or no longer served by this coordinator.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a state name case-insensitively (ListGroups filters).
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One protocol a member offers (e.g. "range" with its subscription), in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group: GroupId,
    /// `None` for a first join.
    pub member: Option<MemberId>,
    pub instance: Option<InstanceId>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED with an id to rejoin with.
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
}

/// A member's metadata as the leader receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub member: MemberId,
    pub generation: GenerationId,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: MemberId,
    /// Every member's metadata for the leader; empty for the others.
    pub members: Vec<JoinedMember>,
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group: GroupId,
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub generation: GenerationId,
    /// SyncGroup v5: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment; empty from followers.
    pub assignments: Vec<(MemberId, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    pub group: GroupId,
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub generation: GenerationId,
}

/// One member leaving: by member id, or (administratively) by instance id alone.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member: Option<MemberId>,
    pub instance: Option<InstanceId>,
}

/// A topic partition of a committed offset, addressed by topic name as clients do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    pub topic: String,
    pub partition: PartitionId,
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: Offset,
    pub leader_epoch: Option<LeaderEpoch>,
    /// The client's metadata string, returned as committed ("" when none was given).
    pub metadata: String,
    pub commit_ms: Millis,
    /// The topic's id at commit time: offsets of a deleted and re-created topic are not
    /// those of the new one.
    #[serde(default)]
    pub topic_id: Option<TopicId>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group: GroupId,
    /// `None` with no generation: a "simple" commit of a group that does not use the
    /// coordinator for membership.
    pub member: Option<MemberId>,
    pub instance: Option<InstanceId>,
    pub generation: Option<GenerationId>,
    pub offsets: Vec<(OffsetKey, CommittedOffset)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata of the selected protocol and the assignment, only while Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: GroupId,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol while Stable, else "".
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: GroupId,
    pub protocol_type: String,
    pub state: GroupState,
}
