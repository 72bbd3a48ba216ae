//! Metadata backups: the file format refuses damage, a backup leaves keys under leases out,
//! a restore needs an empty store, and a cluster restored from a backup onto the same
//! bucket serves the records it had.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::MemoryMetadataStore;
use kafscale_core::backup::{Backup, BackupError};
use kafscale_core::cluster::backups::{backup_key, BACKUPS_PREFIX};
use kafscale_core::log::{AppendRequest, CreateTopic};
use kafscale_core::ports::{MetadataStore, Txn, TxnOp};
use kafscale_core::{batch, Offset, PartitionId, PartitionKey};
use kafscale_testkit::cluster::TestCluster;

mod support;
use support::read_all;

fn sample() -> Backup {
    Backup {
        revision: 42,
        created_ms: 1_700_000_000_000,
        leased_left_out: 1,
        entries: vec![
            (
                "kafscale/brokers/1".into(),
                Bytes::from_static(b"{\"id\":1}"),
            ),
            (
                "kafscale/groups/offsets/003/g/t/00000".into(),
                Bytes::from_static(b"7"),
            ),
            (
                "kafscale/topics/t".into(),
                Bytes::from(vec![0u8, 255, 10, 13]),
            ),
        ],
    }
}

#[test]
fn the_file_round_trips_and_refuses_damage() {
    let b = sample();
    let file = b.encode();
    assert_eq!(Backup::decode(&file).unwrap(), b);
    // Any flipped byte is caught by the magic or the checksum.
    for i in 0..file.len() {
        let mut bad = file.to_vec();
        bad[i] ^= 0x40;
        assert!(
            Backup::decode(&bad).is_err(),
            "byte {i} flipped went unnoticed"
        );
    }
    for len in 0..file.len() {
        assert!(Backup::decode(&file[..len]).is_err(), "truncated to {len}");
    }
}

#[test]
fn lying_lengths_under_a_valid_checksum_are_refused() {
    let mut forged = b"KAFSCALE-METADATA-BACKUP\n".to_vec();
    let header = br#"{"format_version":1,"revision":1,"created_ms":0,"keys":1}"#;
    forged.extend((header.len() as u32).to_be_bytes());
    forged.extend(header);
    forged.extend(u32::MAX.to_be_bytes()); // a key "of 4 GiB"
    forged.extend(b"k");
    let crc = crc32c::crc32c(&forged);
    forged.extend(crc.to_be_bytes());
    let err = Backup::decode(&forged).unwrap_err();
    assert!(matches!(err, BackupError::Corrupt(_)), "{err}");
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Backup::decode(&bytes);
    }
}

#[tokio::test]
async fn a_backup_leaves_leased_keys_out_and_a_restore_needs_an_empty_store() {
    let source = MemoryMetadataStore::new();
    let lease = source.grant_lease(Duration::from_secs(60)).await.unwrap();
    for (key, lease) in [
        ("kafscale/brokers/1", Some(lease)),
        ("kafscale/controller", Some(lease)),
        ("kafscale/topics/t", None),
        ("kafscale/groups/offsets/003/g/t/00000", None),
    ] {
        let put = Txn::new().then(TxnOp::Put {
            key: key.into(),
            value: Bytes::from_static(b"{}"),
            lease,
        });
        assert!(source.txn(put).await.unwrap().succeeded);
    }
    let b = Backup::take(&source, 5).await.unwrap();
    assert_eq!(b.leased_left_out, 2);
    let b = Backup::decode(&b.encode()).unwrap();

    let target = MemoryMetadataStore::new();
    let report = b.restore(&target).await.unwrap();
    assert_eq!((report.restored, report.leased_left_out), (2, 2));
    let back = target.range("kafscale/").await.unwrap();
    let keys: Vec<_> = back.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["kafscale/groups/offsets/003/g/t/00000", "kafscale/topics/t"]
    );
    assert!(back.kvs.iter().all(|kv| kv.lease.is_none()));
    let err = b.restore(&target).await.unwrap_err();
    assert!(matches!(err, BackupError::NotEmpty(2)), "{err}");
}

/// A topic of two partitions created on broker `id`, once its partitions are served.
async fn served_topic(
    c: &TestCluster,
    id: kafscale_core::BrokerId,
    name: &str,
) -> Vec<PartitionKey> {
    let topic = c
        .broker(id)
        .ctx
        .log
        .create_topic(CreateTopic {
            name: name.into(),
            partitions: 2,
            configs: BTreeMap::new(),
            validate_only: false,
        })
        .await
        .unwrap();
    let ps: Vec<_> = (0..2)
        .map(|i| PartitionKey {
            topic: topic.id,
            partition: PartitionId(i),
        })
        .collect();
    c.wait_for("partitions served", Duration::from_secs(60), |c| {
        c.leaders(&ps)
    })
    .await
    .unwrap();
    ps
}

#[tokio::test(start_paused = true)]
async fn a_cluster_restored_onto_its_bucket_serves_its_records() {
    let mut c = TestCluster::in_memory();
    let id = c.start_broker().await.unwrap();
    let ps = served_topic(&c, id, "kept").await;
    for p in &ps {
        for i in 0..3 {
            let value = format!("v{i}");
            let ticket = c.broker(id).ctx.log.append(AppendRequest {
                partition: *p,
                batch: batch::build(&[(None, Some(value.as_bytes()))], 1_000),
                wait: true,
            });
            ticket.unwrap().unwrap().await.unwrap().unwrap();
        }
    }
    c.stop_all().await;
    let backup = Backup::take(c.metadata.as_ref(), 0).await.unwrap();
    let file = backup.encode();

    let fresh: Arc<dyn MetadataStore> = Arc::new(MemoryMetadataStore::new());
    Backup::decode(&file)
        .unwrap()
        .restore(fresh.as_ref())
        .await
        .unwrap();
    let mut restored = TestCluster::on(c.object_store.clone(), fresh, c.clock.clone());
    let id = restored.start_broker().await.unwrap();
    let leaders = restored
        .wait_for("restored partitions served", Duration::from_secs(60), |c| {
            c.leaders(&ps)
        })
        .await
        .unwrap();
    for p in &ps {
        assert_eq!(leaders[p], id);
        // Every record reads back from the bucket at its offset.
        let log = &restored.broker(id).ctx.log;
        assert_eq!(log.partition_info(*p).unwrap().high_watermark, Offset(3));
        assert_eq!(read_all(log, *p).await, [(0, 0), (1, 1), (2, 2)], "{p}");
    }
    restored.stop_all().await;
}

/// Appends one batch of one record and waits for its commit; `producer` is (id, sequence).
async fn append(
    c: &TestCluster,
    id: kafscale_core::BrokerId,
    p: PartitionKey,
    value: &str,
    producer: Option<(i64, i32)>,
) -> Offset {
    let (pid, seq) = producer.unwrap_or((-1, -1));
    let epoch = if pid >= 0 { 0 } else { -1 };
    let ticket = c.broker(id).ctx.log.append(AppendRequest {
        partition: p,
        batch: batch::build_idempotent(&[(None, Some(value.as_bytes()))], 1_000, pid, epoch, seq),
        wait: true,
    });
    ticket.unwrap().unwrap().await.unwrap().unwrap().base_offset
}

#[tokio::test(start_paused = true)]
async fn records_written_after_the_backup_are_reattached_with_their_producers() {
    let mut c = TestCluster::in_memory();
    let a = c.start_broker().await.unwrap();
    let ps = served_topic(&c, a, "later").await;
    for p in &ps {
        for i in 0..3 {
            append(&c, a, *p, &format!("before {i}"), None).await;
        }
    }
    // The backup of the running cluster, then an idempotent producer on broker a, a
    // hand-over to broker b (a new leader epoch) and more records there.
    let backup = Backup::take(c.metadata.as_ref(), 0).await.unwrap();
    let pid = c.broker(a).ctx.log.allocate_producer_id().await.unwrap();
    for p in &ps {
        for seq in 0..3 {
            append(&c, a, *p, &format!("idempotent {seq}"), Some((pid, seq))).await;
        }
    }
    let b = c.start_broker().await.unwrap();
    c.stop(a).await;
    c.wait_for("partitions moved", Duration::from_secs(60), |c| {
        c.leaders(&ps).filter(|l| l.values().all(|id| *id == b))
    })
    .await
    .unwrap();
    for p in &ps {
        for i in 0..2 {
            append(&c, b, *p, &format!("after the hand-over {i}"), None).await;
        }
    }
    let last_epoch = c
        .broker(b)
        .ctx
        .log
        .partition_info(ps[0])
        .unwrap()
        .leader_epoch;
    c.stop_all().await;

    let fresh: Arc<dyn MetadataStore> = Arc::new(MemoryMetadataStore::new());
    let backup = Backup::decode(&backup.encode()).unwrap();
    backup.restore(fresh.as_ref()).await.unwrap();
    let recovery = backup
        .reattach(fresh.as_ref(), c.object_store.as_ref())
        .await
        .unwrap();
    assert_eq!(recovery.reattached.len(), 2, "{recovery:#?}");
    for r in &recovery.reattached {
        assert_eq!(
            (r.topic.as_str(), r.from, r.to),
            ("later", 3, 8),
            "{recovery:#?}"
        );
        // Broker b took over at 6: what broker a wrote before is proven committed.
        assert_eq!(r.confirmed_to, 6, "{recovery:#?}");
    }
    assert!(
        recovery.unknown.is_empty() && recovery.unreadable.is_empty(),
        "{recovery:#?}"
    );

    let mut restored = TestCluster::on(c.object_store.clone(), fresh, c.clock.clone());
    let id = restored.start_broker().await.unwrap();
    restored
        .wait_for("restored partitions served", Duration::from_secs(60), |c| {
            c.leaders(&ps)
        })
        .await
        .unwrap();
    let log = &restored.broker(id).ctx.log;
    for p in &ps {
        assert_eq!(log.partition_info(*p).unwrap().high_watermark, Offset(8));
        let offsets: Vec<i64> = read_all(log, *p).await.iter().map(|(b, _)| *b).collect();
        assert_eq!(offsets, (0..8).collect::<Vec<_>>(), "{p}");
        // A retry of the idempotent producer's last batch is its duplicate, not a new record.
        let again = append(&restored, id, *p, "idempotent 2", Some((pid, 2))).await;
        assert_eq!(again, Offset(5));
        assert_eq!(log.partition_info(*p).unwrap().high_watermark, Offset(8));
        // The restored leader's epoch is above the ones the attached batches carry.
        assert!(log.partition_info(*p).unwrap().leader_epoch > last_epoch);
    }
    // Producer ids handed out after the backup are not handed out again.
    assert!(log.allocate_producer_id().await.unwrap() > pid);
    restored.stop_all().await;
}

/// The backups under `_backups/metadata/`, oldest first, with the time they were taken.
async fn scheduled(c: &TestCluster) -> Vec<(i64, Backup)> {
    let mut out = Vec::new();
    for o in c.object_store.list(BACKUPS_PREFIX).await.unwrap() {
        let b = Backup::decode(&c.object_store.get(&o.key).await.unwrap()).unwrap();
        assert_eq!(o.key, backup_key(b.created_ms, b.revision));
        out.push((b.created_ms, b));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn backups_keep_their_interval_and_retention_and_go_on_when_the_controller_leaves() {
    let mut c = TestCluster::in_memory();
    c.set("metadata.backup.interval.ms", serde_json::json!(60_000))
        .set("metadata.backup.retention", serde_json::json!(3));
    let a = c.start_broker().await.unwrap();
    let b = c.start_broker().await.unwrap();
    c.clock.sleep(Duration::from_secs(600)).await;
    let kept = scheduled(&c).await;
    assert_eq!(kept.len(), 3, "retention");
    // The interval holds across brokers: whoever checks reads the newest backup's time.
    for pair in kept.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= 60_000,
            "{} then {}",
            pair[0].0,
            pair[1].0
        );
        assert!(pair[1].1.revision >= pair[0].1.revision);
    }
    // Two registrations and the controller key, left out.
    assert_eq!(kept[2].1.leased_left_out, 3);

    // The controller goes; the other broker takes the schedule over from the newest name.
    let controller = c.broker(a).ctx.cluster.controller().unwrap();
    let newest = kept[2].0;
    c.stop(controller).await;
    c.clock.sleep(Duration::from_secs(300)).await;
    let after = scheduled(&c).await;
    assert_eq!(after.len(), 3);
    assert!(
        after[2].0 >= newest + 240_000,
        "no backups after the controller left"
    );
    let survivor = if controller == a { b } else { a };
    assert!(c.broker(survivor).ctx.cluster.is_controller());
    c.stop_all().await;
}
