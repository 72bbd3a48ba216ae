//! What the log cleaner costs: a compacted partition on a local-directory object store and
//! the embedded metadata store is filled with updates (every key many times) and merged into
//! segments by one process (`prepare`), then cleaned by a fresh one (`clean`), which prints
//! the segment bytes cleaned per second and its own peak memory (VmHWM: opening the log,
//! taking the partition over and the clean; nothing else runs in it).
//!
//! `clean_bench prepare DIR [MiB] [keys] [value bytes]` (defaults: 1024 MiB of updates,
//! 100,000 keys, 1,000-byte values), then `clean_bench clean DIR`; `bench/compaction.sh`
//! runs both.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use kafscale_adapters::{EmbeddedMetadataStore, LocalObjectStore, SystemClock};
use kafscale_core::batch;
use kafscale_core::log::{AppendRequest, CreateTopic, LogConfig, LogService};
use kafscale_core::{PartitionId, PartitionKey};

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn config() -> LogConfig {
    LogConfig {
        gc_grace_ms: 0,
        // Rounds only when called: merges and the clean are timed apart.
        checkpoint_interval_ms: 3_600_000,
        cleaner_backoff_ms: 3_600_000,
        compaction_min_bytes: 32 << 20,
        ..LogConfig::default()
    }
}

async fn open(dir: &std::path::Path) -> LogService {
    LogService::open(
        config(),
        Arc::new(LocalObjectStore::open(dir.join("objects")).unwrap()),
        Arc::new(EmbeddedMetadataStore::open(dir.join("meta")).unwrap()),
        Arc::new(SystemClock::new()),
    )
    .await
    .unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(&args[1]);
    if args[0] == "clean" {
        return clean(&dir).await;
    }
    let num = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let mib = num(2, 1024);
    let keys = num(3, 100_000);
    let value_len = num(4, 1_000) as usize;
    let log = open(&dir).await;
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    configs.insert("min.cleanable.dirty.ratio".to_string(), "0.01".to_string());
    // The records are stamped 1970: the last flushes are rolled into a segment too.
    configs.insert("segment.ms".to_string(), "1000".to_string());
    let t = log
        .create_topic(CreateTopic {
            name: "bench".into(),
            partitions: 1,
            configs,
            validate_only: false,
        })
        .await
        .unwrap();
    let p = PartitionKey {
        topic: t.id,
        partition: PartitionId(0),
    };
    let total = mib << 20;
    let per_batch = 100usize;
    let value = vec![b'x'; value_len];
    let (mut written, mut n, mut tickets) = (0u64, 0u64, Vec::new());
    let started = Instant::now();
    while written < total {
        let keys_text: Vec<String> = (0..per_batch as u64)
            .map(|i| format!("key-{:08}", (n + i).wrapping_mul(2_654_435_761) % keys))
            .collect();
        let recs: Vec<batch::SimpleRecord<'_>> = keys_text
            .iter()
            .map(|k| (Some(k.as_bytes()), Some(value.as_slice())))
            .collect();
        let b = batch::build(&recs, 1_000);
        written += b.len() as u64;
        n += per_batch as u64;
        let ticket = log
            .append(AppendRequest {
                partition: p,
                batch: b,
                wait: true,
            })
            .unwrap()
            .unwrap();
        tickets.push(ticket);
        if tickets.len() >= 256 {
            for t in tickets.drain(..) {
                t.await.unwrap().unwrap();
            }
        }
    }
    for t in tickets.drain(..) {
        t.await.unwrap().unwrap();
    }
    let produced = started.elapsed();
    let merging = Instant::now();
    for _ in 0..200 {
        log.checkpoint().await.unwrap();
    }
    let merged = merging.elapsed();
    println!(
        "updates: {n} records, {:.0} MiB, {keys} keys, {value_len}-byte values; produced in {:.1} s, merged into {} segments in {:.1} s",
        written as f64 / 1048576.0,
        produced.as_secs_f64(),
        log.stats().segments.load(Relaxed),
        merged.as_secs_f64()
    );
    log.shutdown().await;
}

async fn clean(dir: &std::path::Path) {
    let log = open(dir).await;
    let rss_open = status_kib("VmRSS:");
    let cleaning = Instant::now();
    let mut runs = 0;
    loop {
        log.clean().await.unwrap();
        let now = log.stats().cleaner_runs.load(Relaxed);
        if now == runs {
            break;
        }
        runs = now;
    }
    let secs = cleaning.elapsed().as_secs_f64();
    let read = log.stats().cleaned_bytes.load(Relaxed) as f64 / 1048576.0;
    let removed = log.stats().cleaned_records.load(Relaxed);
    println!(
        "clean: {runs} runs in {secs:.2} s; {:.0} MiB of segments cleaned at {:.1} MiB/s (both passes read {read:.0} MiB, {:.1} MiB/s); {removed} records removed",
        read / 2.0,
        read / 2.0 / secs,
        read / secs
    );
    println!(
        "memory: RSS {:.0} MiB after opening the log, peak {:.0} MiB (the whole clean process)",
        rss_open as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
    log.shutdown().await;
}
