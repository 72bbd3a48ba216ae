//! Administrative changes of the log against the memory stores: no lost topic updates between
//! brokers, DeleteRecords recorded by a checkpoint (the chunks below the new start dropped from it).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::batch;
use kafscale_core::log::{
    AlterTopicConfigs, AppendRequest, ConfigChange, CreatePartitions, CreateTopic, DeleteBefore,
    LogConfig, LogService,
};
use kafscale_core::ports::{MetadataStore, MetadataStoreExt, ObjectStore};
use kafscale_core::schema::{keys, Checkpoint};
use kafscale_core::topic::TopicRecord;
use kafscale_core::topic_config::ConfigOp;
use kafscale_core::{BrokerId, Error, Offset, PartitionId, PartitionKey};
use kafscale_testkit::faults::FaultyObjectStore;

struct Stores {
    store: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetadataStore>,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            store: Arc::new(MemoryObjectStore::new()),
            meta: Arc::new(MemoryMetadataStore::new()),
        }
    }

    async fn broker(&self, id: i32) -> LogService {
        LogService::open(
            LogConfig {
                broker_id: BrokerId(id),
                ..LogConfig::default()
            },
            self.store.clone(),
            self.meta.clone(),
            Arc::new(SystemClock::new()),
        )
        .await
        .unwrap()
    }
}

async fn create(log: &LogService, name: &str, partitions: i32) -> TopicRecord {
    log.create_topic(CreateTopic {
        name: name.into(),
        partitions,
        configs: BTreeMap::new(),
        validate_only: false,
    })
    .await
    .unwrap()
}

fn set(name: &str, value: &str) -> ConfigChange {
    ConfigChange::Incremental(vec![(name.into(), ConfigOp::Set(value.into()))])
}

async fn alter(log: &LogService, topic: &str, change: ConfigChange) -> Result<TopicRecord, Error> {
    log.alter_topic_configs(AlterTopicConfigs {
        topic: topic.into(),
        change,
        validate_only: false,
    })
    .await
}

fn records(n: usize) -> Bytes {
    let recs: Vec<batch::SimpleRecord<'_>> =
        (0..n).map(|_| (None, Some(b"v".as_slice()))).collect();
    batch::build(&recs, 1_000)
}

async fn append(log: &LogService, p: PartitionKey, n: usize) -> Result<Offset, Error> {
    let ticket = log
        .append(AppendRequest {
            partition: p,
            batch: records(n),
            wait: true,
        })?
        .unwrap();
    ticket.await.unwrap().map(|a| a.base_offset)
}

#[tokio::test]
async fn config_changes_of_two_brokers_are_both_kept() {
    let stores = Stores::new();
    let a = stores.broker(0).await;
    create(&a, "shared", 1).await;
    // B loads the topic now; A's change afterwards leaves B's local copy stale.
    let b = stores.broker(1).await;
    alter(&a, "shared", set("retention.ms", "1000"))
        .await
        .unwrap();
    let after_b = alter(&b, "shared", set("segment.ms", "5000"))
        .await
        .unwrap();
    let expected: BTreeMap<String, String> = [("retention.ms", "1000"), ("segment.ms", "5000")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(after_b.configs, expected);
    let (stored, _) = stores
        .meta
        .get_json::<TopicRecord>(&keys::topic("shared"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.configs, expected);
    assert_eq!(
        b.topic("shared").unwrap().configs,
        expected,
        "B's local state follows its write"
    );
    // Invalid changes and validate_only write nothing.
    assert!(matches!(
        alter(&a, "shared", set("cleanup.policy", "shred")).await,
        Err(Error::InvalidConfig { .. })
    ));
    a.alter_topic_configs(AlterTopicConfigs {
        topic: "shared".into(),
        change: set("retention.ms", "1"),
        validate_only: true,
    })
    .await
    .unwrap();
    let (again, _) = stores
        .meta
        .get_json::<TopicRecord>(&keys::topic("shared"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, stored);
    assert!(matches!(
        alter(&a, "nope", set("retention.ms", "1")).await,
        Err(Error::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn racing_partition_growth_applies_once() {
    let stores = Stores::new();
    let a = stores.broker(0).await;
    create(&a, "grow", 1).await;
    let b = stores.broker(1).await;
    let grow = |log: &LogService| {
        let log = log.clone();
        async move {
            log.create_partitions(CreatePartitions {
                topic: "grow".into(),
                count: 3,
                validate_only: false,
            })
            .await
        }
    };
    let (ra, rb) = tokio::join!(grow(&a), grow(&b));
    let outcomes = [ra.is_ok(), rb.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "{ra:?} {rb:?}"
    );
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(
        matches!(loser, Err(Error::InvalidPartitions(3))),
        "{loser:?}"
    );
    let (stored, _) = stores
        .meta
        .get_json::<TopicRecord>(&keys::topic("grow"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.partitions, 3);
}

#[tokio::test]
async fn new_partitions_take_appends() {
    let stores = Stores::new();
    let log = stores.broker(0).await;
    let t = create(&log, "more", 1).await;
    let grown = log
        .create_partitions(CreatePartitions {
            topic: "more".into(),
            count: 4,
            validate_only: false,
        })
        .await
        .unwrap();
    assert_eq!(grown.partitions, 4);
    for p in 0..4 {
        let key = PartitionKey {
            topic: t.id,
            partition: PartitionId(p),
        };
        assert_eq!(append(&log, key, 2).await.unwrap(), Offset(0));
        assert_eq!(log.partition_info(key).unwrap().high_watermark, Offset(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_during_appends_never_fences_the_leader() {
    // Uploads take a while, so that record deletions land while a flush is under way.
    let slow = FaultyObjectStore::new(Arc::new(MemoryObjectStore::new()));
    slow.set_put_delay(std::time::Duration::from_millis(3));
    let stores = Stores {
        store: slow,
        meta: Arc::new(MemoryMetadataStore::new()),
    };
    let log = stores.broker(0).await;
    let t = create(&log, "busy", 1).await;
    let p = PartitionKey {
        topic: t.id,
        partition: PartitionId(0),
    };
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut next = Offset(0);
            for _ in 0..100 {
                let base = append(&log, p, 3)
                    .await
                    .expect("append while deleting records");
                assert_eq!(base, next);
                next = next.plus(3);
            }
        })
    };
    let mut last = Offset(0);
    while !writer.is_finished() {
        let low = log
            .delete_records(p, DeleteBefore::HighWatermark)
            .await
            .expect("delete records while appending");
        assert!(low >= last, "the low watermark never goes back");
        last = low;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let info = log.partition_info(p).unwrap();
    assert_eq!(info.high_watermark, Offset(300));
    assert_eq!(
        log.delete_records(p, DeleteBefore::HighWatermark)
            .await
            .unwrap(),
        Offset(300)
    );
    assert_eq!(log.partition_info(p).unwrap().log_start_offset, Offset(300));
}

#[tokio::test]
async fn delete_records_is_recorded_by_the_checkpoint() {
    let stores = Stores::new();
    let log = stores.broker(0).await;
    let t = create(&log, "chunks", 1).await;
    let p = PartitionKey {
        topic: t.id,
        partition: PartitionId(0),
    };
    // One flush (one chunk) per append: [0,5) [5,10) [10,15).
    for _ in 0..3 {
        append(&log, p, 5).await.unwrap();
    }
    let checkpointed_start = || async {
        let kv = stores
            .meta
            .get(&keys::checkpoint(p))
            .await
            .unwrap()
            .unwrap();
        Checkpoint::decode(&kv.value).unwrap().log_start_offset
    };
    assert_eq!(checkpointed_start().await, Offset(0));
    // 12 is inside the third chunk: the first two go, the third stays.
    assert_eq!(
        log.delete_records(p, DeleteBefore::Offset(Offset(12)))
            .await
            .unwrap(),
        Offset(12)
    );
    assert_eq!(checkpointed_start().await, Offset(12));
    // Out of range, and below the start (no change).
    assert!(matches!(
        log.delete_records(p, DeleteBefore::Offset(Offset(16)))
            .await,
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.delete_records(p, DeleteBefore::Offset(Offset(3)))
            .await
            .unwrap(),
        Offset(12)
    );
    // A stopped log answers at once; a restarted broker sees the same start.
    log.shutdown().await;
    assert!(matches!(
        log.delete_records(p, DeleteBefore::HighWatermark).await,
        Err(Error::ShuttingDown)
    ));
    let again = stores.broker(0).await;
    assert_eq!(
        again.partition_info(p).unwrap().log_start_offset,
        Offset(12)
    );
    assert_eq!(again.partition_info(p).unwrap().high_watermark, Offset(15));
}
