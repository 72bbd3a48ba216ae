//! Group membership persisted for the next coordinator: when a group becomes Stable with a
//! new generation, its members, their protocols and the leader's assignment are written
//! (under the shard's fence) to `kafscale/groups/state/<shard>/<group>`; when it becomes
//! Empty the record is deleted. A coordinator that takes the shard over restores Stable
//! groups with fresh session deadlines, so members carry on with their generation (their
//! heartbeats and commits are accepted) instead of rejoining. Writes happen in the
//! background, after the answer: a coordinator that dies before writing costs a rejoin,
//! never an inconsistency (offsets are still written synchronously).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::coordinator::GroupCoordinator;
use super::group::Group;
use super::keys;
use super::member::Member;
use super::types::{GenerationId, GroupId, GroupState, InstanceId, MemberId, Protocol};
use crate::ports::metadata::encode_json;
use crate::ports::{Txn, TxnOp};
use crate::types::Millis;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupSnapshot {
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MemberSnapshot {
    id: String,
    instance: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i64,
    rebalance_timeout_ms: i64,
    /// (name, metadata as hex), in the member's order of preference.
    protocols: Vec<(String, String)>,
    /// The leader's assignment, hex.
    assignment: String,
    seq: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Bytes> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

impl Group {
    /// What to persist now, if the group reached a state not persisted yet: `Some(Some)`
    /// for a new Stable generation, `Some(None)` (delete) when it became Empty.
    pub(crate) fn take_snapshot(&mut self) -> Option<Option<GroupSnapshot>> {
        if !matches!(self.state, GroupState::Stable | GroupState::Empty) {
            return None;
        }
        let now = (self.state, self.generation);
        if self.persisted == Some(now) {
            return None;
        }
        self.persisted = Some(now);
        if self.state == GroupState::Empty {
            return Some(None);
        }
        Some(Some(GroupSnapshot {
            generation: self.generation.0,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.as_ref().map(|m| m.0.clone()),
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    id: m.id.0.clone(),
                    instance: m.instance.as_ref().map(|i| i.0.clone()),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|p| (p.name.clone(), hex(&p.metadata)))
                        .collect(),
                    assignment: hex(&m.assignment),
                    seq: m.seq,
                })
                .collect(),
        }))
    }

    /// A Stable group as the previous coordinator left it; every member gets a full session
    /// from `now` to reach this coordinator.
    pub(crate) fn restore(id: GroupId, snap: GroupSnapshot, now: Millis) -> Option<Group> {
        let mut g = Group::new(id, now);
        g.generation = GenerationId(snap.generation);
        g.protocol_type = snap.protocol_type;
        g.protocol = snap.protocol;
        g.leader = snap.leader.map(MemberId);
        for m in snap.members {
            let protocols = m
                .protocols
                .into_iter()
                .map(|(name, meta)| {
                    Some(Protocol {
                        name,
                        metadata: unhex(&meta)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            let id = MemberId(m.id);
            let instance = m.instance.map(InstanceId);
            if let Some(i) = &instance {
                g.statics.insert(i.clone(), id.clone());
            }
            g.next_seq = g.next_seq.max(m.seq + 1);
            g.members.insert(
                id.clone(),
                Member {
                    id,
                    instance,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: unhex(&m.assignment)?,
                    seq: m.seq,
                    awaiting_join: None,
                    awaiting_sync: None,
                    session_deadline: now + m.session_timeout_ms,
                },
            );
        }
        if g.members.is_empty() {
            return None;
        }
        g.state = GroupState::Stable;
        g.empty_since = None;
        g.persisted = Some((g.state, g.generation));
        Some(g)
    }
}

impl GroupCoordinator {
    /// Queues what `group` needs persisted, if anything. Called with the groups lock held.
    pub(crate) fn collect_snapshot(&self, group: &mut Group) {
        if let Some(snap) = group.take_snapshot() {
            self.pending_snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(group.id.clone(), snap);
            self.snapshot_wake.notify_one();
        }
    }

    /// Writes queued snapshots until `stop` turns true.
    pub async fn run_snapshots(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let batch = std::mem::take(
                &mut *self
                    .pending_snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            for (group, snap) in batch {
                self.write_snapshot(&group, snap).await;
            }
            tokio::select! {
                _ = self.snapshot_wake.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn write_snapshot(&self, group: &GroupId, snap: Option<GroupSnapshot>) {
        let shard = keys::shard_of(group);
        let _writes = self.shards[shard.0 as usize].writes.lock().await;
        let Ok(fence) = self.fence(group) else {
            return;
        };
        let key = keys::group_state(group);
        let op = match &snap {
            Some(s) => TxnOp::Put {
                key,
                value: encode_json(s),
                lease: None,
            },
            None => TxnOp::Delete { key },
        };
        match self.meta.txn(Txn::new().when(fence).then(op)).await {
            Ok(o) if o.succeeded => {}
            Ok(_) => self.lose_shard(shard),
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "cannot persist group state; a coordinator change will make its members rejoin")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_round_trips() {
        let b = Bytes::from_static(&[0, 1, 0xab, 0xff]);
        assert_eq!(unhex(&hex(&b)).unwrap(), b);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
