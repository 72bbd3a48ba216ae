//! The partition log's idempotent appends: retries after unknown commit outcomes or while the
//! original is under way, sequence and epoch errors, producer state across a restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::batch;
use kafscale_core::log::{AppendRequest, LogConfig, LogService};
use kafscale_core::{Error, Offset, PartitionKey};
use kafscale_testkit::faults::TxnFault;

use support::*;

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
