//! The metadata conformance suite against the memory and embedded stores, and the embedded
//! store's own promises: durability and revisions across reopen, exclusive access.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures::StreamExt;
use kafscale_adapters::{metadata_store_from_url, EmbeddedMetadataStore, MemoryMetadataStore};
use kafscale_core::ports::{MetadataError, MetadataStore, MetadataStoreExt, Txn, TxnOp};
use kafscale_testkit::conformance::metadata_suite;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_metadata_store_conforms() {
    metadata_suite(Arc::new(MemoryMetadataStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_metadata_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    metadata_suite(Arc::new(EmbeddedMetadataStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_reopen_with_its_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().display());
    let (before, revision) = {
        let store = metadata_store_from_url(&url).unwrap();
        store
            .put("topics/a", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store
            .put("topics/a", Bytes::from_static(b"2"))
            .await
            .unwrap();
        store
            .put("topics/b", Bytes::from_static(b"3"))
            .await
            .unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let leased = Txn::new().then(TxnOp::Put {
            key: "brokers/1".to_owned(),
            value: Bytes::from_static(b"alive"),
            lease: Some(lease),
        });
        let outcome = store.txn(leased).await.unwrap();
        (store.range("topics/").await.unwrap().kvs, outcome.revision)
    };
    let store = metadata_store_from_url(dir.path().to_str().unwrap()).unwrap();
    let after = store.range("").await.unwrap();
    // Leased keys belonged to the previous process; their deletion is one more revision.
    assert_eq!(after.kvs, before, "data, create and mod revisions survive");
    assert_eq!(after.revision, revision + 1);
    assert_eq!(store.get("brokers/1").await.unwrap(), None);
    let next = store
        .put("topics/c", Bytes::from_static(b"4"))
        .await
        .unwrap();
    assert_eq!(
        next.revision,
        revision + 2,
        "revisions continue across restarts"
    );
    drop(store);
    // A reopen without leased keys leaves the revision alone.
    let store = EmbeddedMetadataStore::open(dir.path()).unwrap();
    assert_eq!(store.range("").await.unwrap().revision, revision + 2);
}

#[test]
fn second_open_of_embedded_store_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedMetadataStore::open(dir.path()).unwrap();
    match EmbeddedMetadataStore::open(dir.path()) {
        Err(MetadataError::Fatal { message }) => {
            assert!(message.contains("already open"), "{message}")
        }
        other => panic!("second open: {other:?}"),
    }
}

const CHILD_DIR_ENV: &str = "KAFSCALE_TEST_OPEN_METADATA_DIR";

/// Run by `embedded_store_is_locked_against_other_processes` in a child process.
#[test]
fn child_process_opens_embedded_store() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    match EmbeddedMetadataStore::open(&dir) {
        Err(MetadataError::Fatal { message }) => {
            assert!(message.contains("already open"), "{message}")
        }
        other => panic!("open from a second process: {other:?}"),
    }
}

#[test]
fn embedded_store_is_locked_against_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let _store = EmbeddedMetadataStore::open(dir.path()).unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_opens_embedded_store",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child process could open a store already open:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

fn fatal_message(result: Result<Arc<dyn MetadataStore>, MetadataError>) -> String {
    match result {
        Err(MetadataError::Fatal { message }) => message,
        Err(other) => panic!("expected a fatal error, got {other:?}"),
        Ok(store) => panic!("expected an error, got {store:?}"),
    }
}

#[test]
fn metadata_store_url_errors_are_clear() {
    assert!(metadata_store_from_url("memory://").is_ok());
    let etcd = fatal_message(metadata_store_from_url("etcd://host:2379"));
    // etcd needs an async connect: the sync factory points at the async one.
    assert!(etcd.contains("connect_metadata_store"), "{etcd}");
    let unknown = fatal_message(metadata_store_from_url("file:///tmp/x"));
    assert!(unknown.contains("unknown scheme"), "{unknown}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = fatal_message(metadata_store_from_url(file.join("meta").to_str().unwrap()));
    assert!(
        under_file.contains("cannot create metadata directory"),
        "{under_file}"
    );
}

#[tokio::test]
async fn slow_watcher_is_cancelled_with_an_error() {
    let store = MemoryMetadataStore::new();
    let mut watch = store.watch("k/").await.unwrap();
    for i in 0..20_000 {
        store.put(&format!("k/{i}"), Bytes::new()).await.unwrap();
    }
    let mut delivered = 0;
    loop {
        match watch.next().await {
            Some(Ok(_)) => delivered += 1,
            Some(Err(e)) => {
                assert!(e.is_retriable(), "{e:?}");
                break;
            }
            None => panic!("watch ended without an error after {delivered} events"),
        }
    }
    assert!(delivered > 0 && delivered < 20_000);
    assert!(
        watch.next().await.is_none(),
        "the stream ends after its error"
    );
}
