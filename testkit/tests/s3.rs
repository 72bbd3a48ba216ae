//! The object store conformance suite and the log against a real S3-compatible server.
#![allow(clippy::unwrap_used)]

use kafscale_core::ports::{ObjectStore, PutMode, StoreError};
use kafscale_testkit::conformance::{object_store_suite_with, ObjectStoreSuiteOptions};
use kafscale_testkit::s3::test_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_object_store_conformance() {
    let Some(store) = test_store("conformance") else {
        return;
    };
    // Enough keys to cross ListObjectsV2's page size of 1000.
    let options = ObjectStoreSuiteOptions {
        list_keys: 1100,
        ..Default::default()
    };
    object_store_suite_with(store, options).await;
}

/// Encryption at rest on the real server: every clause through seal and open, ranged reads
/// included (the list clause's sizes are the stored ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_s3_object_store_conformance() {
    let Some(store) = test_store("conformance-encrypted") else {
        return;
    };
    let keys =
        kafscale_adapters::EncryptionKeys::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap();
    let store = std::sync::Arc::new(kafscale_adapters::EncryptedObjectStore::new(store, keys));
    let options = ObjectStoreSuiteOptions {
        list_keys: 200,
        list_sizes_are_written_sizes: false,
        ..Default::default()
    };
    object_store_suite_with(store, options).await;
}

#[tokio::test]
async fn s3_bad_credentials_are_a_clear_fatal_error() {
    let Some(_) = test_store("bad-credentials") else {
        return;
    };
    let settings = kafscale_adapters::S3Settings {
        secret_access_key: Some("not-the-secret".into()),
        ..Default::default()
    };
    let store =
        kafscale_adapters::S3ObjectStore::open("kafscale", "bad-credentials", settings).unwrap();
    let err = store
        .put("probe", bytes::Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fatal { .. }), "{err:?}");
}
