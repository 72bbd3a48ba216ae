//! Key compaction of compacted topics by the log cleaner: the latest record of each key
//! survives with its offset, tombstones go after `delete.retention.ms`, a small key map
//! cleans in several passes, `min.compaction.lag.ms` holds young records back, and the result
//! reads back cold after a restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::log::{AppendRequest, LogConfig, LogService, ReadRequest};
use kafscale_core::ports::{Clock, MetadataStore, ObjectStore};
use kafscale_core::{batch, unpack, Offset, PartitionKey};

use support::*;

const KEYS: usize = 10;

/// Appends one batch (one flush, one chunk): `(key, value)` pairs, `None` a tombstone.
async fn put(log: &LogService, p: PartitionKey, records: &[(String, Option<String>)], ts: i64) {
    let recs: Vec<batch::SimpleRecord<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.as_deref().map(str::as_bytes)))
        .collect();
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: batch::build(&recs, ts),
            wait: true,
        })
        .unwrap()
        .unwrap();
    ticket.await.unwrap().unwrap();
}

/// `batches` batches of 50 updates each over [`KEYS`] keys, the value naming batch and record.
async fn updates(log: &LogService, p: PartitionKey, batches: usize, ts: i64) {
    for b in 0..batches {
        let records: Vec<(String, Option<String>)> = (0..50)
            .map(|i| (format!("k{}", i % KEYS), Some(format!("{b}-{i}"))))
            .collect();
        put(log, p, &records, ts).await;
    }
}

/// Every record from `from` on: (offset, key, value).
async fn records_from(
    log: &LogService,
    p: PartitionKey,
    from: i64,
) -> Vec<(i64, String, Option<String>)> {
    let r = log
        .read(ReadRequest {
            partition: p,
            offset: Offset(from),
            max_bytes: 64 << 20,
            min_one_batch: true,
            current_leader_epoch: None,
        })
        .await
        .unwrap();
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let mut out = Vec::new();
    for item in batch::iter(&r.records) {
        let (_, bytes) = item.unwrap();
        batch::validate(&bytes).unwrap();
        for rec in unpack::read_batch(&bytes).unwrap().1 {
            out.push((rec.offset, text(&rec.key).unwrap(), text(&rec.value)));
        }
    }
    out
}

#[tokio::test]
async fn the_latest_record_of_each_key_survives_with_its_offset_and_tombstones_go_later() {
    let (store, meta) = (
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    );
    let s = open_on(&store, &meta, compaction_config()).await;
    let p = compacted(
        &s.log,
        "offsets",
        &[
            ("delete.retention.ms", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let now = SystemClock::new().now_ms();
    updates(&s.log, p, 10, now).await;
    s.log.checkpoint().await.unwrap();
    // A tombstone for k3 and another update of k7, merged into a segment of their own.
    put(&s.log, p, &[("k3".into(), None)], now).await;
    put(&s.log, p, &[("k7".into(), Some("last".into()))], now).await;
    s.log.checkpoint().await.unwrap();
    // The newest flush stays in the active part (never cleaned): one more batch.
    put(&s.log, p, &[("k8".into(), Some("active".into()))], now).await;
    let before = records_from(&s.log, p, 0).await;
    assert_eq!(before.len(), 503);

    s.log.clean().await.unwrap();
    let after = records_from(&s.log, p, 0).await;
    let offsets: Vec<i64> = after.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let expected: Vec<(i64, String, Option<String>)> = {
        // The latest of each key among the cleaned segments (offsets 0..=501), then the
        // active batch.
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        for r in before.iter().filter(|r| r.0 <= 501) {
            latest.insert(r.1.clone(), (r.0, r.2.clone()));
        }
        let mut v: Vec<_> = latest
            .into_iter()
            .map(|(k, (o, val))| (o, k, val))
            .collect();
        v.sort();
        v.push(before[502].clone());
        v
    };
    assert_eq!(after, expected);
    assert!(
        after.contains(&(500, "k3".into(), None)),
        "the tombstone stays for now"
    );
    assert_eq!(
        s.log
            .stats()
            .cleaner_runs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        s.log
            .stats()
            .cleaned_records
            .load(std::sync::atomic::Ordering::Relaxed),
        (503 - after.len()) as u64
    );
    // A consumer at a removed offset goes on with the next record kept.
    let next = records_from(&s.log, p, 3).await;
    assert_eq!(next[0], after.iter().find(|r| r.0 >= 3).unwrap().clone());
    // Cleaning again changes nothing while the tombstone is young.
    s.log.clean().await.unwrap();
    assert_eq!(records_from(&s.log, p, 0).await, after);

    // After delete.retention.ms the tombstone goes in the next clean, nothing else does.
    tokio::time::sleep(Duration::from_millis(350)).await;
    s.log.clean().await.unwrap();
    let purged = records_from(&s.log, p, 0).await;
    let without: Vec<_> = after.iter().filter(|r| r.1 != "k3").cloned().collect();
    assert_eq!(purged, without);
    // The objects of the replaced segments are garbage now.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let gc = s.log.collect_garbage().await.unwrap();
    assert!(gc.deleted >= 1, "{gc:?}");
    s.log.shutdown().await;
    drop(s);

    // Cold, after a restart: the same records, from the cleaned segments' keys.
    let s = open_on(&store, &meta, compaction_config()).await;
    assert_eq!(records_from(&s.log, p, 0).await, purged);
    s.log.shutdown().await;
}

#[tokio::test]
async fn a_small_key_map_cleans_in_several_passes() {
    let (store, meta) = (
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    );
    // Room for 5 keys of the 10.
    let s = open_on(
        &store,
        &meta,
        LogConfig {
            cleaner_buffer_bytes: 5 * 32,
            ..compaction_config()
        },
    )
    .await;
    let p = compacted(
        &s.log,
        "small-map",
        &[("min.cleanable.dirty.ratio", "0.01")],
    )
    .await;
    let now = SystemClock::new().now_ms();
    // Batches alternate between keys k0-k4 and k5-k9; two batches a segment.
    for b in 0..8 {
        let records: Vec<(String, Option<String>)> = (0..50)
            .map(|i| {
                (
                    format!("k{}", (b % 2) * 5 + i % 5),
                    Some(format!("{b}-{i}")),
                )
            })
            .collect();
        put(&s.log, p, &records, now).await;
        if b % 2 == 1 {
            s.log.checkpoint().await.unwrap();
        }
    }
    put(&s.log, p, &[("k0".into(), Some("active".into()))], now).await;
    s.log.clean().await.unwrap();
    let first = records_from(&s.log, p, 0).await;
    // The map covered part of the first segment only: duplicates remain after it.
    assert!(first.len() < 401 && first.len() > 11, "{}", first.len());
    for _ in 0..20 {
        s.log.clean().await.unwrap();
    }
    let done = records_from(&s.log, p, 0).await;
    let keys: std::collections::BTreeSet<&str> = done[..done.len() - 1]
        .iter()
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!((done.len(), keys.len()), (11, 10), "{done:?}");
    let last_of = |r: &(i64, String, Option<String>)| {
        let v = r.2.as_deref().unwrap_or("");
        v == "active" || v.starts_with("6-") || v.starts_with("7-")
    };
    assert!(done.iter().all(last_of), "{done:?}");
    s.log.shutdown().await;
}

#[tokio::test]
async fn young_records_wait_for_the_minimum_lag_and_other_topics_are_not_cleaned() {
    let s = open_on(
        &Arc::new(MemoryObjectStore::new()),
        &Arc::new(MemoryMetadataStore::new()),
        compaction_config(),
    )
    .await;
    let lagged = compacted(&s.log, "lagged", &[("min.compaction.lag.ms", "3600000")]).await;
    let plain = topic(&s.log, "plain", 1).await[0];
    let now = SystemClock::new().now_ms();
    for p in [lagged, plain] {
        updates(&s.log, p, 3, now).await;
        s.log.checkpoint().await.unwrap();
        put(&s.log, p, &[("k0".into(), Some("active".into()))], now).await;
    }
    s.log.clean().await.unwrap();
    assert_eq!(records_from(&s.log, lagged, 0).await.len(), 151);
    assert_eq!(records_from(&s.log, plain, 0).await.len(), 151);
    // Records an hour old are past the lag.
    let old = compacted(&s.log, "old", &[("min.compaction.lag.ms", "60000")]).await;
    updates(&s.log, old, 3, now - 3_600_000).await;
    s.log.checkpoint().await.unwrap();
    put(&s.log, old, &[("k0".into(), Some("active".into()))], now).await;
    s.log.clean().await.unwrap();
    assert_eq!(records_from(&s.log, old, 0).await.len(), 11);
    s.log.shutdown().await;
}

#[tokio::test]
async fn segment_ms_rolls_small_flushes_into_a_segment() {
    let s = open_on(
        &Arc::new(MemoryObjectStore::new()),
        &Arc::new(MemoryMetadataStore::new()),
        LogConfig {
            compaction_min_bytes: 1 << 30,
            ..compaction_config()
        },
    )
    .await;
    let rolled = compacted(&s.log, "rolled", &[("segment.ms", "1000")]).await;
    let kept = compacted(&s.log, "kept", &[]).await;
    let hour_ago = SystemClock::new().now_ms() - 3_600_000;
    for p in [rolled, kept] {
        updates(&s.log, p, 1, hour_ago).await;
    }
    s.log.checkpoint().await.unwrap();
    let segments = |p: PartitionKey| {
        let meta = s.meta.clone();
        async move {
            meta.range(&kafscale_core::schema::keys::partition_segments_prefix(p))
                .await
                .unwrap()
                .kvs
                .len()
        }
    };
    assert_eq!(
        segments(rolled).await,
        1,
        "a chunk older than segment.ms is rolled"
    );
    assert_eq!(
        segments(kept).await,
        0,
        "below compaction.min.bytes and young enough"
    );
    let _ = s.store.list("").await;
    s.log.shutdown().await;
}
