//! The log cleaner, segment merges and retention over transactions: a clean stops at the
//! last stable offset, drops the records of aborted transactions (which never supersede a
//! committed value), judges committed transactional records like any others, and removes a
//! marker (with its aborted-index entry) only in a clean after its transaction's records
//! went; read_committed readers see each key's latest committed value throughout, after a
//! restart too. Merges keep the markers, and retention the aborted index; the last stable
//! offset never falls below the log start.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::log::{AppendRequest, DeleteBefore, LogService, ReadRequest};
use kafscale_core::ports::{Clock, MetadataStore};
use kafscale_core::{batch, unpack, Offset, PartitionKey};

use support::*;

const A: i64 = 100;
const B: i64 = 200;
const C: i64 = 300;
const D: i64 = 400;

/// Appends one batch and waits for its flush (one chunk per batch).
async fn append_batch(log: &LogService, p: PartitionKey, batch: Bytes) -> i64 {
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch,
            wait: true,
        })
        .unwrap()
        .unwrap();
    ticket.await.unwrap().unwrap().base_offset.0
}

fn now() -> i64 {
    SystemClock::new().now_ms()
}

async fn plain(log: &LogService, p: PartitionKey, records: &[(&str, &str)]) -> i64 {
    let recs: Vec<batch::SimpleRecord<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    append_batch(log, p, batch::build(&recs, now())).await
}

/// A transactional batch of producer `pid` (epoch 0) with first sequence `seq`.
async fn txn(log: &LogService, p: PartitionKey, pid: i64, seq: i32, records: &[(&str, &str)]) {
    let recs: Vec<batch::SimpleRecord<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    let b = batch::build_with(&recs, now(), (pid, 0, seq), batch::TRANSACTIONAL_BIT);
    append_batch(log, p, b).await;
}

/// Producer `pid`'s commit or abort marker, as the coordinator has the leader write it.
async fn marker(log: &LogService, p: PartitionKey, pid: i64, commit: bool) -> i64 {
    append_batch(log, p, batch::build_marker(pid, 0, commit, 0, now())).await
}

/// What a reader sees from offset 0.
#[derive(Debug, PartialEq)]
struct View {
    /// (key, value) of each record read, in offset order.
    records: Vec<(String, String)>,
    /// Offsets of the markers (control batches) returned.
    markers: Vec<i64>,
    /// Producers of the aborted transactions the read named.
    aborted: Vec<i64>,
}

/// Reads from offset 0, read_committed or not, and keeps what a Kafka consumer keeps: a
/// read_committed one puts a producer in its aborted set from its aborted transaction's
/// first offset until its abort marker, and skips that producer's transactional batches
/// meanwhile (the Java consumer's and librdkafka's rule); control batches are never records.
async fn view(log: &LogService, p: PartitionKey, committed: bool) -> View {
    let req = ReadRequest {
        partition: p,
        offset: Offset(0),
        max_bytes: 64 << 20,
        min_one_batch: true,
        current_leader_epoch: None,
    };
    let r = log.read_isolated(req, committed).await.unwrap();
    let mut pending = r.aborted.clone();
    pending.sort_by_key(|a| a.first_offset);
    let mut pending = pending.into_iter().peekable();
    let mut aborted_now: HashSet<i64> = HashSet::new();
    let text = |b: &Option<Bytes>| String::from_utf8_lossy(b.as_deref().unwrap()).into_owned();
    let mut out = View {
        records: Vec::new(),
        markers: Vec::new(),
        aborted: r.aborted.iter().map(|a| a.producer_id).collect(),
    };
    for item in batch::iter(&r.records) {
        let (h, bytes) = item.unwrap();
        batch::validate(&bytes).unwrap();
        while let Some(a) = pending.next_if(|a| a.first_offset.0 <= h.last_offset()) {
            aborted_now.insert(a.producer_id);
        }
        if h.is_control() {
            out.markers.push(h.base_offset);
            if batch::marker_commits(&bytes) == Some(false) {
                aborted_now.remove(&h.producer_id);
            }
            continue;
        }
        if committed && h.is_transactional() && aborted_now.contains(&h.producer_id) {
            continue;
        }
        for rec in unpack::read_batch(&bytes).unwrap().1 {
            out.records.push((text(&rec.key), text(&rec.value)));
        }
    }
    out
}

async fn committed_from(
    log: &LogService,
    p: PartitionKey,
    offset: i64,
) -> kafscale_core::log::ReadResult {
    let req = ReadRequest {
        partition: p,
        offset: Offset(offset),
        max_bytes: 1 << 20,
        min_one_batch: true,
        current_leader_epoch: None,
    };
    log.read_isolated(req, true).await.unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_clean_drops_aborted_records_judges_committed_ones_and_stops_at_an_open_transaction() {
    let (store, meta) = (
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    );
    let s = open_on(&store, &meta, compaction_config()).await;
    let log = &s.log;
    let p = compacted(
        log,
        "txn-compacted",
        &[
            ("delete.retention.ms", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    // Segment 1 (offsets 0-16): plain values of k0-k5; A commits k0 and k1; B aborts k2 and
    // k3; C commits k4, which a plain record then supersedes; B aborts k5.
    let first = [
        ("k0", "plain"),
        ("k1", "plain"),
        ("k2", "plain"),
        ("k3", "plain"),
        ("k4", "plain"),
        ("k5", "plain"),
    ];
    assert_eq!(plain(log, p, &first).await, 0);
    txn(log, p, A, 0, &[("k0", "a-commit"), ("k1", "a-commit")]).await;
    txn(log, p, B, 0, &[("k2", "b-abort"), ("k3", "b-abort")]).await;
    assert_eq!(marker(log, p, A, true).await, 10);
    assert_eq!(marker(log, p, B, false).await, 11);
    txn(log, p, C, 0, &[("k4", "c-superseded")]).await;
    plain(log, p, &[("k4", "plain-late")]).await;
    assert_eq!(marker(log, p, C, true).await, 14);
    txn(log, p, B, 2, &[("k5", "b-abort")]).await;
    assert_eq!(marker(log, p, B, false).await, 16);
    s.log.checkpoint().await.unwrap();
    // Segment 2 (17-20): D opens a transaction (the last stable offset stays at 17); a plain
    // record and a committed transaction of B follow it.
    txn(log, p, D, 0, &[("k0", "d-open")]).await;
    plain(log, p, &[("k1", "plain-after-open")]).await;
    txn(log, p, B, 3, &[("k6", "b-commit")]).await;
    assert_eq!(marker(log, p, B, true).await, 20);
    s.log.checkpoint().await.unwrap();
    // The active part, never cleaned.
    assert_eq!(plain(log, p, &[("k7", "active")]).await, 21);

    s.log.clean().await.unwrap();
    // Below the stable offset: B's aborted records are gone, k2, k3 and k5 keep their
    // committed plain values; A's committed records superseded the plain k0 and k1; C's
    // record went for the later plain one. Every marker stays: A's records remain, and the
    // others' went only in this clean. From 17 on nothing was touched.
    let committed_then = pairs(&[
        ("k2", "plain"),
        ("k3", "plain"),
        ("k5", "plain"),
        ("k0", "a-commit"),
        ("k1", "a-commit"),
        ("k4", "plain-late"),
    ]);
    let mut everything = committed_then.clone();
    everything.extend(pairs(&[
        ("k0", "d-open"),
        ("k1", "plain-after-open"),
        ("k6", "b-commit"),
        ("k7", "active"),
    ]));
    let v = view(log, p, false).await;
    assert_eq!(v.records, everything);
    assert_eq!(v.markers, vec![10, 11, 14, 16, 20]);
    let v = view(log, p, true).await;
    assert_eq!(v.records, committed_then, "read_committed stops at 17");
    assert_eq!(
        v.aborted,
        vec![B, B],
        "the aborted index still names B's transactions"
    );

    // D aborts; the rest is merged and the partition is stable again.
    assert_eq!(marker(log, p, D, false).await, 22);
    s.log.checkpoint().await.unwrap();
    plain(log, p, &[("k8", "last")]).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    s.log.clean().await.unwrap();
    // D's aborted record went and never superseded A's k0; the plain k1 after it superseded
    // A's. B's abort markers and C's commit marker had nothing left before them and are past
    // delete.retention.ms: they went, and B's entries in the aborted index with them (else a
    // read_committed reader would skip B's committed k6 after them). A's marker stays for its
    // k0, B's commit for k6, and D's abort until a later clean.
    let expected = pairs(&[
        ("k2", "plain"),
        ("k3", "plain"),
        ("k5", "plain"),
        ("k0", "a-commit"),
        ("k4", "plain-late"),
        ("k1", "plain-after-open"),
        ("k6", "b-commit"),
        ("k7", "active"),
        ("k8", "last"),
    ]);
    let v = view(log, p, false).await;
    assert_eq!((&v.records, &v.markers), (&expected, &vec![10, 20, 22]));
    let v = view(log, p, true).await;
    assert_eq!((&v.records, &v.aborted), (&expected, &vec![D]));

    tokio::time::sleep(Duration::from_millis(350)).await;
    s.log.clean().await.unwrap();
    let v = view(log, p, true).await;
    assert_eq!(
        v,
        View {
            records: expected.clone(),
            markers: vec![10, 20],
            aborted: vec![],
        }
    );
    s.log.shutdown().await;
    drop(s);

    // Cold, after a restart: the checkpoint holds the segments and the aborted index alike.
    let s = open_on(&store, &meta, compaction_config()).await;
    let v = view(&s.log, p, true).await;
    assert_eq!(
        (&v.records, &v.markers, v.aborted.len()),
        (&expected, &vec![10, 20], 0)
    );
    assert_eq!(view(&s.log, p, false).await.records, expected);
    s.log.shutdown().await;
}

#[tokio::test]
async fn merges_keep_markers_and_retention_keeps_the_aborted_index_consistent() {
    let (store, meta) = (
        Arc::new(MemoryObjectStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    );
    let s = open_on(&store, &meta, compaction_config()).await;
    let log = &s.log;
    let p = topic(log, "txn-merged", 1).await[0];
    // A aborts 0-1, a plain record between; A commits 4-5; B aborts 7.
    txn(log, p, A, 0, &[("x", "a-abort"), ("x", "a-abort")]).await;
    plain(log, p, &[("y", "plain")]).await;
    assert_eq!(marker(log, p, A, false).await, 3);
    txn(log, p, A, 2, &[("x", "a-commit"), ("x", "a-commit")]).await;
    assert_eq!(marker(log, p, A, true).await, 6);
    txn(log, p, B, 0, &[("z", "b-abort")]).await;
    assert_eq!(marker(log, p, B, false).await, 8);
    let before = (view(log, p, false).await, view(log, p, true).await);
    s.log.checkpoint().await.unwrap();
    let segments = meta
        .range(&kafscale_core::schema::keys::partition_segments_prefix(p))
        .await
        .unwrap()
        .kvs
        .len();
    assert_eq!(segments, 1, "the chunks were merged into a segment");
    let committed = pairs(&[("y", "plain"), ("x", "a-commit"), ("x", "a-commit")]);
    let after = (view(log, p, false).await, view(log, p, true).await);
    assert_eq!(after, before);
    assert_eq!(after.1.records, committed);
    assert_eq!(after.1.markers, vec![3, 6, 8]);
    assert_eq!(after.1.aborted, vec![A, B]);

    // Retention past A's aborted transaction: its entry goes, B's stays.
    s.log
        .delete_records(p, DeleteBefore::Offset(Offset(4)))
        .await
        .unwrap();
    let read = committed_from(log, p, 4).await;
    assert_eq!(read.log_start_offset, Offset(4));
    let named: Vec<(i64, i64)> = read
        .aborted
        .iter()
        .map(|a| (a.producer_id, a.first_offset.0))
        .collect();
    assert_eq!(named, vec![(B, 7)]);
    s.log.shutdown().await;
    drop(s);
    let s = open_on(&store, &meta, compaction_config()).await;
    let log = &s.log;
    let read = committed_from(log, p, 4).await;
    assert_eq!((read.log_start_offset, read.aborted.len()), (Offset(4), 1));

    // Retention past the first records of an open transaction: the last stable offset is
    // the log start (as in Kafka), not an offset below it, until the transaction ends.
    txn(log, p, C, 0, &[("w", "c-open")]).await;
    assert_eq!(plain(log, p, &[("v", "plain")]).await, 10);
    log.delete_records(p, DeleteBefore::Offset(Offset(10)))
        .await
        .unwrap();
    let info = log.partition_info(p).unwrap();
    assert_eq!(
        (info.log_start_offset, info.last_stable_offset),
        (Offset(10), Offset(10))
    );
    assert!(committed_from(log, p, 10).await.records.is_empty());
    marker(log, p, C, true).await;
    let v = committed_from(log, p, 10).await;
    assert_eq!(
        (v.last_stable_offset, v.high_watermark),
        (Offset(12), Offset(12))
    );
    assert!(!v.records.is_empty());
    s.log.shutdown().await;
}
