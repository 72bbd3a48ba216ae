//! The partition log's flushes, with faults injected in the ports: group commit, failed
//! uploads and commits, unknown commit outcomes, flush.ms and flush.bytes, overlapping flushes
//! and the bound on bytes held.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::log::{AppendRequest, LogConfig};
use kafscale_core::ports::ManualClock;
use kafscale_core::{Error, Offset};
use kafscale_testkit::faults::TxnFault;

use support::*;

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
