//! The watch of the cluster's keys: keeps the view, and tells the log and the group
//! coordinator what the leader and shard records say. On any error of the watch (etcd
//! restarted, revisions compacted, connection lost) it watches again and re-reads
//! everything: the view is rebuilt from a range read, never patched from a gap.

use futures::stream::{select_all, StreamExt};
use std::sync::Arc;
use std::time::Duration;

use super::records::{ControllerRecord, MoveRecord};
use super::{decode_or_warn, Inner, View};
use crate::error::Result;
use crate::group::{keys as group_keys, ShardRecord};
use crate::log::LeaderRecord;
use crate::ports::{KeyValue, TxnOp, WatchEvent, WatchEventKind, WatchStream};
use crate::retry::{Backoff, Retry};
use crate::schema::keys;
use crate::topic::TopicRecord;
use crate::types::PartitionKey;

/// Waits before watching again after the watch or a re-read failed: 200 ms, doubling up to
/// 3.2 s; back to the shortest once events flow.
const WATCH_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(3_200));

/// Waits after failed hand-overs of a partition in a row: 400 ms, doubling up to 6.4 s.
const HANDOVER_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(400), Duration::from_millis(6_400));

fn prefixes() -> Vec<String> {
    vec![
        keys::brokers_prefix(),
        keys::controller(),
        keys::topics_prefix(),
        keys::leaders_prefix(),
        keys::moves_prefix(),
        group_keys::shards_prefix(),
    ]
}

/// Watches every prefix, then reads them all and rebuilds the view. Returns the merged
/// stream of later changes.
pub(super) async fn sync(inner: &Arc<Inner>) -> Result<futures::stream::SelectAll<WatchStream>> {
    let mut streams = Vec::new();
    for prefix in prefixes() {
        streams.push(inner.meta.watch(&prefix).await?);
    }
    let mut kvs: Vec<KeyValue> = Vec::new();
    let mut revision = 0;
    for prefix in prefixes() {
        let range = inner.meta.range(&prefix).await?;
        revision = revision.max(range.revision);
        kvs.extend(range.kvs);
    }
    // Topics first, so that leader records find their partitions.
    kvs.sort_by_key(|kv| !kv.key.starts_with(&keys::topics_prefix()));
    let old = std::mem::take(&mut *inner.write_view());
    // Topics gone while the watch was down.
    let present: std::collections::HashSet<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    for topic in inner.log.topics() {
        if !present.contains(keys::topic(&topic.name).as_str()) {
            inner.log.forget_topic(&topic.name, topic.id);
        }
    }
    {
        let mut view = inner.write_view();
        view.leaders = old.leaders;
        view.shards = old.shards;
    }
    for kv in kvs {
        apply(
            inner,
            WatchEvent {
                kind: WatchEventKind::Put,
                kv,
            },
        );
    }
    inner.applied.send_modify(|r| *r = (*r).max(revision));
    inner.controller_wake.notify_one();
    Ok(select_all(streams))
}

pub(super) async fn run(inner: Arc<Inner>, mut streams: futures::stream::SelectAll<WatchStream>) {
    let mut attempts = Retry::new(&*inner.clock, WATCH_BACKOFF);
    loop {
        while let Some(event) = streams.next().await {
            match event {
                Ok(event) => {
                    let revision = event.kv.mod_revision;
                    apply(&inner, event);
                    inner.applied.send_modify(|r| *r = (*r).max(revision));
                    attempts.reset();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster watch failed; watching again");
                    break;
                }
            }
        }
        loop {
            attempts.wait().await;
            match sync(&inner).await {
                Ok(s) => {
                    streams = s;
                    tracing::info!("cluster watch re-established");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, failures = attempts.attempt(), "cannot watch the cluster yet");
                }
            }
        }
    }
}

fn apply(inner: &Arc<Inner>, event: WatchEvent) {
    let key = event.kv.key.as_str();
    let put = event.kind == WatchEventKind::Put;
    let revision = event.kv.mod_revision;
    if let Some(id) = keys::parse_broker(key) {
        let mut view = inner.write_view();
        match put
            .then(|| decode_or_warn::<super::BrokerRecord>(&event.kv))
            .flatten()
        {
            Some(r) => view.brokers.insert(id, r),
            None => view.brokers.remove(&id),
        };
        let live = view
            .brokers
            .values()
            .map(|b| (b.id, b.incarnation))
            .collect();
        drop(view);
        inner.log.set_live_incarnations(live);
        inner.controller_wake.notify_one();
    } else if key == keys::controller() {
        let record = put
            .then(|| decode_or_warn::<ControllerRecord>(&event.kv))
            .flatten();
        inner.write_view().controller = record.map(|r| (r, revision));
        inner.controller_wake.notify_one();
    } else if let Some(name) = key.strip_prefix(&keys::topics_prefix()) {
        if put {
            if let Some(topic) = decode_or_warn::<TopicRecord>(&event.kv) {
                let added = inner.log.install_topic(topic);
                let view = inner.read_view();
                let known: Vec<_> = added
                    .iter()
                    .filter_map(|k| view.leaders.get(k).map(|(r, rev)| (*k, *r, *rev)))
                    .collect();
                drop(view);
                for (k, r, rev) in known {
                    observe_leader(inner, k, r, rev);
                }
            }
        } else if let Some(topic) = inner.log.topic(name) {
            inner.log.forget_topic(name, topic.id);
            inner
                .write_view()
                .leaders
                .retain(|k, _| k.topic != topic.id);
        }
        inner.controller_wake.notify_one();
    } else if let Some(p) = keys::parse_leader(key) {
        let record = if put {
            decode_or_warn::<LeaderRecord>(&event.kv).unwrap_or_default()
        } else {
            LeaderRecord::default()
        };
        inner.write_view().leaders.insert(p, (record, revision));
        observe_leader(inner, p, record, revision);
        inner.controller_wake.notify_one();
    } else if let Some(p) = keys::parse_move(key) {
        let record = put
            .then(|| decode_or_warn::<MoveRecord>(&event.kv))
            .flatten();
        match record {
            Some(m) => {
                inner.write_view().moves.insert(p, (m, revision));
                if m.from == inner.registration().id {
                    start_hand_over(inner, p, m, revision);
                }
            }
            None => {
                inner.write_view().moves.remove(&p);
            }
        }
        inner.controller_wake.notify_one();
    } else if let Some(shard) = group_keys::parse_shard(key) {
        let record = put
            .then(|| decode_or_warn::<ShardRecord>(&event.kv))
            .flatten();
        match record {
            Some(r) => {
                inner
                    .write_view()
                    .shards
                    .insert(shard.0, (r.clone(), revision));
                observe_shard(inner, shard.0, r, revision);
            }
            None => {
                inner.write_view().shards.remove(&shard.0);
            }
        }
        inner.controller_wake.notify_one();
    }
}

fn observe_leader(inner: &Arc<Inner>, p: PartitionKey, record: LeaderRecord, revision: i64) {
    let reg = inner.registration();
    let ours = record.leader == Some(reg.id) && record.incarnation == reg.incarnation;
    inner.log.observe_leadership(p, record, revision, ours);
}

fn observe_shard(inner: &Arc<Inner>, shard: u32, record: ShardRecord, revision: i64) {
    let reg = inner.registration();
    let ours = record.owner == reg.id && record.incarnation == reg.incarnation;
    let groups = inner.groups.clone();
    tokio::spawn(async move {
        groups
            .observe_shard(group_keys::ShardId(shard), &record, revision, ours)
            .await;
    });
}

/// After a new registration: every record is judged again against the new incarnation.
pub(super) fn reapply(inner: &Arc<Inner>) {
    let view: View = inner.read_view().clone();
    for (p, (r, rev)) in view.leaders {
        observe_leader(inner, p, r, rev);
    }
    for (s, (r, rev)) in view.shards {
        observe_shard(inner, s, r, rev);
    }
}

/// Hands a partition over as the controller asked, retrying while the request stands.
fn start_hand_over(inner: &Arc<Inner>, p: PartitionKey, m: MoveRecord, revision: i64) {
    if !inner
        .handing_over
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p)
    {
        return;
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        let mut attempts = Retry::new(&*inner.clock, HANDOVER_BACKOFF);
        loop {
            let still = inner
                .read_view()
                .moves
                .get(&p)
                .is_some_and(|(_, r)| *r == revision);
            if !still {
                break;
            }
            let delete = TxnOp::Delete {
                key: keys::move_key(p),
            };
            match inner
                .log
                .hand_over(p, m.to, m.to_incarnation, vec![delete])
                .await
            {
                Ok(()) => break,
                Err(crate::Error::NotLeader(_)) => {
                    // Not ours (any more): the controller cancels the request.
                    break;
                }
                Err(e) => {
                    tracing::warn!(partition = %p, error = %e, attempt = attempts.attempt(), "hand-over failed; retrying");
                    attempts.wait().await;
                }
            }
        }
        inner
            .handing_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
    });
}
