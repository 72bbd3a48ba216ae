//! The partition log against memory and embedded stores, with faults injected in the ports:
//! group commit, offsets never reused, fencing, unknown commit outcomes, restart.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::{
    EmbeddedMetadataStore, LocalObjectStore, MemoryMetadataStore, MemoryObjectStore, SystemClock,
};
use kafscale_core::batch;
use kafscale_core::log::{
    AppendRequest, CreateTopic, LeaderRecord, LogConfig, LogService, ReadRequest,
};
use kafscale_core::ports::metadata::encode_json;
use kafscale_core::ports::{Clock, ManualClock, MetadataStore, MetadataStoreExt, ObjectStore};
use kafscale_core::schema::{keys, FlushRecord};
use kafscale_core::{Error, LeaderEpoch, Offset, PartitionId, PartitionKey};
use kafscale_testkit::faults::{FaultyMetadataStore, FaultyObjectStore, TxnFault};

struct Setup {
    log: LogService,
    store: Arc<FaultyObjectStore>,
    meta: Arc<FaultyMetadataStore>,
}

async fn open(
    store: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    config: LogConfig,
) -> Setup {
    let store = FaultyObjectStore::new(store);
    let meta = FaultyMetadataStore::new(meta);
    let log = LogService::open(config, store.clone(), meta.clone(), clock)
        .await
        .unwrap();
    Setup { log, store, meta }
}

async fn memory() -> Setup {
    open(
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
        Arc::new(SystemClock::new()),
        LogConfig {
            attempts: 2,
            ..LogConfig::default()
        },
    )
    .await
}

async fn topic(log: &LogService, name: &str, partitions: i32) -> Vec<PartitionKey> {
    let t = log
        .create_topic(CreateTopic {
            name: name.into(),
            partitions,
            configs: BTreeMap::new(),
            validate_only: false,
        })
        .await
        .unwrap();
    (0..partitions)
        .map(|p| PartitionKey {
            topic: t.id,
            partition: PartitionId(p),
        })
        .collect()
}

fn records(n: usize, tag: &str) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let recs: Vec<batch::SimpleRecord<'_>> = values
        .iter()
        .map(|v| (Some(b"k".as_slice()), Some(v.as_bytes())))
        .collect();
    batch::build(&recs, 1_000)
}

async fn append(log: &LogService, p: PartitionKey, n: usize) -> Result<Offset, Error> {
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: records(n, "r"),
            wait: true,
        })?
        .unwrap();
    ticket.await.unwrap().map(|a| a.base_offset)
}

async fn read_all(log: &LogService, p: PartitionKey) -> Vec<(i64, i64)> {
    read_from(log, p, 0).await
}

#[tokio::test]
async fn one_object_per_flush_for_all_partitions() {
    let s = memory().await;
    let parts = topic(&s.log, "many", 50).await;
    // Hold the flusher back with a slow first PUT so that all 50 appends meet in one flush.
    s.store.set_put_delay(Duration::from_millis(200));
    let log = s.log.clone();
    let first = parts[0];
    let warm = tokio::spawn(async move { append(&log, first, 1).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.store.set_put_delay(Duration::ZERO);
    let puts_before = s.store.puts.load(Ordering::SeqCst);
    let tickets: Vec<_> = parts
        .iter()
        .map(|p| {
            s.log
                .append(AppendRequest {
                    partition: *p,
                    batch: records(3, "x"),
                    wait: true,
                })
                .unwrap()
                .unwrap()
        })
        .collect();
    for t in tickets {
        t.await.unwrap().unwrap();
    }
    warm.await.unwrap().unwrap();
    let puts = s.store.puts.load(Ordering::SeqCst) - puts_before;
    assert!(puts <= 2, "50 partitions took {puts} PUTs");
    assert_eq!(read_all(&s.log, parts[0]).await, vec![(0, 0), (1, 3)]);
    assert_eq!(read_all(&s.log, parts[49]).await, vec![(0, 2)]);
}

#[tokio::test]
async fn failed_upload_is_retriable_and_reuses_no_offset() {
    let s = memory().await;
    let p = topic(&s.log, "up", 1).await[0];
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    // More failures than attempts: the append fails, retriably.
    s.store.fail_next_puts(5);
    let err = append(&s.log, p, 2).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    s.store.fail_next_puts(0);
    // Nothing was committed, so the next batch continues right after the last good one.
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(2));
    // One failure is absorbed by the retry inside the flush.
    s.store.fail_next_puts(1);
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(4));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 3), (4, 4)]);
}

#[tokio::test]
async fn commit_applied_but_reported_failed_is_not_duplicated() {
    let s = memory().await;
    let p = topic(&s.log, "amb", 1).await[0];
    s.meta.fail_next_txns(&[TxnFault::FailAfter]);
    // The retry's compare fails; the flusher finds its own write and acknowledges it.
    assert_eq!(append(&s.log, p, 3).await.unwrap(), Offset(0));
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(3));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 2), (3, 3)]);
}

#[tokio::test]
async fn an_unknown_commit_outcome_is_resolved_before_the_next_flush() {
    let s = memory().await;
    let p = topic(&s.log, "unk", 1).await[0];
    // Every attempt "times out" after applying: the outcome stays unknown to the flusher.
    s.meta
        .fail_next_txns(&[TxnFault::FailAfter, TxnFault::FailBefore]);
    let first = append(&s.log, p, 2).await;
    // Either outcome is allowed for the producer (it was told "unknown")...
    if let Err(e) = &first {
        assert!(e.is_retriable(), "{e}");
    }
    // ...but the next append must see the committed state, never reuse offsets 0-1.
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(2));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 2)]);
}

/// The ends of `p` in every flush record of the store, in key order.
async fn flushed_ends(meta: &dyn MetadataStore, p: PartitionKey) -> Vec<i64> {
    let all = meta.range(&keys::flushes_prefix()).await.unwrap();
    all.kvs
        .iter()
        .filter(|kv| !kv.value.is_empty())
        .filter_map(|kv| FlushRecord::decode(&kv.value).unwrap().part(p))
        .map(|part| part.end.0)
        .collect()
}

/// Takes `p` from this broker as the controller takes a partition from a broker that is gone:
/// the leader record names another broker, and this broker's fence changes in the same
/// transaction.
async fn take_away(s: &Setup, p: PartitionKey, to: kafscale_core::BrokerId) -> i64 {
    let leader_key = keys::leader(p);
    let (mut record, kv): (LeaderRecord, _) = s.meta.get_json(&leader_key).await.unwrap().unwrap();
    record.leader = Some(to);
    record.leader_epoch = record.leader_epoch.next();
    let outcome = s
        .meta
        .txn(
            kafscale_core::ports::Txn::new()
                .when(kafscale_core::ports::Compare::ModRevision {
                    key: leader_key.clone(),
                    revision: kv.mod_revision,
                })
                .then(kafscale_core::ports::TxnOp::Put {
                    key: leader_key,
                    value: encode_json(&record),
                    lease: None,
                })
                .then(kafscale_core::ports::TxnOp::Put {
                    key: keys::fence(s.log.broker_id()),
                    value: Bytes::from_static(b"{}"),
                    lease: None,
                }),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded);
    outcome.revision
}

#[tokio::test]
async fn a_fence_change_stops_the_broker_writing_what_it_lost() {
    let s = memory().await;
    let p = topic(&s.log, "fence", 2).await;
    assert_eq!(append(&s.log, p[0], 1).await.unwrap(), Offset(0));
    assert_eq!(append(&s.log, p[1], 1).await.unwrap(), Offset(0));
    // Another broker is given partition 0 without a hand-over: the broker's fence changes.
    take_away(&s, p[0], kafscale_core::BrokerId(9)).await;
    // The next commit is fenced: NOT_LEADER, and nothing of it becomes visible.
    let err = append(&s.log, p[0], 1).await.unwrap_err();
    assert!(matches!(err, Error::NotLeader(_)), "{err}");
    // The broker has re-read the fence and the leader records: it no longer leads 0...
    assert!(matches!(
        append(&s.log, p[0], 1).await,
        Err(Error::NotLeader(_))
    ));
    assert_eq!(flushed_ends(s.meta.as_ref(), p[0]).await, vec![1]);
    // ...and goes on with partition 1, with no offset skipped or reused.
    assert_eq!(append(&s.log, p[1], 1).await.unwrap(), Offset(1));
    assert_eq!(read_all(&s.log, p[1]).await, vec![(0, 0), (1, 1)]);
}

/// Moves the leader record of `p` to `leader` with the next epoch, behind the log's back, and
/// tells the log (as the cluster's watch would).
async fn move_leader(s: &Setup, p: PartitionKey, leader: kafscale_core::BrokerId, ours: bool) {
    if !ours {
        let revision = take_away(s, p, leader).await;
        let (record, _): (LeaderRecord, _) =
            s.meta.get_json(&keys::leader(p)).await.unwrap().unwrap();
        s.log.observe_leadership(p, record, revision, false);
        return;
    }
    let key = keys::leader(p);
    let (mut record, kv): (LeaderRecord, _) = s.meta.get_json(&key).await.unwrap().unwrap();
    record.leader = Some(leader);
    record.incarnation = s.log.incarnation();
    record.leader_epoch = record.leader_epoch.next();
    let outcome = s
        .meta
        .compare_and_swap(&key, kv.mod_revision, encode_json(&record))
        .await
        .unwrap();
    assert!(outcome.succeeded);
    s.log.observe_leadership(p, record, outcome.revision, ours);
}

#[tokio::test]
async fn a_late_fenced_flush_leaves_a_newer_leadership_of_the_same_broker_alone() {
    // A paused broker's flush, planned under its old leadership, is fenced only after the
    // broker has been given the partition again: the fence must not drop the new leadership
    // (it did, and the partition then sat leaderless with an empty extent).
    let s = memory().await;
    let p = topic(&s.log, "again", 1).await[0];
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    let mut held = s.meta.hold_next_txn();
    let log = s.log.clone();
    let late = tokio::spawn(async move { append(&log, p, 1).await });
    held.reached().await;
    let me = s.log.broker_id();
    move_leader(&s, p, kafscale_core::BrokerId(9), false).await;
    move_leader(&s, p, me, true).await;
    assert!(
        s.log
            .wait_for_leaders(p.topic, Duration::from_secs(5))
            .await
    );
    held.release();
    let err = late.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::NotLeader(_)), "{err}");
    // Still the leader, with the committed extent: appends continue after offset 1.
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(2));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 2)]);
}

#[tokio::test]
async fn flush_waits_for_flush_ms_on_the_clock_or_flush_bytes() {
    let clock = ManualClock::new(1_000_000);
    let config = LogConfig {
        flush_ms: 5_000,
        flush_bytes: 10_000,
        ..LogConfig::default()
    };
    let s = open(
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
        Arc::new(clock.clone()),
        config,
    )
    .await;
    let p = topic(&s.log, "timer", 1).await[0];
    let mut ticket = s
        .log
        .append(AppendRequest {
            partition: p,
            batch: records(1, "t"),
            wait: true,
        })
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ticket.try_recv().is_err(), "flushed before flush.ms");
    clock.advance(Duration::from_millis(5_000));
    assert_eq!(ticket.await.unwrap().unwrap().base_offset, Offset(0));
    // flush.bytes starts a flush without waiting for the clock.
    let big = records(1500, "b");
    assert!(big.len() > 10_000);
    let t = s
        .log
        .append(AppendRequest {
            partition: p,
            batch: big,
            wait: true,
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .base_offset,
        Offset(1)
    );
}

#[tokio::test]
async fn restart_keeps_committed_data_and_bumps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let offsets;
    let key;
    {
        let s = open(
            Arc::new(LocalObjectStore::open(dir.path().join("objects")).unwrap()),
            Arc::new(EmbeddedMetadataStore::open(dir.path().join("meta")).unwrap()),
            Arc::new(SystemClock::new()),
            LogConfig::default(),
        )
        .await;
        key = topic(&s.log, "durable", 1).await[0];
        let mut o = Vec::new();
        for n in [3, 1, 5] {
            o.push(append(&s.log, key, n).await.unwrap());
        }
        offsets = o;
        assert_eq!(
            s.log.partition_info(key).unwrap().leader_epoch,
            LeaderEpoch(0)
        );
        s.log.shutdown().await;
    }
    assert_eq!(offsets, vec![Offset(0), Offset(3), Offset(4)]);
    let s = open(
        Arc::new(LocalObjectStore::open(dir.path().join("objects")).unwrap()),
        Arc::new(EmbeddedMetadataStore::open(dir.path().join("meta")).unwrap()),
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    let info = s.log.partition_info(key).unwrap();
    assert_eq!(info.high_watermark, Offset(9));
    assert_eq!(info.leader_epoch, LeaderEpoch(1));
    // Cold read: nothing in the cache, everything from the object store.
    assert_eq!(read_all(&s.log, key).await, vec![(0, 2), (3, 3), (4, 8)]);
    assert!(s.store.gets.load(Ordering::SeqCst) >= 1);
    let r = s
        .log
        .read(ReadRequest {
            partition: key,
            offset: Offset(0),
            max_bytes: 1 << 20,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap();
    // Batches carry the epoch they were written under.
    assert!(batch::iter(&r.records).all(|b| b.unwrap().0.partition_leader_epoch == 0));
    assert_eq!(append(&s.log, key, 1).await.unwrap(), Offset(9));
}

#[tokio::test]
async fn corrupt_object_is_detected_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let key;
    {
        let s = open(
            Arc::new(LocalObjectStore::open(&objects).unwrap()),
            Arc::new(EmbeddedMetadataStore::open(dir.path().join("meta")).unwrap()),
            Arc::new(SystemClock::new()),
            LogConfig::default(),
        )
        .await;
        key = topic(&s.log, "rot", 1).await[0];
        append(&s.log, key, 10).await.unwrap();
        s.log.shutdown().await;
    }
    // Flip a byte in the middle of every stored flush object.
    for entry in walk(&objects) {
        if entry.extension().is_some_and(|e| e == "ksf") {
            let mut bytes = std::fs::read(&entry).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&entry, bytes).unwrap();
        }
    }
    let s = open(
        Arc::new(LocalObjectStore::open(&objects).unwrap()),
        Arc::new(EmbeddedMetadataStore::open(dir.path().join("meta")).unwrap()),
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    let err = s
        .log
        .read(ReadRequest {
            partition: key,
            offset: Offset(0),
            max_bytes: 1 << 20,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn topic_with(log: &LogService, name: &str, configs: &[(&str, &str)]) -> PartitionKey {
    let configs = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let t = log
        .create_topic(CreateTopic {
            name: name.into(),
            partitions: 1,
            configs,
            validate_only: false,
        })
        .await
        .unwrap();
    PartitionKey {
        topic: t.id,
        partition: PartitionId(0),
    }
}

async fn append_at(log: &LogService, p: PartitionKey, n: usize, ts: i64) -> Offset {
    let values: Vec<String> = (0..n).map(|i| format!("value-{i:04}")).collect();
    let recs: Vec<batch::SimpleRecord<'_>> =
        values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: batch::build(&recs, ts),
            wait: true,
        })
        .unwrap()
        .unwrap();
    ticket.await.unwrap().unwrap().base_offset
}

async fn gc_setup() -> Setup {
    open(
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
        Arc::new(SystemClock::new()),
        LogConfig {
            gc_grace_ms: 0,
            attempts: 1,
            ..LogConfig::default()
        },
    )
    .await
}

/// Lets the millisecond clock move past the objects just written (grace is 0 in these tests).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

async fn data_objects(s: &Setup) -> usize {
    s.store.list(keys::DATA_PREFIX).await.unwrap().len()
}

/// Flush and segment objects (checkpoint objects, `.ksc`, aside).
async fn flush_objects(s: &Setup) -> usize {
    let all = s.store.list(keys::DATA_PREFIX).await.unwrap();
    all.iter().filter(|o| o.key.ends_with(".ksf")).count()
}

#[tokio::test]
async fn retention_ms_moves_the_log_start_and_gc_deletes_the_objects() {
    let s = gc_setup().await;
    let now = SystemClock::new().now_ms();
    let p = topic_with(&s.log, "old", &[("retention.ms", "60000")]).await;
    append_at(&s.log, p, 5, now - 3_600_000).await; // an hour old: expired
    append_at(&s.log, p, 5, now - 7_200_000).await; // older still
    append_at(&s.log, p, 5, now).await; // fresh
    assert_eq!(data_objects(&s).await, 3);
    s.log.enforce_retention().await.unwrap();
    let info = s.log.partition_info(p).unwrap();
    assert_eq!(info.log_start_offset, Offset(10));
    assert_eq!(info.high_watermark, Offset(15));
    let err = s
        .log
        .read(ReadRequest {
            partition: p,
            offset: Offset(0),
            max_bytes: 1 << 20,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    assert_eq!(read_from(&s.log, p, 10).await, vec![(10, 14)]);
    let stats = {
        tick().await;
        s.log.collect_garbage().await
    }
    .unwrap();
    assert_eq!(stats.deleted, 2);
    assert_eq!(flush_objects(&s).await, 1);
    // The log goes on after the retained data.
    assert_eq!(append_at(&s.log, p, 1, now).await, Offset(15));
}

#[tokio::test]
async fn retention_bytes_keeps_the_newest_within_budget() {
    let s = gc_setup().await;
    let now = SystemClock::new().now_ms();
    let probe = batch::build(&[(None, Some(b"value-0000".as_slice()))], 0).len();
    // Each chunk holds one batch of 10 records; keep about two and a half of them.
    let one = {
        let values: Vec<String> = (0..10).map(|i| format!("value-{i:04}")).collect();
        let recs: Vec<batch::SimpleRecord<'_>> =
            values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
        batch::build(&recs, now).len()
    };
    assert!(one > probe);
    let budget = (one * 5 / 2).to_string();
    let p = topic_with(
        &s.log,
        "big",
        &[("retention.bytes", budget.as_str()), ("retention.ms", "-1")],
    )
    .await;
    for _ in 0..5 {
        append_at(&s.log, p, 10, now).await;
    }
    s.log.enforce_retention().await.unwrap();
    assert_eq!(
        s.log.partition_info(p).unwrap().log_start_offset,
        Offset(30)
    );
}

#[tokio::test]
async fn orphans_of_failed_commits_and_deleted_topics_are_collected() {
    let s = gc_setup().await;
    let p = topic(&s.log, "orphans", 1).await[0];
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    // The upload succeeds, the commit does not: the object is an orphan.
    s.meta.fail_next_txns(&[TxnFault::FailBefore]);
    assert!(append(&s.log, p, 2).await.is_err());
    assert_eq!(data_objects(&s).await, 2);
    let stats = {
        tick().await;
        s.log.collect_garbage().await
    }
    .unwrap();
    assert_eq!((stats.deleted, stats.referenced), (1, 1));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1)]);
    // Deleting the topic makes its data garbage (once a checkpoint round has dropped the flush
    // records naming it); a re-created topic starts empty.
    s.log.delete_topic("orphans").await.unwrap();
    s.log.checkpoint().await.unwrap();
    assert_eq!(
        {
            tick().await;
            s.log.collect_garbage().await
        }
        .unwrap()
        .deleted,
        1
    );
    assert_eq!(data_objects(&s).await, 0);
    let p = topic(&s.log, "orphans", 1).await[0];
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(0));
}

#[tokio::test]
async fn young_objects_are_never_collected() {
    let s = memory().await; // default grace: ten minutes
    let p = topic(&s.log, "young", 1).await[0];
    s.meta
        .fail_next_txns(&[TxnFault::FailBefore, TxnFault::FailBefore]);
    assert!(append(&s.log, p, 2).await.is_err());
    assert_eq!(
        {
            tick().await;
            s.log.collect_garbage().await
        }
        .unwrap()
        .deleted,
        0
    );
    assert_eq!(data_objects(&s).await, 1);
}

async fn read_from(log: &LogService, p: PartitionKey, offset: i64) -> Vec<(i64, i64)> {
    let r = log
        .read(ReadRequest {
            partition: p,
            offset: Offset(offset),
            max_bytes: 64 << 20,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap();
    batch::iter(&r.records)
        .map(|b| {
            let h = b.unwrap().0;
            (h.base_offset, h.last_offset())
        })
        .collect()
}

async fn segment_keys(meta: &dyn MetadataStore) -> usize {
    meta.range(&keys::segments_prefix())
        .await
        .unwrap()
        .kvs
        .len()
}

async fn checkpoint_keys(meta: &dyn MetadataStore) -> usize {
    meta.range(&keys::checkpoints_prefix())
        .await
        .unwrap()
        .kvs
        .len()
}

#[tokio::test]
async fn compaction_merges_chunks_into_segments_that_read_back_cold() {
    let dir = tempfile::tempdir().unwrap();
    let one_batch = batch::build(&[(None, Some(b"value-0000".as_slice())); 3], 0).len() as u64;
    let config = LogConfig {
        // Merge about eight flush chunks at a time.
        compaction_min_bytes: one_batch * 8,
        segment_block_bytes: 300,
        gc_grace_ms: 0,
        ..LogConfig::default()
    };
    let open_local = |config: LogConfig| {
        let dir = dir.path().to_owned();
        async move {
            open(
                Arc::new(LocalObjectStore::open(dir.join("objects")).unwrap()),
                Arc::new(EmbeddedMetadataStore::open(dir.join("meta")).unwrap()),
                Arc::new(SystemClock::new()),
                config,
            )
            .await
        }
    };
    let s = open_local(config.clone()).await;
    let p = topic(&s.log, "merge", 1).await[0];
    let now = SystemClock::new().now_ms();
    let mut expected = Vec::new();
    for i in 0..30i64 {
        let base = append_at(&s.log, p, 3, now + i * 10).await;
        expected.push((base.0, base.0 + 2));
    }
    // Checkpoint rounds merge: the 30 flush chunks go into segments, and the flush records
    // the rounds cover are deleted.
    for _ in 0..4 {
        s.log.checkpoint().await.unwrap();
    }
    let segments = segment_keys(s.meta.as_ref()).await;
    assert!(segments >= 1, "{segments} segments for 30 flushes");
    let records = s
        .meta
        .range(&keys::flushes_prefix())
        .await
        .unwrap()
        .kvs
        .len();
    assert_eq!(records, 0, "flush records left after the rounds");
    assert_eq!(read_all(&s.log, p).await, expected);
    assert_eq!(read_from(&s.log, p, 44).await[0], (42, 44));
    // The flush objects the segment replaced are garbage now.
    let before = data_objects(&s).await;
    let stats = {
        tick().await;
        s.log.collect_garbage().await
    }
    .unwrap();
    assert!(stats.deleted >= 20, "{stats:?} of {before}");
    s.log.shutdown().await;
    drop(s);
    // Cold: a new log over the same stores reads the segment by ranged block reads.
    let s = open_local(config).await;
    assert_eq!(read_all(&s.log, p).await, expected);
    let small = s
        .log
        .read(ReadRequest {
            partition: p,
            offset: Offset(60),
            max_bytes: 1,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap();
    let got: Vec<_> = batch::iter(&small.records)
        .map(|b| b.unwrap().0.base_offset)
        .collect();
    assert_eq!(got, vec![60], "one batch for a tiny budget");
    let found = s
        .log
        .find_batch_by_timestamp(p, now + 205)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch::peek_header(&found).unwrap().base_offset, 63);
    // A damaged index is rebuilt from the segment's data.
    let objects = dir.path().join("objects");
    for path in walk(&objects) {
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.starts_with(b"KSSG") {
            let footer = bytes.len() - 24;
            let index_at =
                u64::from_be_bytes(bytes[footer..footer + 8].try_into().unwrap()) as usize;
            bytes[index_at + 3] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    s.log.shutdown().await;
    drop(s);
    let s = open_local(LogConfig {
        segment_block_bytes: 300,
        ..LogConfig::default()
    })
    .await;
    assert_eq!(read_all(&s.log, p).await, expected);
}

#[tokio::test]
async fn a_store_that_goes_away_fails_appends_retriably_and_keeps_what_was_committed() {
    let s = memory().await;
    let p = topic(&s.log, "gone", 1).await[0];
    assert_eq!(append(&s.log, p, 3).await.unwrap(), Offset(0));
    s.store.fail_after(Some(0));
    for _ in 0..3 {
        let err = append(&s.log, p, 1).await.unwrap_err();
        assert!(err.is_retriable(), "{err}");
    }
    // Committed data is still served from the cache; nothing half-written is visible.
    assert_eq!(read_all(&s.log, p).await, vec![(0, 2)]);
    s.store.fail_after(None);
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(3));
}

#[tokio::test]
async fn keys_of_deleted_topics_are_removed_at_start() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryObjectStore::new());
    let meta: Arc<dyn MetadataStore> = Arc::new(MemoryMetadataStore::new());
    let s = open(
        store.clone(),
        meta.clone(),
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    let p = topic(&s.log, "ghost", 1).await[0];
    append(&s.log, p, 2).await.unwrap();
    s.log.shutdown().await;
    // As if a checkpoint had raced the deletion: the topic key is gone, the partition's keys
    // stay.
    meta.txn(
        kafscale_core::ports::Txn::new().then(kafscale_core::ports::TxnOp::Delete {
            key: keys::topic("ghost"),
        }),
    )
    .await
    .unwrap();
    assert!(checkpoint_keys(meta.as_ref()).await > 0);
    let s = open(
        store,
        meta.clone(),
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    assert_eq!(checkpoint_keys(meta.as_ref()).await, 0);
    assert!(meta
        .range(&keys::leaders_prefix())
        .await
        .unwrap()
        .kvs
        .is_empty());
    assert!(s.log.topics().is_empty());
}

async fn append_idempotent(
    log: &LogService,
    p: PartitionKey,
    (pid, epoch, seq): (i64, i16, i32),
    n: usize,
) -> Result<Offset, Error> {
    let values: Vec<String> = (0..n)
        .map(|i| format!("seq-{}", seq as usize + i))
        .collect();
    let recs: Vec<batch::SimpleRecord<'_>> =
        values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: batch::build_idempotent(&recs, 1_000, pid, epoch, seq),
            wait: true,
        })?
        .unwrap();
    ticket.await.unwrap().map(|a| a.base_offset)
}

#[tokio::test]
async fn idempotent_retry_after_an_unknown_commit_outcome_is_not_duplicated() {
    let s = memory().await;
    let p = topic(&s.log, "idem", 1).await[0];
    assert_eq!(
        append_idempotent(&s.log, p, (5, 0, 0), 2).await.unwrap(),
        Offset(0)
    );
    // Every attempt "times out" after the first applied: the flusher resolves the outcome (the
    // producer may still be told "unknown" and retry).
    s.meta
        .fail_next_txns(&[TxnFault::FailAfter, TxnFault::FailBefore]);
    let first = append_idempotent(&s.log, p, (5, 0, 2), 3).await;
    assert!(
        first.as_ref().is_ok_and(|o| *o == Offset(2))
            || first.as_ref().is_err_and(|e| e.is_retriable()),
        "{first:?}"
    );
    // The producer retries the same batch: it gets the offset the first attempt committed.
    assert_eq!(
        append_idempotent(&s.log, p, (5, 0, 2), 3).await.unwrap(),
        Offset(2)
    );
    assert_eq!(
        append_idempotent(&s.log, p, (5, 0, 5), 1).await.unwrap(),
        Offset(5)
    );
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 4), (5, 5)]);
}

#[tokio::test]
async fn idempotent_sequence_errors_and_state_across_a_restart() {
    let store = Arc::new(MemoryObjectStore::new());
    let meta = Arc::new(MemoryMetadataStore::new());
    let s = open(
        store.clone(),
        meta.clone(),
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    let p = topic(&s.log, "seq", 1).await[0];
    assert_eq!(
        append_idempotent(&s.log, p, (9, 1, 0), 1).await.unwrap(),
        Offset(0)
    );
    let gap = append_idempotent(&s.log, p, (9, 1, 5), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            gap,
            Error::OutOfOrderSequence {
                expected: 1,
                got: 5,
                ..
            }
        ),
        "{gap}"
    );
    let old = append_idempotent(&s.log, p, (9, 0, 1), 1)
        .await
        .unwrap_err();
    assert!(matches!(old, Error::InvalidProducerEpoch { .. }), "{old}");
    let unknown = append_idempotent(&s.log, p, (10, 0, 3), 1)
        .await
        .unwrap_err();
    assert!(matches!(unknown, Error::UnknownProducerId(10)), "{unknown}");
    // Two copies of one batch in the same flush: one append, both answered with its offset.
    let a = s.log.append(AppendRequest {
        partition: p,
        batch: batch::build_idempotent(&[(None, Some(b"x"))], 1_000, 9, 1, 1),
        wait: true,
    });
    let b = s.log.append(AppendRequest {
        partition: p,
        batch: batch::build_idempotent(&[(None, Some(b"x"))], 1_000, 9, 1, 1),
        wait: true,
    });
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.await.unwrap().unwrap().base_offset, Offset(1));
    assert_eq!(b.await.unwrap().unwrap().base_offset, Offset(1));
    s.log.shutdown().await;
    // A new process (a new leader) continues from the committed producer state.
    let s = open(
        store,
        meta,
        Arc::new(SystemClock::new()),
        LogConfig::default(),
    )
    .await;
    assert_eq!(
        append_idempotent(&s.log, p, (9, 1, 1), 1).await.unwrap(),
        Offset(1)
    );
    assert_eq!(
        append_idempotent(&s.log, p, (9, 1, 2), 1).await.unwrap(),
        Offset(2)
    );
    assert_eq!(read_all(&s.log, p).await, vec![(0, 0), (1, 1), (2, 2)]);
}

/// Waits until `f` holds (a few seconds at most).
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn flushes_overlap_their_uploads_and_commit_in_order() {
    let s = memory().await;
    let parts = topic(&s.log, "pipe", 2).await;
    let (p, q) = (parts[0], parts[1]);
    s.store.set_put_delay(Duration::from_millis(150));
    let mut tasks = Vec::new();
    for (i, key) in [p, p, q, p].into_iter().enumerate() {
        let log = s.log.clone();
        tasks.push(tokio::spawn(async move { append(&log, key, i + 1).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut offsets = Vec::new();
    for t in tasks {
        offsets.push(t.await.unwrap().unwrap());
    }
    // Each append went into a flush of its own, started while the one before uploaded.
    assert!(s.store.max_concurrent_puts.load(Ordering::SeqCst) >= 2);
    assert_eq!(offsets, vec![Offset(0), Offset(1), Offset(0), Offset(3)]);
    assert_eq!(read_all(&s.log, p).await, vec![(0, 0), (1, 2), (3, 6)]);
    assert_eq!(read_all(&s.log, q).await, vec![(0, 2)]);
}

#[tokio::test]
async fn a_failed_flush_fails_the_flushes_built_on_it_and_no_offset_is_skipped() {
    let s = memory().await;
    let parts = topic(&s.log, "chain", 2).await;
    let (p, q) = (parts[0], parts[1]);
    assert_eq!(append(&s.log, p, 2).await.unwrap(), Offset(0));
    let mut held = s.store.hold_next_put();
    let log = s.log.clone();
    let first = tokio::spawn(async move { append(&log, p, 1).await });
    held.reached().await;
    // The next flush is built on the held one (offset 3 for p) and uploaded meanwhile.
    let puts = s.store.puts.load(Ordering::SeqCst);
    let (log1, log2) = (s.log.clone(), s.log.clone());
    let second = tokio::spawn(async move { append(&log1, p, 1).await });
    let other = tokio::spawn(async move { append(&log2, q, 1).await });
    until("the second flush's upload", || {
        s.store.puts.load(Ordering::SeqCst) > puts
    })
    .await;
    held.fail();
    let err = first.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    // Built on a flush that failed: refused, retriably, rather than committed past a gap.
    let err = second.await.unwrap().unwrap_err();
    assert!(err.is_retriable(), "{err}");
    // Another partition of the same flush is unaffected.
    assert_eq!(other.await.unwrap().unwrap(), Offset(0));
    // The next append continues right after the last committed offset.
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(2));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 2)]);
}

#[tokio::test]
async fn a_retry_of_a_batch_still_under_way_is_answered_when_it_commits() {
    let s = memory().await;
    let p = topic(&s.log, "retry", 1).await[0];
    let mut held = s.store.hold_next_put();
    let log = s.log.clone();
    let first = tokio::spawn(async move { append_idempotent(&log, p, (7, 0, 0), 2).await });
    held.reached().await;
    // The producer gives up waiting and sends the same batch again: it must not be
    // acknowledged before the original commits, nor appended twice.
    let log = s.log.clone();
    let retry = tokio::spawn(async move { append_idempotent(&log, p, (7, 0, 0), 2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !retry.is_finished(),
        "a retry was answered before its original committed"
    );
    held.release();
    assert_eq!(first.await.unwrap().unwrap(), Offset(0));
    assert_eq!(retry.await.unwrap().unwrap(), Offset(0));
    assert_eq!(
        append_idempotent(&s.log, p, (7, 0, 2), 1).await.unwrap(),
        Offset(2)
    );
    assert_eq!(read_all(&s.log, p).await, vec![(0, 1), (2, 2)]);
}

#[tokio::test]
async fn produced_bytes_held_are_bounded_until_flushes_finish() {
    let s = open(
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
        Arc::new(SystemClock::new()),
        LogConfig {
            max_buffered_bytes: 1_000,
            ..LogConfig::default()
        },
    )
    .await;
    let p = topic(&s.log, "bounded", 1).await[0];
    s.log.wait_for_room().await;
    let mut held = s.store.hold_next_put();
    let log = s.log.clone();
    let first = tokio::spawn(async move { append(&log, p, 200).await });
    held.reached().await;
    assert!(s.log.buffered_bytes() > 1_000);
    // Over the bound: whoever takes produce requests waits for the flush under way.
    let log = s.log.clone();
    let waiting = tokio::spawn(async move { log.wait_for_room().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "room while the bound is exceeded");
    held.release();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Offset(0));
    assert_eq!(s.log.buffered_bytes(), 0);
}

#[tokio::test]
async fn the_first_releases_layout_is_converted_at_start() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryObjectStore::new());
    let meta: Arc<dyn MetadataStore> = Arc::new(MemoryMetadataStore::new());
    let open_log = || {
        open(
            store.clone(),
            meta.clone(),
            Arc::new(SystemClock::new()),
            LogConfig::default(),
        )
    };
    let s = open_log().await;
    let p = topic(&s.log, "old", 1).await[0];
    s.log.shutdown().await;
    // Rewrite the partition as the first release kept it: a flush object, one chunk key per
    // chunk, and the extent in a partition record (JSON), no checkpoint.
    let mut builder =
        kafscale_core::object_format::FlushObjectBuilder::new(s.log.broker_id(), 0, 0);
    let batches = [records(3, "a"), records(2, "b")];
    let e1 = builder
        .add_chunk(
            p.topic,
            p.partition,
            Offset(0),
            LeaderEpoch(0),
            [batches[0].as_ref()],
        )
        .unwrap();
    let (object, _, _) = builder.finish();
    let key = "data/0/0191e8b0c8a07000800000000000000a.ksf";
    store
        .put(key, object, kafscale_core::ports::PutMode::Create)
        .await
        .unwrap();
    let chunk = kafscale_core::log::ChunkRecord::from_entry(key, &e1);
    let legacy = |kind: &str| format!("kafscale/{kind}/{}/00000", p.topic);
    let txn = kafscale_core::ports::Txn::new()
        .then(kafscale_core::ports::TxnOp::Delete {
            key: keys::checkpoint(p),
        })
        .then(kafscale_core::ports::TxnOp::Put {
            key: legacy("partitions"),
            value: encode_json(&kafscale_core::log::PartitionRecord {
                log_start_offset: Offset(0),
                log_end_offset: Offset(3),
            }),
            lease: None,
        })
        .then(kafscale_core::ports::TxnOp::Put {
            key: format!("{}/{:020}", legacy("chunks"), 0),
            value: encode_json(&chunk),
            lease: None,
        });
    assert!(meta.txn(txn).await.unwrap().succeeded);
    let s = open_log().await;
    assert_eq!(s.log.partition_info(p).unwrap().high_watermark, Offset(3));
    assert_eq!(read_all(&s.log, p).await, vec![(0, 2)]);
    assert_eq!(append(&s.log, p, 1).await.unwrap(), Offset(3));
    for kind in ["partitions", "chunks", "producers"] {
        let left = meta.range(&format!("kafscale/{kind}/")).await.unwrap().kvs;
        assert!(left.is_empty(), "{kind} keys left: {left:?}");
    }
    assert!(meta.get(&keys::checkpoint(p)).await.unwrap().is_some());
}
