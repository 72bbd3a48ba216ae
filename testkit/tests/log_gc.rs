//! The partition log's retention, garbage collection and compaction: retention.ms and
//! retention.bytes, orphaned and young objects, chunks merged into segments.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::{
    EmbeddedMetadataStore, LocalObjectStore, MemoryMetadataStore, MemoryObjectStore, SystemClock,
};
use kafscale_core::batch;
use kafscale_core::log::{AppendRequest, LogConfig, LogService, ReadRequest};
use kafscale_core::ports::{Clock, MetadataStore, ObjectStore};
use kafscale_core::schema::keys;
use kafscale_core::{Error, Offset, PartitionKey};
use kafscale_testkit::faults::TxnFault;

use support::*;

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

async fn segment_keys(meta: &dyn MetadataStore) -> usize {
    meta.range(&keys::segments_prefix())
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
