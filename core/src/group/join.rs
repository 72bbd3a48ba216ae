//! JoinGroup: new, known, pending and static members (Kafka's handleJoinGroup).

use tokio::sync::oneshot;

use super::error::GroupError;
use super::group::Group;
use super::member::{Member, Step};
use super::types::{GroupState, JoinRequest, JoinResponse, MemberId};
use super::GroupConfig;
use crate::types::Millis;

impl Group {
    /// Handles a JoinGroup whose session timeout and group id were already checked.
    pub fn join(&mut self, req: JoinRequest, now: Millis, cfg: &GroupConfig) -> Step<JoinResponse> {
        if self.state == GroupState::Dead {
            return Step::Ready(Err(GroupError::CoordinatorNotAvailable(self.id.clone())));
        }
        let step = match req.member.clone() {
            None => self.join_new(req, now, cfg),
            Some(id) => self.join_known(id, req, now, cfg),
        };
        self.try_complete_join(now);
        step
    }

    fn join_new(&mut self, req: JoinRequest, now: Millis, cfg: &GroupConfig) -> Step<JoinResponse> {
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Step::Ready(Err(GroupError::InconsistentProtocol));
        }
        let prefix = match &req.instance {
            Some(i) => i.as_str(),
            None => req.client_id.as_str(),
        };
        let id = MemberId(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        if let Some(instance) = &req.instance {
            if let Some(old) = self.statics.get(instance).cloned() {
                return self.replace_static(old, id, req, now, cfg);
            }
            return self.add_and_rebalance(id, req, now, cfg);
        }
        if req.require_known_member_id {
            self.pending
                .insert(id.clone(), now + i64::from(req.session_timeout_ms));
            return Step::Ready(Err(GroupError::MemberIdRequired(id)));
        }
        self.add_and_rebalance(id, req, now, cfg)
    }

    fn join_known(
        &mut self,
        id: MemberId,
        req: JoinRequest,
        now: Millis,
        cfg: &GroupConfig,
    ) -> Step<JoinResponse> {
        if self.pending.remove(&id).is_some() {
            if !self.supports(&req.protocol_type, &req.protocols) {
                return Step::Ready(Err(GroupError::InconsistentProtocol));
            }
            return self.add_and_rebalance(id, req, now, cfg);
        }
        if let Err(e) = self.validate_member(&id, req.instance.as_ref()) {
            return Step::Ready(Err(e));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Step::Ready(Err(GroupError::InconsistentProtocol));
        }
        let (matches, is_leader) = match self.members.get(&id) {
            Some(m) => (m.matches(&req.protocols), self.leader.as_ref() == Some(&id)),
            None => return Step::Ready(Err(GroupError::UnknownMember(id))),
        };
        match self.state {
            GroupState::PreparingRebalance => self.update_and_rebalance(id, req, now, cfg),
            // The same metadata again: the member missed its answer; repeat it.
            GroupState::CompletingRebalance if matches => Step::Ready(Ok(self.join_response(&id))),
            GroupState::CompletingRebalance => self.update_and_rebalance(id, req, now, cfg),
            // The leader rejoins to force a rebalance (e.g. its subscription changed).
            GroupState::Stable if is_leader || !matches => {
                self.update_and_rebalance(id, req, now, cfg)
            }
            GroupState::Stable => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.session_deadline = now + m.session_timeout_ms;
                }
                Step::Ready(Ok(self.join_response(&id)))
            }
            GroupState::Empty | GroupState::Dead => Step::Ready(Err(GroupError::UnknownMember(id))),
        }
    }

    fn add_and_rebalance(
        &mut self,
        id: MemberId,
        req: JoinRequest,
        now: Millis,
        cfg: &GroupConfig,
    ) -> Step<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(instance) = &req.instance {
            self.statics.insert(instance.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance: req.instance,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: i64::from(req.session_timeout_ms),
                rebalance_timeout_ms: i64::from(req.rebalance_timeout_ms),
                protocols: req.protocols,
                assignment: Default::default(),
                seq,
                awaiting_join: Some(tx),
                awaiting_sync: None,
                session_deadline: now + i64::from(req.session_timeout_ms),
            },
        );
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(d) = self.initial_delay.as_mut() {
            d.new_member_added = true;
        }
        tracing::info!(group = %self.id, member = %id, "member joins");
        self.maybe_prepare_rebalance(now, cfg);
        Step::Wait(rx)
    }

    fn update_and_rebalance(
        &mut self,
        id: MemberId,
        req: JoinRequest,
        now: Millis,
        cfg: &GroupConfig,
    ) -> Step<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&id) {
            m.protocols = req.protocols;
            m.session_timeout_ms = i64::from(req.session_timeout_ms);
            m.rebalance_timeout_ms = i64::from(req.rebalance_timeout_ms);
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            // A repeated JoinGroup replaces the earlier one, which is told to rejoin.
            m.answer_join(Err(GroupError::RebalanceInProgress));
            m.awaiting_join = Some(tx);
        }
        self.maybe_prepare_rebalance(now, cfg);
        Step::Wait(rx)
    }

    /// A known static member rejoins with a new member id (it restarted): the old id is
    /// fenced; a Stable group keeps its assignment when the selected protocol holds.
    fn replace_static(
        &mut self,
        old: MemberId,
        new: MemberId,
        req: JoinRequest,
        now: Millis,
        cfg: &GroupConfig,
    ) -> Step<JoinResponse> {
        let Some(mut m) = self.members.remove(&old) else {
            return self.add_and_rebalance(new, req, now, cfg);
        };
        if let Some(instance) = req.instance.clone() {
            let fenced = || GroupError::FencedInstance {
                instance: instance.clone(),
                requested: old.clone(),
                current: new.clone(),
            };
            m.answer_join(Err(fenced()));
            m.answer_sync(Err(fenced()));
            self.statics.insert(instance, new.clone());
        }
        let previous_leader = self.leader_id();
        if self.leader.as_ref() == Some(&old) {
            self.leader = Some(new.clone());
        }
        if self.pending_sync.remove(&old) {
            self.pending_sync.insert(new.clone());
        }
        m.id = new.clone();
        m.protocols = req.protocols;
        m.session_timeout_ms = i64::from(req.session_timeout_ms);
        m.rebalance_timeout_ms = i64::from(req.rebalance_timeout_ms);
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_deadline = now + m.session_timeout_ms;
        tracing::info!(group = %self.id, old = %old, new = %new, "static member rejoins");
        self.members.insert(new.clone(), m);
        if self.state == GroupState::Stable && self.select_protocol() == self.protocol {
            // Answer with the old leader id so that this member does not compute an
            // assignment a Stable group would never hand out.
            return Step::Ready(Ok(JoinResponse {
                members: Vec::new(),
                leader: previous_leader,
                ..self.join_response(&new)
            }));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&new) {
            m.awaiting_join = Some(tx);
        }
        if self.state == GroupState::CompletingRebalance {
            // The leader may already be assigning to the old id.
            self.prepare_rebalance(now, cfg);
        } else {
            self.maybe_prepare_rebalance(now, cfg);
        }
        Step::Wait(rx)
    }
}
