//! The group coordinator of one broker: the groups of the shards it owns, in memory, with
//! their committed offsets mirrored from the metadata store.
//!
//! Membership lives in memory only (a restarted coordinator starts every group Empty and
//! members rejoin); committed offsets are written to the metadata store, under the shard's
//! fence, before a commit is acknowledged. One lock covers the groups; no I/O happens
//! under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};

use super::error::{GroupError, GroupResult};
use super::group::Group;
use super::keys::{self, ShardId, SHARDS};
use super::member::Step;
use super::shard::{ShardSlot, ShardStatus};
use super::types::{
    GroupDescription, GroupId, GroupListing, GroupState, HeartbeatRequest, JoinRequest,
    JoinResponse, LeavingMember, SyncRequest, SyncResponse,
};
use super::GroupConfig;
use crate::ports::{Clock, MetadataStore};
use crate::types::Millis;

pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) meta: Arc<dyn MetadataStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Every group of every owned shard; no I/O under this lock.
    pub(crate) groups: Mutex<HashMap<GroupId, Group>>,
    pub(crate) shards: Vec<ShardSlot>,
    /// Wakes the timer task when a deadline may have moved earlier.
    wake: Notify,
    /// Group states to persist (None: delete), newest per group.
    pub(crate) pending_snapshots: Mutex<HashMap<GroupId, Option<super::snapshot::GroupSnapshot>>>,
    pub(crate) snapshot_wake: Notify,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator that owns no shard yet.
    pub fn new(
        config: GroupConfig,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            config,
            meta,
            clock,
            groups: Mutex::new(HashMap::new()),
            shards: (0..SHARDS).map(|_| ShardSlot::default()).collect(),
            wake: Notify::new(),
            pending_snapshots: Mutex::new(HashMap::new()),
            snapshot_wake: Notify::new(),
        }
    }

    /// A single-node coordinator: claims every shard and loads its offsets. (With a
    /// cluster, the controller will assign shards and call [`Self::claim_shard`].)
    pub async fn open(
        config: GroupConfig,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
    ) -> GroupResult<Arc<GroupCoordinator>> {
        let c = Arc::new(GroupCoordinator::new(config, meta, clock));
        for s in 0..SHARDS {
            c.claim_shard(ShardId(s)).await?;
        }
        Ok(c)
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<GroupId, Group>> {
        // A panic while holding the lock cannot leave a group half-changed in a way later
        // requests could not handle, so a poisoned lock is still used.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Ok if this coordinator serves the group now.
    pub fn check_coordinator(&self, group: &GroupId) -> GroupResult<()> {
        match self.shards[keys::shard_of(group).0 as usize].status() {
            ShardStatus::Owned { .. } => Ok(()),
            ShardStatus::Loading => Err(GroupError::CoordinatorLoading(group.clone())),
            ShardStatus::NotOwned => Err(GroupError::NotCoordinator(group.clone())),
        }
    }

    pub(crate) fn check_group_id(group: &GroupId) -> GroupResult<()> {
        if group.0.is_empty() {
            return Err(GroupError::InvalidGroupId(group.0.clone()));
        }
        Ok(())
    }

    /// Starts a JoinGroup; the step completes when the join phase ends.
    pub fn begin_join(&self, req: JoinRequest) -> Step<JoinResponse> {
        match self.try_begin_join(req) {
            Ok(step) => step,
            Err(e) => Step::Ready(Err(e)),
        }
    }

    fn try_begin_join(&self, req: JoinRequest) -> GroupResult<Step<JoinResponse>> {
        Self::check_group_id(&req.group)?;
        self.check_coordinator(&req.group)?;
        let timeout = req.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms
            || timeout > self.config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout(timeout));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(GroupError::InconsistentProtocol);
        }
        let now = self.now();
        let mut groups = self.lock();
        let group = match (groups.get_mut(&req.group), &req.member) {
            (Some(_), _) | (None, None) => groups
                .entry(req.group.clone())
                .or_insert_with(|| Group::new(req.group.clone(), now)),
            (None, Some(m)) => return Err(GroupError::UnknownMember(m.clone())),
        };
        let step = group.join(req, now, &self.config);
        self.collect_snapshot(group);
        drop(groups);
        self.poke();
        Ok(step)
    }

    pub async fn join(&self, req: JoinRequest) -> GroupResult<JoinResponse> {
        let group = req.group.clone();
        self.begin_join(req).outcome(&group).await
    }

    pub fn begin_sync(&self, req: SyncRequest) -> Step<SyncResponse> {
        if let Err(e) = self.check_coordinator(&req.group) {
            return Step::Ready(Err(e));
        }
        let now = self.now();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(&req.group) else {
            return Step::Ready(Err(GroupError::UnknownMember(req.member)));
        };
        let step = group.sync(req, now);
        self.collect_snapshot(group);
        drop(groups);
        self.poke();
        step
    }

    pub async fn sync(&self, req: SyncRequest) -> GroupResult<SyncResponse> {
        let group = req.group.clone();
        self.begin_sync(req).outcome(&group).await
    }

    pub fn heartbeat(&self, req: &HeartbeatRequest) -> GroupResult<()> {
        self.check_coordinator(&req.group)?;
        let now = self.now();
        let mut groups = self.lock();
        match groups.get_mut(&req.group) {
            Some(group) => group.heartbeat(req, now),
            None => Err(GroupError::UnknownMember(req.member.clone())),
        }
    }

    /// One result per leaving member; Err: the whole request failed.
    pub fn leave(
        &self,
        group: &GroupId,
        leaving: &[LeavingMember],
    ) -> GroupResult<Vec<GroupResult<()>>> {
        self.check_coordinator(group)?;
        let now = self.now();
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return Ok(leaving
                .iter()
                .map(|l| {
                    Err(GroupError::UnknownMember(
                        l.member
                            .clone()
                            .unwrap_or_else(|| super::MemberId(String::new())),
                    ))
                })
                .collect());
        };
        let out = g.leave(leaving, now, &self.config);
        self.collect_snapshot(g);
        drop(groups);
        self.poke();
        out
    }

    /// The group as DescribeGroups shows it; None if this coordinator has no such group.
    pub fn describe(&self, group: &GroupId) -> GroupResult<Option<GroupDescription>> {
        self.check_coordinator(group)?;
        Ok(self.lock().get(group).map(Group::describe))
    }

    /// Groups of the owned shards, optionally only those in the given states.
    pub fn list(&self, states: &[GroupState]) -> Vec<GroupListing> {
        let mut out: Vec<GroupListing> = self
            .lock()
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .map(|g| GroupListing {
                group: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// Applies every deadline that has passed; returns the next one.
    pub fn tick(&self) -> Option<Millis> {
        let now = self.now();
        let mut groups = self.lock();
        groups.retain(|_, g| !g.is_disposable(now, &self.config));
        let mut next: Option<Millis> = None;
        for g in groups.values_mut() {
            g.tick(now, &self.config);
            self.collect_snapshot(g);
            if let Some(d) = g.next_deadline() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    /// Runs the timers (session, rebalance, sync and initial-delay deadlines) until `stop`
    /// turns true.
    pub async fn run_timers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        const MAX_IDLE_MS: i64 = 1000;
        loop {
            if *stop.borrow() {
                return;
            }
            let next = self.tick();
            let now = self.now();
            let wait = next.map_or(MAX_IDLE_MS, |d| (d - now).clamp(1, MAX_IDLE_MS));
            let sleep = self.clock.sleep(Duration::from_millis(wait.unsigned_abs()));
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
