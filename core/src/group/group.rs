//! One classic group: its members, generation and the rebalance transitions between
//! Empty, PreparingRebalance, CompletingRebalance and Stable, all driven by the caller's
//! notion of now (the coordinator reads it from the `Clock` port).
//!
//! The requests that move a group (join, sync, heartbeat, leave) are in `join.rs` and
//! `membership.rs`; this file holds the state and the transitions they share.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::error::GroupError;
use super::member::Member;
use super::types::{
    CommittedOffset, GenerationId, GroupId, GroupState, InstanceId, JoinResponse, JoinedMember,
    MemberId, OffsetKey, SyncResponse,
};
use super::GroupConfig;
use crate::types::Millis;

/// The initial rebalance delay of a group that was empty (Kafka's InitialDelayedJoin):
/// each member arriving during the delay extends it, up to the rebalance timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InitialDelay {
    pub delay_ms: i64,
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub id: GroupId,
    pub state: GroupState,
    pub generation: GenerationId,
    pub protocol_type: Option<String>,
    /// Selected at the end of each join phase.
    pub protocol: Option<String>,
    pub leader: Option<MemberId>,
    pub members: BTreeMap<MemberId, Member>,
    pub statics: HashMap<InstanceId, MemberId>,
    /// Ids handed out with MEMBER_ID_REQUIRED and not joined yet, with their expiry. A
    /// rebalance waits for them (they rejoin at once) until they expire.
    pub pending: HashMap<MemberId, Millis>,
    pub next_seq: u64,
    /// While PreparingRebalance: when the join phase ends even if members are missing.
    pub join_deadline: Option<Millis>,
    pub initial_delay: Option<InitialDelay>,
    /// Members of this generation that have not sent SyncGroup yet; they are removed at
    /// `sync_deadline`.
    pub pending_sync: BTreeSet<MemberId>,
    pub sync_deadline: Option<Millis>,
    /// Committed offsets; every entry here is durable in the metadata store.
    pub offsets: BTreeMap<OffsetKey, CommittedOffset>,
    /// When the group last became Empty (for dropping empty groups without offsets).
    pub empty_since: Option<Millis>,
    /// The (state, generation) last persisted for the next coordinator.
    pub persisted: Option<(GroupState, GenerationId)>,
}

impl Group {
    pub fn new(id: GroupId, now: Millis) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: GenerationId(0),
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            next_seq: 0,
            join_deadline: None,
            initial_delay: None,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            offsets: BTreeMap::new(),
            empty_since: Some(now),
            persisted: Some((GroupState::Empty, GenerationId(0))),
        }
    }

    /// Members in join order.
    pub fn ordered_members(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.seq);
        v
    }

    /// Protocols every member supports, in the first member's order of preference.
    pub fn candidates(&self) -> Vec<String> {
        let ordered = self.ordered_members();
        let Some(first) = ordered.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| ordered.iter().all(|m| m.supports(n)))
            .collect()
    }

    /// Whether a member with this protocol type and these protocols can be in the group.
    pub fn supports(&self, protocol_type: &str, protocols: &[super::types::Protocol]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidates()
                .iter()
                .any(|c| protocols.iter().any(|p| &p.name == c))
    }

    /// The protocol most members prefer among those all support; ties go to the earlier
    /// one in the first member's preference.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some(v) = m.vote(&candidates) {
                if let Some(slot) = votes.iter_mut().find(|(n, _)| n == v) {
                    slot.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    pub fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn leader_id(&self) -> MemberId {
        self.leader
            .clone()
            .unwrap_or_else(|| MemberId(String::new()))
    }

    /// What a member learns of the current generation; the leader gets every member.
    pub fn join_response(&self, member: &MemberId) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if self.leader.as_ref() == Some(member) {
            self.ordered_members()
                .into_iter()
                .map(|m| JoinedMember {
                    member: m.id.clone(),
                    instance: m.instance.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            member: member.clone(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader_id(),
            members,
        }
    }

    pub fn sync_response(&self, member: &Member) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: member.assignment.clone(),
        }
    }

    /// Starts a rebalance unless one is already preparing.
    pub fn maybe_prepare_rebalance(&mut self, now: Millis, cfg: &GroupConfig) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, cfg);
        }
    }

    pub fn prepare_rebalance(&mut self, now: Millis, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            // Followers waiting for an assignment that will not come rejoin instead.
            for m in self.members.values_mut() {
                m.answer_sync(Err(GroupError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty && cfg.initial_rebalance_delay_ms > 0 {
            let delay = cfg.initial_rebalance_delay_ms;
            self.join_deadline = Some(now + delay);
            self.initial_delay = Some(InitialDelay {
                delay_ms: delay,
                remaining_ms: (timeout - delay).max(0),
                new_member_added: false,
            });
        } else {
            self.join_deadline = Some(now + timeout);
            self.initial_delay = None;
        }
        self.state = GroupState::PreparingRebalance;
        self.empty_since = None;
    }

    /// Ends the join phase early once every member has rejoined (never during the
    /// initial delay, which exists to gather members).
    pub fn try_complete_join(&mut self, now: Millis) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.awaiting_join.is_some())
        {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin leave, a new generation starts and
    /// every waiting member gets its JoinGroup answer.
    pub fn complete_join(&mut self, now: Millis) {
        let missing: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time");
            self.remove_member(&id);
        }
        self.join_deadline = None;
        self.initial_delay = None;
        self.generation = self.generation.next();
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.state = GroupState::Empty;
            self.empty_since = Some(now);
            tracing::info!(group = %self.id, generation = %self.generation, "group is empty");
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.ordered_members().first().map(|m| m.id.clone());
        }
        self.protocol = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        tracing::info!(
            group = %self.id,
            generation = %self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "join phase complete"
        );
        let ids: Vec<MemberId> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout_ms;
                m.answer_join(Ok(response));
            }
        }
    }

    /// Removes a member (its pending requests learn it is unknown) and picks a new leader
    /// if it led. The caller decides whether this starts a rebalance.
    pub fn remove_member(&mut self, id: &MemberId) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        m.answer_join(Err(GroupError::UnknownMember(id.clone())));
        m.answer_sync(Err(GroupError::UnknownMember(id.clone())));
        if let Some(instance) = &m.instance {
            if self.statics.get(instance) == Some(id) {
                self.statics.remove(instance);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_ref() == Some(id) {
            self.leader = self.ordered_members().first().map(|m| m.id.clone());
        }
    }

    /// Removes a member that left or expired and moves the group on.
    pub fn remove_and_update(&mut self, id: &MemberId, now: Millis, cfg: &GroupConfig) {
        self.remove_member(id);
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, cfg);
        }
        // Everyone left may already have rejoined (or nobody is left).
        self.try_complete_join(now);
    }

    /// Applies every deadline that has passed.
    pub fn tick(&mut self, now: Millis, cfg: &GroupConfig) {
        if self.state == GroupState::Dead {
            return;
        }
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != before {
            self.try_complete_join(now);
        }
        let expired: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| !m.is_waiting() && m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_and_update(&id, now, cfg);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            match self.initial_delay {
                Some(mut d) if d.new_member_added && d.remaining_ms > 0 => {
                    let extend = d.delay_ms.min(d.remaining_ms);
                    d.remaining_ms -= extend;
                    d.new_member_added = false;
                    self.initial_delay = Some(d);
                    self.join_deadline = Some(now + extend);
                }
                _ => self.complete_join(now),
            }
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
        {
            self.sync_deadline = None;
            let late: Vec<MemberId> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !late.is_empty() {
                for id in &late {
                    tracing::info!(group = %self.id, member = %id, "member did not sync in time");
                    self.remove_member(id);
                }
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now);
            }
        }
    }

    /// The earliest deadline still ahead, for the timer.
    pub fn next_deadline(&self) -> Option<Millis> {
        let sessions = self
            .members
            .values()
            .filter(|m| !m.is_waiting())
            .map(|m| m.session_deadline);
        let join = match self.state {
            GroupState::PreparingRebalance => self.join_deadline,
            _ => None,
        };
        sessions
            .chain(self.pending.values().copied())
            .chain(join)
            .chain(self.sync_deadline)
            .min()
    }

    /// Whether an empty group without offsets has been kept long enough.
    pub fn is_disposable(&self, now: Millis, cfg: &GroupConfig) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.pending.is_empty()
            && self
                .empty_since
                .is_some_and(|t| now - t >= cfg.empty_group_retention_ms)
    }
}
