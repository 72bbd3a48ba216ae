//! What the log engine tests (`log_*.rs`) share: a log over fault-injecting ports, topics,
//! appends and reads.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::batch;
use kafscale_core::log::{AppendRequest, CreateTopic, LogConfig, LogService, ReadRequest};
use kafscale_core::ports::{Clock, MetadataStore, ObjectStore};
use kafscale_core::{Error, Offset, PartitionId, PartitionKey};
use kafscale_testkit::faults::{FaultyMetadataStore, FaultyObjectStore};

pub struct Setup {
    pub log: LogService,
    pub store: Arc<FaultyObjectStore>,
    pub meta: Arc<FaultyMetadataStore>,
}

pub async fn open(
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

pub async fn memory() -> Setup {
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

pub async fn topic(log: &LogService, name: &str, partitions: i32) -> Vec<PartitionKey> {
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

/// A one-partition topic with these configs.
pub async fn topic_with(log: &LogService, name: &str, configs: &[(&str, &str)]) -> PartitionKey {
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

/// A one-partition topic with `cleanup.policy` compact and these other configs.
pub async fn compacted(log: &LogService, name: &str, configs: &[(&str, &str)]) -> PartitionKey {
    let mut all = vec![("cleanup.policy", "compact")];
    all.extend_from_slice(configs);
    topic_with(log, name, &all).await
}

/// The log cleaner's tests: every round merges what was flushed into a segment, and replaced
/// objects are garbage at once.
pub fn compaction_config() -> LogConfig {
    LogConfig {
        compaction_min_bytes: 1,
        segment_block_bytes: 512,
        gc_grace_ms: 0,
        ..LogConfig::default()
    }
}

/// A log on these memory stores (a second one on the same stores is a restart).
pub async fn open_on(
    store: &Arc<MemoryObjectStore>,
    meta: &Arc<MemoryMetadataStore>,
    config: LogConfig,
) -> Setup {
    open(
        store.clone(),
        meta.clone(),
        Arc::new(SystemClock::new()),
        config,
    )
    .await
}

pub fn records(n: usize, tag: &str) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let recs: Vec<batch::SimpleRecord<'_>> = values
        .iter()
        .map(|v| (Some(b"k".as_slice()), Some(v.as_bytes())))
        .collect();
    batch::build(&recs, 1_000)
}

pub async fn append(log: &LogService, p: PartitionKey, n: usize) -> Result<Offset, Error> {
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: records(n, "r"),
            wait: true,
        })?
        .unwrap();
    ticket.await.unwrap().map(|a| a.base_offset)
}

pub async fn read_all(log: &LogService, p: PartitionKey) -> Vec<(i64, i64)> {
    read_from(log, p, 0).await
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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

pub async fn read_from(log: &LogService, p: PartitionKey, offset: i64) -> Vec<(i64, i64)> {
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
