//! Unit tests of the group coordinator, driven by a manual clock against an in-memory
//! metadata store.
#![allow(clippy::unwrap_used)]

mod joins;
mod offsets;
mod static_members;
pub(crate) mod store;
mod timeouts;

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::ports::{ManualClock, MetadataStore};

pub(super) struct Fixture {
    pub clock: ManualClock,
    pub meta: Arc<store::MemStore>,
    pub c: Arc<GroupCoordinator>,
}

pub(super) const SESSION: i32 = 10_000;
pub(super) const REBALANCE: i32 = 30_000;

pub(super) fn config(delay: i64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: delay,
        ..GroupConfig::default()
    }
}

impl Fixture {
    pub async fn new(delay: i64) -> Fixture {
        let clock = ManualClock::new(1_000_000);
        let meta = Arc::new(store::MemStore::default());
        let c = GroupCoordinator::open(
            config(delay),
            meta.clone() as Arc<dyn MetadataStore>,
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        Fixture { clock, meta, c }
    }

    /// A coordinator restarted on the same store.
    pub async fn restart(&self) -> Arc<GroupCoordinator> {
        GroupCoordinator::open(
            config(0),
            self.meta.clone() as Arc<dyn MetadataStore>,
            Arc::new(self.clock.clone()),
        )
        .await
        .unwrap()
    }

    pub fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.c.tick();
    }
}

pub(super) fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

pub(super) fn join_req(group: &str, member: Option<&MemberId>) -> JoinRequest {
    JoinRequest {
        group: GroupId::from(group),
        member: member.cloned(),
        instance: None,
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range", "roundrobin"]),
        require_known_member_id: false,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
    }
}

pub(super) fn sync_req(group: &str, member: &MemberId, generation: GenerationId) -> SyncRequest {
    SyncRequest {
        group: GroupId::from(group),
        member: member.clone(),
        instance: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }
}

pub(super) fn heartbeat(
    c: &GroupCoordinator,
    group: &str,
    member: &MemberId,
    generation: GenerationId,
) -> GroupResult<()> {
    c.heartbeat(&HeartbeatRequest {
        group: GroupId::from(group),
        member: member.clone(),
        instance: None,
        generation,
    })
}

pub(super) fn state(c: &GroupCoordinator, group: &str) -> GroupState {
    c.describe(&GroupId::from(group)).unwrap().unwrap().state
}

/// The finished answer of a step, failing the test if it is still pending.
pub(super) fn done<T: std::fmt::Debug>(step: &mut Step<T>) -> GroupResult<T> {
    step.try_outcome().expect("step still pending")
}

pub(super) fn pending<T: std::fmt::Debug>(step: &mut Step<T>) {
    assert!(step.try_outcome().is_none(), "step should still be pending");
}

/// Joins one member to an empty group (no delay) and syncs it: generation 1, Stable.
pub(super) async fn stable_single(f: &Fixture, group: &str) -> JoinResponse {
    let j = f.c.join(join_req(group, None)).await.unwrap();
    let mut s = sync_req(group, &j.member, j.generation);
    s.assignments = vec![(j.member.clone(), Bytes::from_static(b"a1"))];
    let got = f.c.sync(s).await.unwrap();
    assert_eq!(got.assignment, Bytes::from_static(b"a1"));
    j
}
