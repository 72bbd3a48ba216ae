//! The metadata conformance suite against a real etcd, and the log on etcd.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kafscale_testkit::conformance::{metadata_suite_with, MetadataSuiteOptions};
use kafscale_testkit::etcd::test_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_metadata_store_conformance() {
    let Some(store) = test_store("conformance").await else {
        return;
    };
    // The etcd may be shared with other tests: revisions only strictly increase; etcd's
    // minimum lease TTL is about 2 s.
    let options = MetadataSuiteOptions {
        lease_ttl: Duration::from_secs(2),
        exclusive: false,
        ..Default::default()
    };
    metadata_suite_with(store, options).await;
}

#[tokio::test]
async fn unreachable_etcd_is_an_error_not_a_hang() {
    let started = std::time::Instant::now();
    let err = kafscale_adapters::connect_metadata_store("etcd://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn the_log_commits_and_reloads_on_etcd() {
    use kafscale_adapters::{MemoryObjectStore, SystemClock};
    use kafscale_core::batch;
    use kafscale_core::log::{AppendRequest, CreateTopic, LogConfig, LogService};
    use kafscale_core::{Offset, PartitionId, PartitionKey};
    let Some(meta) = test_store("log").await else {
        return;
    };
    let store = Arc::new(MemoryObjectStore::new());
    let open = || {
        LogService::open(
            LogConfig::default(),
            store.clone(),
            meta.clone(),
            Arc::new(SystemClock::new()),
        )
    };
    let log = open().await.unwrap();
    let name = format!("etcd-{}", uuid::Uuid::new_v4().simple());
    let t = log
        .create_topic(CreateTopic {
            name: name.clone(),
            partitions: 3,
            configs: Default::default(),
            validate_only: false,
        })
        .await
        .unwrap();
    let p = PartitionKey {
        topic: t.id,
        partition: PartitionId(1),
    };
    for expected in [0, 2, 4] {
        let b = batch::build(
            &[(None, Some(b"a".as_slice())), (None, Some(b"b".as_slice()))],
            0,
        );
        let ticket = log
            .append(AppendRequest {
                partition: p,
                batch: b,
                wait: true,
            })
            .unwrap()
            .unwrap();
        assert_eq!(ticket.await.unwrap().unwrap().base_offset, Offset(expected));
    }
    log.shutdown().await;
    let log = open().await.unwrap();
    assert_eq!(log.partition_info(p).unwrap().high_watermark, Offset(6));
    log.delete_topic(&name).await.unwrap();
    log.shutdown().await;
}
