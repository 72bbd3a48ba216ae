//! The partition log across restarts over embedded and memory stores: committed data kept,
//! epochs bumped, corrupt objects detected, stale keys removed, the old layout converted.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kafscale_adapters::{
    EmbeddedMetadataStore, LocalObjectStore, MemoryMetadataStore, MemoryObjectStore, SystemClock,
};
use kafscale_core::batch;
use kafscale_core::log::{LogConfig, ReadRequest};
use kafscale_core::ports::metadata::encode_json;
use kafscale_core::ports::{MetadataStore, ObjectStore};
use kafscale_core::schema::keys;
use kafscale_core::{Error, LeaderEpoch, Offset};

use support::*;

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

async fn checkpoint_keys(meta: &dyn MetadataStore) -> usize {
    meta.range(&keys::checkpoints_prefix())
        .await
        .unwrap()
        .kvs
        .len()
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
