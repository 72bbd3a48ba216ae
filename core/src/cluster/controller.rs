//! The controller: one broker at a time, elected by creating the controller key under its
//! lease. It turns what the view shows into assignments (see [`super::plan`]) and writes
//! them; every write compares the controller key's revision, so a deposed controller that
//! wakes up late cannot write, and the slot's own revision, so it never acts on a record
//! that changed since it looked.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::plan::{self, Action, Candidate, Slot};
use super::records::{ControllerRecord, MoveRecord};
use super::Inner;
use crate::error::Result;
use crate::group::{keys as group_keys, ShardRecord};
use crate::log::LeaderRecord;
use crate::ports::metadata::encode_json;
use crate::ports::{ClockExt, Compare, Txn, TxnOp};
use crate::retry::{Backoff, Retry};
use crate::schema::keys;
use crate::types::{BrokerId, LeaderEpoch, PartitionKey};

/// Slots changed per transaction: a compare and up to two operations each, plus the
/// controller fence and one broker fence per broker, below etcd's 128.
const ACTIONS_PER_TXN: usize = 40;

/// What a broker's fence holds: who changed it, when. Only its revision matters to the
/// broker; these are for whoever reads it.
#[derive(Debug, serde::Serialize)]
struct FenceRecord {
    by: BrokerId,
    at_ms: i64,
}

/// Waits after failed steps in a row: 200 ms, doubling up to 1.6 s.
const STEP_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(1_600));

pub(super) async fn run(inner: Arc<Inner>) {
    let mut failures = Retry::new(&*inner.clock, STEP_BACKOFF);
    loop {
        tokio::select! {
            _ = inner.controller_wake.notified() => {}
            _ = inner.clock.sleep(Duration::from_secs(1)) => {}
        }
        // Let a burst of changes settle into one decision.
        inner.clock.sleep(Duration::from_millis(20)).await;
        match step(&inner).await {
            Ok(()) => failures.reset(),
            Err(e) => {
                tracing::debug!(error = %e, failures = failures.attempt(), "controller step failed");
                failures.wait().await;
            }
        }
    }
}

async fn step(inner: &Arc<Inner>) -> Result<()> {
    let reg = inner.registration();
    let current = inner.read_view().controller;
    let fence = match current {
        Some((c, rev)) if c.broker == reg.id && c.incarnation == reg.incarnation => rev,
        Some(_) => {
            inner.log.set_collecting(false);
            return Ok(());
        }
        None => match elect(inner).await? {
            Some(rev) => rev,
            None => return Ok(()),
        },
    };
    // The controller collects the cluster's garbage.
    inner.log.set_collecting(true);
    reconcile(inner, fence).await
}

/// Tries to become controller; returns the controller key's revision if it did.
async fn elect(inner: &Arc<Inner>) -> Result<Option<i64>> {
    let reg = inner.registration();
    if inner.draining.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let key = keys::controller();
    let record = ControllerRecord {
        broker: reg.id,
        incarnation: reg.incarnation,
    };
    let outcome = inner
        .meta
        .txn(Txn::create(key, encode_json(&record), Some(reg.lease)))
        .await?;
    if !outcome.succeeded {
        return Ok(None);
    }
    tracing::info!(broker = reg.id.0, "elected controller");
    inner.write_view().controller = Some((record, outcome.revision));
    Ok(Some(outcome.revision))
}

async fn reconcile(inner: &Arc<Inner>, fence: i64) -> Result<()> {
    let reg = inner.registration();
    let (candidates, partition_slots, shard_slots, leaders, shards, moves) = {
        let view = inner.read_view();
        let candidates: Vec<Candidate> = view
            .brokers
            .values()
            .map(|b| Candidate {
                id: b.id,
                incarnation: b.incarnation,
                draining: b.draining,
            })
            .collect();
        let mut partition_slots = Vec::new();
        let mut leaders = std::collections::BTreeMap::new();
        for topic in inner.log.topics() {
            for (key, record, revision) in inner.log.leadership_of(topic.id) {
                partition_slots.push(Slot {
                    key,
                    owner: record.leader.map(|l| (l, record.incarnation)),
                    moving_to: view.moves.get(&key).map(|(m, _)| m.to),
                });
                leaders.insert(key, (record, revision));
            }
        }

        let shard_slots: Vec<Slot<u32>> = (0..group_keys::SHARDS)
            .map(|s| Slot {
                key: s,
                owner: view.shards.get(&s).map(|(r, _)| (r.owner, r.incarnation)),
                moving_to: None,
            })
            .collect();
        (
            candidates,
            partition_slots,
            shard_slots,
            leaders,
            view.shards.clone(),
            view.moves.clone(),
        )
    };
    let incarnation = |id: BrokerId| {
        candidates
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.incarnation)
    };
    // Each op: its compares, its writes, and the broker it takes something from without a
    // hand-over (whose fence the same transaction changes).
    let mut ops: Vec<(Vec<Compare>, Vec<TxnOp>, Option<BrokerId>)> = Vec::new();
    let actions = plan::plan(&candidates, &partition_slots, inner.config.max_moves);
    let replaced: std::collections::HashSet<PartitionKey> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Assign { key, .. } | Action::Move { key, .. } => Some(*key),
            Action::CancelMove { .. } => None,
        })
        .collect();
    for action in &actions {
        // A cancelled move replaced by a new decision is overwritten by that decision
        // (one transaction may not touch a key twice).
        if matches!(action, Action::CancelMove { key } if replaced.contains(key)) {
            continue;
        }
        let (compares, then) = partition_op(action, &leaders, &moves, incarnation);
        let taken_from = match action {
            Action::Assign { key, .. } => leaders.get(key).and_then(|(r, _)| r.leader),
            _ => None,
        };
        ops.push((compares, then, taken_from));
    }
    // Moves of partitions that no longer exist.
    for key in moves.keys().filter(|k| !leaders.contains_key(k)) {
        let (compares, then) = partition_op(
            &Action::CancelMove { key: *key },
            &leaders,
            &moves,
            incarnation,
        );
        ops.push((compares, then, None));
    }
    // Shards hold no unflushed data: they move directly.
    for action in plan::plan(&candidates, &shard_slots, inner.config.max_moves) {
        let (key, to, gone) = match action {
            Action::Assign { key, to } => (key, to, true),
            Action::Move { key, to, .. } => (key, to, false),
            Action::CancelMove { .. } => continue,
        };
        let shard_key = group_keys::shard(group_keys::ShardId(key));
        let (epoch, revision) = shards.get(&key).map_or((0, 0), |(r, rev)| (r.epoch, *rev));
        // A shard moved away from a live owner needs no broker fence: the shard record's
        // revision fences that owner's group writes. One taken from a gone owner does.
        let taken_from = gone
            .then(|| shards.get(&key).map(|(r, _)| r.owner))
            .flatten();
        let record = ShardRecord {
            owner: to,
            epoch: epoch + 1,
            incarnation: incarnation(to),
        };
        ops.push((
            vec![Compare::ModRevision {
                key: shard_key.clone(),
                revision,
            }],
            vec![TxnOp::Put {
                key: shard_key,
                value: encode_json(&record),
                lease: None,
            }],
            taken_from,
        ));
    }
    if ops.is_empty() {
        return Ok(());
    }
    let count = ops.len();
    let mut last = 0;
    for group in ops.chunks(ACTIONS_PER_TXN) {
        let mut txn = Txn::new().when(Compare::ModRevision {
            key: keys::controller(),
            revision: fence,
        });
        let mut fenced = std::collections::BTreeSet::new();
        for (compares, then, taken_from) in group {
            for c in compares {
                txn = txn.when(c.clone());
            }
            for op in then {
                txn = txn.then(op.clone());
            }
            fenced.extend(*taken_from);
        }
        // Whatever was taken without a hand-over fences its broker, in the same transaction:
        // a commit of that broker after this one fails, and it drops what it lost.
        for broker in fenced {
            txn = txn.then(TxnOp::Put {
                key: keys::fence(broker),
                value: encode_json(&FenceRecord {
                    by: reg.id,
                    at_ms: inner.clock.now_ms(),
                }),
                lease: None,
            });
        }
        let outcome = inner.meta.txn(txn).await?;
        if !outcome.succeeded {
            // Something moved under us (or we are deposed): look again once the watch
            // has caught up.
            tracing::debug!("controller transaction lost a race; re-planning");
            wait_applied(inner, outcome.revision).await;
            inner.controller_wake.notify_one();
            return Ok(());
        }
        last = outcome.revision;
    }
    tracing::info!(changes = count, "controller assigned partitions and shards");
    wait_applied(inner, last).await;
    Ok(())
}

fn partition_op(
    action: &Action<PartitionKey>,
    leaders: &std::collections::BTreeMap<PartitionKey, (LeaderRecord, i64)>,
    moves: &std::collections::BTreeMap<PartitionKey, (MoveRecord, i64)>,
    incarnation: impl Fn(BrokerId) -> u64,
) -> (Vec<Compare>, Vec<TxnOp>) {
    match *action {
        Action::Assign { key, to } => {
            let (current, revision) = leaders.get(&key).copied().unwrap_or_default();
            let record = LeaderRecord {
                leader: Some(to),
                leader_epoch: if revision == 0 {
                    LeaderEpoch(0)
                } else {
                    current.leader_epoch.next()
                },
                incarnation: incarnation(to),
            };
            let mut then = vec![TxnOp::Put {
                key: keys::leader(key),
                value: encode_json(&record),
                lease: None,
            }];
            if moves.contains_key(&key) {
                then.push(TxnOp::Delete {
                    key: keys::move_key(key),
                });
            }
            (
                vec![Compare::ModRevision {
                    key: keys::leader(key),
                    revision,
                }],
                then,
            )
        }
        Action::Move { key, from, to } => {
            let revision = leaders.get(&key).map_or(0, |(_, r)| *r);
            let move_revision = moves.get(&key).map_or(0, |(_, r)| *r);
            let record = MoveRecord {
                from,
                to,
                to_incarnation: incarnation(to),
            };
            (
                vec![
                    Compare::ModRevision {
                        key: keys::leader(key),
                        revision,
                    },
                    Compare::ModRevision {
                        key: keys::move_key(key),
                        revision: move_revision,
                    },
                ],
                vec![TxnOp::Put {
                    key: keys::move_key(key),
                    value: encode_json(&record),
                    lease: None,
                }],
            )
        }
        Action::CancelMove { key } => {
            let revision = moves.get(&key).map_or(0, |(_, r)| *r);
            (
                vec![Compare::ModRevision {
                    key: keys::move_key(key),
                    revision,
                }],
                vec![TxnOp::Delete {
                    key: keys::move_key(key),
                }],
            )
        }
    }
}

/// Waits (briefly) until the watch has applied everything up to `revision`.
async fn wait_applied(inner: &Arc<Inner>, revision: i64) {
    let mut applied = inner.applied.subscribe();
    let _ = inner
        .clock
        .timeout(Duration::from_secs(2), async {
            while *applied.borrow_and_update() < revision {
                if applied.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
}
