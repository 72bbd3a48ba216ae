//! A member of a classic group and the waiters of its pending JoinGroup and SyncGroup.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::{GroupError, GroupResult};
use super::types::{InstanceId, JoinResponse, MemberId, Protocol, SyncResponse};
use crate::types::Millis;

pub(crate) type JoinWaiter = oneshot::Sender<GroupResult<JoinResponse>>;
pub(crate) type SyncWaiter = oneshot::Sender<GroupResult<SyncResponse>>;

/// The answer of a JoinGroup or SyncGroup: now, or once the rebalance gets there.
#[derive(Debug)]
pub enum Step<T> {
    Ready(GroupResult<T>),
    Wait(oneshot::Receiver<GroupResult<T>>),
}

impl<T> Step<T> {
    /// Waits for the answer. A waiter dropped without an answer (its group was unloaded)
    /// reads as "coordinator not available", which clients retry.
    pub async fn outcome(self, group: &super::types::GroupId) -> GroupResult<T> {
        match self {
            Step::Ready(r) => r,
            Step::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| Err(GroupError::CoordinatorNotAvailable(group.clone()))),
        }
    }

    /// The answer if it is already there (tests use it to observe a pending step).
    pub fn try_outcome(&mut self) -> Option<GroupResult<T>> {
        match self {
            Step::Ready(_) => {
                let taken = std::mem::replace(self, Step::Wait(oneshot::channel().1));
                match taken {
                    Step::Ready(r) => Some(r),
                    Step::Wait(_) => None,
                }
            }
            Step::Wait(rx) => rx.try_recv().ok(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: MemberId,
    pub instance: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    /// The protocols the member offers, in its order of preference.
    pub protocols: Vec<Protocol>,
    /// What the leader assigned to this member in the current generation.
    pub assignment: Bytes,
    /// Join order: the first member leads, and the leader sees members in this order.
    pub seq: u64,
    /// Set while the member's JoinGroup waits for the rebalance to complete.
    pub awaiting_join: Option<JoinWaiter>,
    /// Set while the member's SyncGroup waits for the leader's assignment.
    pub awaiting_sync: Option<SyncWaiter>,
    /// The member is removed if it does not heartbeat before this (not counted while it
    /// waits in a JoinGroup or SyncGroup: the rebalance has its own deadlines).
    pub session_deadline: Millis,
}

impl Member {
    /// Whether the member offers exactly these protocols (same order, same metadata).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub fn supports(&self, name: &str) -> bool {
        self.protocols.iter().any(|p| p.name == name)
    }

    /// The member's most preferred protocol among the candidates.
    pub fn vote<'a>(&'a self, candidates: &[String]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|n| candidates.iter().any(|c| c == n))
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn is_waiting(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }

    /// Answers a pending JoinGroup, if any; a client that went away is no error.
    pub fn answer_join(&mut self, result: GroupResult<JoinResponse>) {
        if let Some(w) = self.awaiting_join.take() {
            let _ = w.send(result);
        }
    }

    pub fn answer_sync(&mut self, result: GroupResult<SyncResponse>) {
        if let Some(w) = self.awaiting_sync.take() {
            let _ = w.send(result);
        }
    }
}
