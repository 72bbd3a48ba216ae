//! Conformance suite of the [`ObjectStore`] port (see its "Contract").

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kafscale_core::ports::{ObjectStore, PutMode, StoreError};
use std::sync::Arc;

use super::{clauses, run_clauses, unique_prefix, Clause};

type Store = Arc<dyn ObjectStore>;

#[derive(Debug, Clone, Copy)]
pub struct ObjectStoreSuiteOptions {
    /// Keys written for the "list returns everything" clause; above 1000 it crosses S3's
    /// page size.
    pub list_keys: usize,
    /// Concurrent puts while filling the store.
    pub concurrency: usize,
    /// Whether `list` reports the sizes written (false for a store that transforms what it
    /// writes, such as the encrypting one, whose listings give stored sizes).
    pub list_sizes_are_written_sizes: bool,
}

impl Default for ObjectStoreSuiteOptions {
    fn default() -> Self {
        ObjectStoreSuiteOptions {
            list_keys: 1100,
            concurrency: 32,
            list_sizes_are_written_sizes: true,
        }
    }
}

/// Runs every clause with default options.
pub async fn object_store_suite(store: Store) {
    object_store_suite_with(store, ObjectStoreSuiteOptions::default()).await;
}

pub async fn object_store_suite_with(store: Store, options: ObjectStoreSuiteOptions) {
    let all: &[Clause<Store, ObjectStoreSuiteOptions>] = clauses![
        create_if_absent_is_atomic,
        read_after_write,
        overwrite_replaces,
        get_range_is_exact,
        get_range_past_end_is_an_error,
        missing_key_is_not_found,
        list_is_sorted_and_complete,
        list_matches_string_prefix,
        delete_is_idempotent,
        empty_object,
    ];
    run_clauses("object store", store, options, all).await;
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{what}: expected NotFound, got {result:?}"
    );
}

/// 16 concurrent creates of one key: exactly one wins, the others get AlreadyExists, and the
/// winner's bytes are stored.
pub async fn create_if_absent_is_atomic(store: Store, _: ObjectStoreSuiteOptions) {
    let key = format!("{}race", unique_prefix("create_if_absent_is_atomic"));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move { (i, store.put(&key, data(64, i), PutMode::Create).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in futures::future::join_all(tasks).await {
        match task.expect("create task panicked") {
            (i, Ok(())) => winners.push(i),
            (_, Err(StoreError::AlreadyExists { .. })) => {}
            (i, Err(e)) => panic!("create {i}: expected Ok or AlreadyExists, got {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one create must win, winners: {winners:?}"
    );
    assert_eq!(store.get(&key).await.expect("get"), data(64, winners[0]));
    let again = store.put(&key, data(8, 99), PutMode::Create).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "create of an existing key: {again:?}"
    );
    assert_eq!(store.get(&key).await.expect("get"), data(64, winners[0]));
}

/// After a put, get, head and list see the object.
pub async fn read_after_write(store: Store, _: ObjectStoreSuiteOptions) {
    let prefix = unique_prefix("read_after_write");
    for (i, mode) in [PutMode::Create, PutMode::Overwrite]
        .into_iter()
        .enumerate()
    {
        let key = format!("{prefix}dir/object-{i}");
        let bytes = data(1000 + i, i as u8);
        store.put(&key, bytes.clone(), mode).await.expect("put");
        assert_eq!(store.get(&key).await.expect("get"), bytes, "get after put");
        let meta = store.head(&key).await.expect("head");
        assert_eq!(
            (meta.key.as_str(), meta.size),
            (key.as_str(), bytes.len() as u64)
        );
        let listed = store.list(&prefix).await.expect("list");
        assert!(
            listed.iter().any(|m| m.key == key),
            "list after put misses {key}"
        );
    }
}

/// An overwrite replaces the bytes and the size.
pub async fn overwrite_replaces(store: Store, _: ObjectStoreSuiteOptions) {
    let key = format!("{}object", unique_prefix("overwrite_replaces"));
    store
        .put(&key, data(500, 1), PutMode::Overwrite)
        .await
        .expect("put");
    store
        .put(&key, data(20, 2), PutMode::Overwrite)
        .await
        .expect("overwrite");
    assert_eq!(store.get(&key).await.expect("get"), data(20, 2));
    assert_eq!(store.head(&key).await.expect("head").size, 20);
}

/// Ranges return exactly the requested bytes.
pub async fn get_range_is_exact(store: Store, _: ObjectStoreSuiteOptions) {
    let key = format!("{}object", unique_prefix("get_range_is_exact"));
    let bytes = data(4096, 7);
    store
        .put(&key, bytes.clone(), PutMode::Create)
        .await
        .expect("put");
    for range in [
        0..1,
        10..20,
        0..4096,
        4095..4096,
        1000..3000,
        17..17,
        4096..4096,
    ] {
        let got = store.get_range(&key, range.clone()).await;
        let got = got.unwrap_or_else(|e| panic!("get_range {range:?}: {e:?}"));
        let want = bytes.slice(range.start as usize..range.end as usize);
        assert_eq!(got, want, "get_range {range:?}");
    }
}

/// A range reaching past the end is an error (the object exists: not NotFound), never a
/// short read.
pub async fn get_range_past_end_is_an_error(store: Store, _: ObjectStoreSuiteOptions) {
    let key = format!("{}object", unique_prefix("get_range_past_end_is_an_error"));
    store
        .put(&key, data(100, 3), PutMode::Create)
        .await
        .expect("put");
    for range in [90..101, 0..101, 99..200, 100..101, 200..300, 101..101] {
        let got = store.get_range(&key, range.clone()).await;
        match got {
            Err(StoreError::NotFound { .. }) => {
                panic!("get_range {range:?}: NotFound for an existing object")
            }
            Err(_) => {}
            Ok(bytes) => panic!(
                "get_range {range:?} past the end returned {} bytes",
                bytes.len()
            ),
        }
    }
}

/// get, get_range and head of an absent key fail with NotFound.
pub async fn missing_key_is_not_found(store: Store, _: ObjectStoreSuiteOptions) {
    let prefix = unique_prefix("missing_key_is_not_found");
    let key = format!("{prefix}absent");
    assert_not_found(store.get(&key).await, "get");
    assert_not_found(store.get_range(&key, 0..10).await, "get_range");
    assert_not_found(store.head(&key).await, "head");
    // Also when a sibling exists and when the key would be a "directory" of another.
    store
        .put(&format!("{prefix}dir/child"), data(3, 0), PutMode::Create)
        .await
        .expect("put");
    assert_not_found(store.get(&format!("{prefix}dir")).await, "get of a prefix");
    assert_not_found(
        store.head(&format!("{prefix}dir/other")).await,
        "head of a sibling",
    );
    assert!(
        store.list(&key).await.expect("list").is_empty(),
        "list of an absent prefix"
    );
}

/// `list` returns every key under the prefix with its size, sorted, and nothing else.
pub async fn list_is_sorted_and_complete(store: Store, options: ObjectStoreSuiteOptions) {
    let base = unique_prefix("list_is_sorted_and_complete");
    let prefix = format!("{base}in/");
    // Written in a scrambled order, some nested deeper.
    let mut keys: Vec<String> = (0..options.list_keys)
        .map(|i| {
            let i = (i * 7919) % options.list_keys;
            match i % 5 {
                0 => format!("{prefix}nested/{i:05}"),
                _ => format!("{prefix}{i:05}"),
            }
        })
        .collect();
    let outside = [
        format!("{base}out/1"),
        format!("{base}i"),
        format!("{base}inside"),
    ];
    let puts: Vec<String> = keys.iter().chain(outside.iter()).cloned().collect();
    futures::stream::iter(puts)
        .map(|key| {
            let store = Arc::clone(&store);
            async move {
                let size = key.len();
                store.put(&key, data(size, 1), PutMode::Create).await
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await
        .expect("fill the store");
    keys.sort();
    let listed = store.list(&prefix).await.expect("list");
    let listed_keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    let want: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(listed_keys.len(), want.len(), "number of listed keys");
    assert!(
        listed_keys == want,
        "list is not the sorted set of keys under the prefix"
    );
    for meta in listed
        .iter()
        .filter(|_| options.list_sizes_are_written_sizes)
    {
        assert_eq!(meta.size, meta.key.len() as u64, "size of {}", meta.key);
    }
}

/// Prefixes are plain string prefixes (as in S3 and etcd), not path segments.
pub async fn list_matches_string_prefix(store: Store, _: ObjectStoreSuiteOptions) {
    let base = unique_prefix("list_matches_string_prefix");
    for key in ["ab/1", "abc", "abd/2", "b", "a"] {
        let key = format!("{base}{key}");
        store
            .put(&key, data(1, 0), PutMode::Create)
            .await
            .expect("put");
    }
    let list = |prefix: String| {
        let store = Arc::clone(&store);
        let base = base.clone();
        async move {
            let listed = store.list(&prefix).await.expect("list");
            listed
                .into_iter()
                .map(|m| {
                    m.key
                        .strip_prefix(base.as_str())
                        .unwrap_or(&m.key)
                        .to_owned()
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(format!("{base}ab")).await, ["ab/1", "abc", "abd/2"]);
    assert_eq!(list(format!("{base}ab/")).await, ["ab/1"]);
    assert_eq!(
        list(format!("{base}a")).await,
        ["a", "ab/1", "abc", "abd/2"]
    );
    assert!(list(format!("{base}zz")).await.is_empty());
}

/// Deleting an absent key succeeds; a deleted key is gone everywhere and can be created again.
pub async fn delete_is_idempotent(store: Store, _: ObjectStoreSuiteOptions) {
    let prefix = unique_prefix("delete_is_idempotent");
    let key = format!("{prefix}object");
    store
        .delete(&key)
        .await
        .expect("delete of a key never written");
    store
        .put(&key, data(10, 1), PutMode::Create)
        .await
        .expect("put");
    store.delete(&key).await.expect("delete");
    assert_not_found(store.get(&key).await, "get after delete");
    assert_not_found(store.head(&key).await, "head after delete");
    assert!(
        store.list(&prefix).await.expect("list").is_empty(),
        "list after delete"
    );
    store.delete(&key).await.expect("second delete");
    store
        .put(&key, data(5, 2), PutMode::Create)
        .await
        .expect("create after delete");
    assert_eq!(store.get(&key).await.expect("get"), data(5, 2));
}

/// An empty object is an object: it exists, has size 0 and an empty range at 0.
pub async fn empty_object(store: Store, _: ObjectStoreSuiteOptions) {
    let key = format!("{}empty", unique_prefix("empty_object"));
    store
        .put(&key, Bytes::new(), PutMode::Create)
        .await
        .expect("put");
    assert!(store.get(&key).await.expect("get").is_empty());
    assert_eq!(store.head(&key).await.expect("head").size, 0);
    assert!(store
        .get_range(&key, 0..0)
        .await
        .expect("empty range")
        .is_empty());
    assert!(
        store.get_range(&key, 0..1).await.is_err(),
        "range past the end of an empty object"
    );
}
