//! The object store conformance suite against every local adapter, and the adapters' own
//! promises: durability across instances, the URL factory and the retrying wrapper.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafscale_adapters::{
    object_store_from_url, EncryptedObjectStore, EncryptionKeys, LocalObjectStore,
    MemoryObjectStore, RetryPolicy, RetryingObjectStore,
};
use kafscale_core::ports::{Clock, ManualClock, ObjectStore, PutMode, StoreError};
use kafscale_testkit::conformance::{
    object_store_suite, object_store_suite_with, ObjectStoreSuiteOptions,
};
use kafscale_testkit::faults::FaultyObjectStore;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_object_store_conforms() {
    object_store_suite(Arc::new(MemoryObjectStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_object_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    object_store_suite(Arc::new(LocalObjectStore::open(dir.path()).unwrap())).await;
}

/// The encrypting wrapper around a local directory: every clause, through seal and open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_object_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let keys = EncryptionKeys::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let inner = Arc::new(LocalObjectStore::open(dir.path()).unwrap());
    let options = ObjectStoreSuiteOptions {
        list_sizes_are_written_sizes: false,
        ..ObjectStoreSuiteOptions::default()
    };
    object_store_suite_with(Arc::new(EncryptedObjectStore::new(inner, keys)), options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_objects_survive_a_new_adapter_instance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    {
        let store = object_store_from_url(&url).unwrap();
        store
            .put("flush/1/a", Bytes::from_static(b"first"), PutMode::Create)
            .await
            .unwrap();
        store
            .put("flush/2", Bytes::from_static(b"second"), PutMode::Create)
            .await
            .unwrap();
        store
            .put("gone", Bytes::from_static(b"x"), PutMode::Create)
            .await
            .unwrap();
        store.delete("gone").await.unwrap();
    }
    let store = object_store_from_url(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(
        store.get("flush/1/a").await.unwrap(),
        Bytes::from_static(b"first")
    );
    assert_eq!(
        store.get_range("flush/2", 1..4).await.unwrap(),
        Bytes::from_static(b"eco")
    );
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["flush/1/a", "flush/2"]);
    let again = store
        .put("flush/2", Bytes::from_static(b"x"), PutMode::Create)
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn local_store_creates_its_directory_and_lists_no_probe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/data");
    let store = object_store_from_url(&format!("file://{}", root.display())).unwrap();
    assert!(root.is_dir());
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "probe file left behind"
    );
}

#[tokio::test]
async fn object_keys_that_would_not_round_trip_are_refused() {
    let store = MemoryObjectStore::new();
    for key in ["", "/lead", "trail/", "a//b", "a/./b", "a/../b"] {
        let result = store.put(key, Bytes::new(), PutMode::Overwrite).await;
        assert!(
            matches!(result, Err(StoreError::Fatal { .. })),
            "{key:?}: {result:?}"
        );
    }
}

fn fatal_message(result: Result<Arc<dyn ObjectStore>, StoreError>) -> String {
    match result {
        Err(StoreError::Fatal { message }) => message,
        Err(other) => panic!("expected a fatal error, got {other:?}"),
        Ok(store) => panic!("expected an error, got {store:?}"),
    }
}

#[test]
fn object_store_url_errors_are_clear() {
    assert!(object_store_from_url("memory://").is_ok());
    assert!(object_store_from_url("s3://bucket/prefix").is_ok());
    let s3 = fatal_message(object_store_from_url("s3://"));
    assert!(s3.contains("no bucket"), "{s3}");
    let unknown = fatal_message(object_store_from_url("ftp://host/x"));
    assert!(unknown.contains("unknown scheme"), "{unknown}");
    let relative = fatal_message(object_store_from_url("file://relative/dir"));
    assert!(relative.contains("absolute"), "{relative}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = fatal_message(object_store_from_url(file.join("data").to_str().unwrap()));
    assert!(
        under_file.contains("cannot create object store directory"),
        "{under_file}"
    );
    let is_file = fatal_message(object_store_from_url(file.to_str().unwrap()));
    assert!(is_file.contains("not a directory"), "{is_file}");
}

#[cfg(unix)]
#[test]
fn read_only_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions; nothing to check then.
    let writable = std::fs::write(ro.join("check"), b"x").is_ok();
    if !writable {
        let message = fatal_message(object_store_from_url(ro.to_str().unwrap()));
        assert!(message.contains("not writable"), "{message}");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A retrying store with the default policy over a faulty memory store, waiting on `clock`.
fn retrying(clock: &ManualClock) -> (Arc<FaultyObjectStore>, RetryingObjectStore) {
    let faulty = FaultyObjectStore::new(Arc::new(MemoryObjectStore::new()));
    let store = RetryingObjectStore::new(faulty.clone(), RetryPolicy::default())
        .with_clock(Arc::new(clock.clone()));
    (faulty, store)
}

const CLOCK_LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn retrying_store_waits_the_backoff_on_its_clock() {
    let clock = ManualClock::new(0);
    let (faulty, store) = retrying(&clock);
    faulty.fail_next_puts(2);
    let put = store.put("k", Bytes::from_static(b"x"), PutMode::Overwrite);
    let put = clock.run(CLOCK_LIMIT, put).await.unwrap();
    assert!(put.is_ok(), "{put:?}");
    assert_eq!(faulty.puts.load(Ordering::SeqCst), 1);
    assert_eq!(
        clock.now_ms(),
        50 + 100,
        "the default backoff doubles from 50 ms"
    );
}

#[tokio::test]
async fn retrying_store_returns_the_last_error_after_its_attempts() {
    let clock = ManualClock::new(0);
    let (faulty, store) = retrying(&clock);
    faulty.fail_after(Some(0));
    let listed = clock.run(CLOCK_LIMIT, store.list("")).await.unwrap();
    assert!(matches!(listed, Err(StoreError::Transient { .. })));
    // Three attempts: two waits, and no third.
    assert_eq!(clock.now_ms(), 50 + 100);
}

#[tokio::test]
async fn retrying_store_attempts_a_create_once() {
    let clock = ManualClock::new(0);
    let (faulty, store) = retrying(&clock);
    faulty.fail_next_puts(2);
    let put = store.put("k", Bytes::new(), PutMode::Create).await;
    assert!(matches!(put, Err(StoreError::Transient { .. })));
    assert_eq!(
        faulty.fail_puts.load(Ordering::SeqCst),
        1,
        "one attempt only"
    );
    assert_eq!(clock.now_ms(), 0);
}
