//! SyncGroup, Heartbeat, LeaveGroup and the member checks shared with OffsetCommit.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::member::Step;
use super::types::{
    CommitRequest, GenerationId, GroupDescription, GroupState, HeartbeatRequest, InstanceId,
    LeavingMember, MemberDescription, MemberId, SyncRequest, SyncResponse,
};
use super::GroupConfig;
use crate::types::Millis;

impl Group {
    /// A static member's old id is fenced; then the member must be known.
    pub fn validate_member(&self, id: &MemberId, instance: Option<&InstanceId>) -> GroupResult<()> {
        if let Some(instance) = instance {
            if let Some(current) = self.statics.get(instance) {
                if current != id {
                    return Err(GroupError::FencedInstance {
                        instance: instance.clone(),
                        requested: id.clone(),
                        current: current.clone(),
                    });
                }
            }
        }
        if !self.members.contains_key(id) {
            return Err(GroupError::UnknownMember(id.clone()));
        }
        Ok(())
    }

    fn validate_generation(&self, generation: GenerationId) -> GroupResult<()> {
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                requested: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    pub fn sync(&mut self, req: SyncRequest, now: Millis) -> Step<SyncResponse> {
        match self.try_sync(req, now) {
            Ok(step) => step,
            Err(e) => Step::Ready(Err(e)),
        }
    }

    fn try_sync(&mut self, req: SyncRequest, now: Millis) -> GroupResult<Step<SyncResponse>> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable(self.id.clone()));
        }
        self.validate_member(&req.member, req.instance.as_ref())?;
        self.validate_generation(req.generation)?;
        let type_differs = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t));
        let name_differs = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| self.protocol.as_ref() != Some(n));
        if type_differs || name_differs {
            return Err(GroupError::InconsistentProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMember(req.member)),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&req.member);
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member) {
                    m.answer_sync(Err(GroupError::RebalanceInProgress));
                    m.awaiting_sync = Some(tx);
                }
                if self.leader.as_ref() == Some(&req.member) {
                    self.apply_assignment(req.assignments, now);
                }
                Ok(Step::Wait(rx))
            }
            GroupState::Stable => {
                self.pending_sync.remove(&req.member);
                if self.pending_sync.is_empty() {
                    self.sync_deadline = None;
                }
                let m = self
                    .members
                    .get_mut(&req.member)
                    .ok_or_else(|| GroupError::UnknownMember(req.member.clone()))?;
                m.session_deadline = now + m.session_timeout_ms;
                let m = &self.members[&req.member];
                Ok(Step::Ready(Ok(self.sync_response(m))))
            }
        }
    }

    /// Stores the leader's assignment as sent (members it does not name get nothing) and
    /// answers every member waiting in SyncGroup.
    fn apply_assignment(&mut self, assignments: Vec<(MemberId, Bytes)>, now: Millis) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        for (id, assignment) in assignments {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = assignment;
            }
        }
        self.state = GroupState::Stable;
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        tracing::info!(group = %self.id, generation = %self.generation, "group is stable");
        let (protocol_type, protocol_name) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if m.awaiting_sync.is_some() {
                m.session_deadline = now + m.session_timeout_ms;
                m.answer_sync(Ok(SyncResponse {
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: m.assignment.clone(),
                }));
            }
        }
    }

    pub fn heartbeat(&mut self, req: &HeartbeatRequest, now: Millis) -> GroupResult<()> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable(self.id.clone()));
        }
        self.validate_member(&req.member, req.instance.as_ref())?;
        self.validate_generation(req.generation)?;
        let state = self.state;
        let m = self
            .members
            .get_mut(&req.member)
            .ok_or_else(|| GroupError::UnknownMember(req.member.clone()))?;
        match state {
            GroupState::Empty | GroupState::Dead => {
                Err(GroupError::UnknownMember(req.member.clone()))
            }
            GroupState::PreparingRebalance => {
                m.session_deadline = now + m.session_timeout_ms;
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now + m.session_timeout_ms;
                Ok(())
            }
        }
    }

    /// Removes the members; one result per member. Err: the whole request failed.
    pub fn leave(
        &mut self,
        leaving: &[LeavingMember],
        now: Millis,
        cfg: &GroupConfig,
    ) -> GroupResult<Vec<GroupResult<()>>> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable(self.id.clone()));
        }
        let mut out = Vec::with_capacity(leaving.len());
        for l in leaving {
            let result = match (&l.member, &l.instance) {
                // Administrative removal by instance id.
                (None, Some(instance)) => match self.statics.get(instance).cloned() {
                    Some(id) => {
                        tracing::info!(group = %self.id, member = %id, "static member removed");
                        self.remove_and_update(&id, now, cfg);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMember(MemberId(String::new()))),
                },
                (None, None) => Err(GroupError::UnknownMember(MemberId(String::new()))),
                (Some(id), _) if self.pending.remove(id).is_some() => {
                    self.try_complete_join(now);
                    Ok(())
                }
                (Some(id), instance) => self.validate_member(id, instance.as_ref()).map(|()| {
                    tracing::info!(group = %self.id, member = %id, "member leaves");
                    self.remove_and_update(id, now, cfg);
                }),
            };
            out.push(result);
        }
        Ok(out)
    }

    /// Who may commit offsets now (Kafka's validateOffsetCommit plus the state rules).
    /// A member's commit counts as a sign of life: its session is refreshed.
    pub fn validate_commit(&mut self, req: &CommitRequest, now: Millis) -> GroupResult<()> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable(self.id.clone()));
        }
        if req.generation.is_some() || req.member.is_some() || req.instance.is_some() {
            let member = req
                .member
                .clone()
                .unwrap_or_else(|| MemberId(String::new()));
            self.validate_member(&member, req.instance.as_ref())?;
            self.validate_generation(req.generation.unwrap_or(GenerationId(-1)))?;
            if self.state == GroupState::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            if let Some(m) = self.members.get_mut(&member) {
                if !m.is_waiting() {
                    m.session_deadline = now + m.session_timeout_ms;
                }
            }
            return Ok(());
        }
        if !self.members.is_empty() {
            // Only members commit to a group that has members.
            return Err(GroupError::UnknownMember(MemberId(String::new())));
        }
        Ok(())
    }

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = self
            .ordered_members()
            .into_iter()
            .map(|m| MemberDescription {
                member: m.id.clone(),
                instance: m.instance.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            group: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }
    }
}
