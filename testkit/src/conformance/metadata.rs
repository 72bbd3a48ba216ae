//! Conformance suite of the [`MetadataStore`] port (see its "Contract"): revisions
//! here; transactions and ranges in [`super::metadata_txn`]; leases, watches and
//! concurrency in [`super::metadata_live`].

use bytes::Bytes;
use kafscale_core::ports::{
    Compare, KeyValue, MetadataStore, MetadataStoreExt, Txn, TxnOp, TxnOutcome,
};
use std::sync::Arc;
use std::time::Duration;

use super::metadata_live::{
    concurrent_cas_increments_lose_no_update, keep_alive_extends_a_lease,
    keep_alive_of_expired_lease_fails, leases_expire_and_delete_their_keys,
    put_with_unknown_lease_fails, revoke_deletes_keys, watch_sees_changes_under_prefix_in_order,
};
use super::metadata_txn::{
    compare_on_mod_revision, compare_on_value, concurrent_creates_exactly_one_wins,
    delete_prefix_deletes_only_under_prefix, delete_range_deletes_from_start_to_end,
    failed_compare_applies_nothing, range_from_starts_at_its_key, range_is_sorted_with_revision,
    status_and_compact, too_many_operations_is_invalid_request, txn_applies_all_operations,
};
use super::{clauses, run_clauses, unique_prefix, Clause};

pub(crate) type Store = Arc<dyn MetadataStore>;

#[derive(Debug, Clone, Copy)]
pub struct MetadataSuiteOptions {
    /// TTL of the leases the suite grants. etcd rounds TTLs up to whole seconds and has a
    /// minimum (about 2 s with default settings).
    pub lease_ttl: Duration,
    /// Whether the suite is the only writer of the store. Only then can it check that a
    /// write advances the revision by exactly one (otherwise: strictly increases).
    pub exclusive: bool,
    /// Tasks and increments per task of the lost-update clause.
    pub cas_tasks: usize,
    pub cas_increments: usize,
}

impl Default for MetadataSuiteOptions {
    fn default() -> Self {
        MetadataSuiteOptions {
            lease_ttl: Duration::from_secs(2),
            exclusive: true,
            cas_tasks: 8,
            cas_increments: 25,
        }
    }
}

/// Runs every clause with default options (exclusive store, 1 s leases).
pub async fn metadata_suite(store: Store) {
    metadata_suite_with(store, MetadataSuiteOptions::default()).await;
}

pub async fn metadata_suite_with(store: Store, options: MetadataSuiteOptions) {
    let all: &[Clause<Store, MetadataSuiteOptions>] = clauses![
        revision_advances_by_one_per_write_txn,
        create_and_mod_revisions,
        compare_on_value,
        compare_on_mod_revision,
        failed_compare_applies_nothing,
        txn_applies_all_operations,
        delete_prefix_deletes_only_under_prefix,
        delete_range_deletes_from_start_to_end,
        range_is_sorted_with_revision,
        range_from_starts_at_its_key,
        status_and_compact,
        too_many_operations_is_invalid_request,
        concurrent_creates_exactly_one_wins,
        concurrent_cas_increments_lose_no_update,
        leases_expire_and_delete_their_keys,
        keep_alive_extends_a_lease,
        keep_alive_of_expired_lease_fails,
        revoke_deletes_keys,
        put_with_unknown_lease_fails,
        watch_sees_changes_under_prefix_in_order,
    ];
    run_clauses("metadata store", store, options, all).await;
}

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(crate) async fn put(store: &Store, key: &str, value: &str) -> TxnOutcome {
    let outcome = store.put(key, b(value)).await.expect("put");
    assert!(outcome.succeeded, "unconditional put must succeed");
    outcome
}

pub(crate) async fn get(store: &Store, key: &str) -> Option<KeyValue> {
    store.get(key).await.expect("get")
}

pub(crate) async fn revision(store: &Store, prefix: &str) -> i64 {
    store.range(prefix).await.expect("range").revision
}

/// `after` follows `before` by exactly one write (or, on a shared store, by at least one).
fn assert_next(options: &MetadataSuiteOptions, before: i64, after: i64, what: &str) {
    if options.exclusive {
        assert_eq!(
            after,
            before + 1,
            "{what}: revision must advance by exactly one"
        );
    } else {
        assert!(
            after > before,
            "{what}: revision must advance ({before} -> {after})"
        );
    }
}

/// Each write transaction advances the revision by one and stamps it as the mod revision of
/// what it wrote; a failed or writeless transaction does not advance it.
pub async fn revision_advances_by_one_per_write_txn(store: Store, options: MetadataSuiteOptions) {
    let p = unique_prefix("revision_advances_by_one_per_write_txn");
    let start = revision(&store, &p).await;
    let first = put(&store, &format!("{p}a"), "1").await;
    assert_next(&options, start, first.revision, "first put");
    let second = put(&store, &format!("{p}b"), "2").await;
    assert_next(&options, first.revision, second.revision, "second put");

    let multi = Txn::new()
        .then(TxnOp::Put {
            key: format!("{p}c"),
            value: b("3"),
            lease: None,
        })
        .then(TxnOp::Put {
            key: format!("{p}d"),
            value: b("4"),
            lease: None,
        })
        .then(TxnOp::Delete {
            key: format!("{p}a"),
        });
    let third = store.txn(multi).await.expect("txn");
    assert!(third.succeeded);
    assert_next(
        &options,
        second.revision,
        third.revision,
        "transaction of three operations",
    );
    for key in ["c", "d"] {
        let kv = get(&store, &format!("{p}{key}"))
            .await
            .expect("written key");
        assert_eq!(kv.mod_revision, third.revision, "mod revision of {key}");
    }
    let failed = Txn::new()
        .when(Compare::Value {
            key: format!("{p}b"),
            value: Some(b("not 2")),
        })
        .then(TxnOp::Put {
            key: format!("{p}e"),
            value: b("5"),
            lease: None,
        });
    let failed = store.txn(failed).await.expect("txn");
    assert!(!failed.succeeded);
    let nothing = store
        .txn(Txn::new().then(TxnOp::Delete {
            key: format!("{p}never"),
        }))
        .await
        .expect("txn");
    assert!(nothing.succeeded);
    let end = revision(&store, &p).await;
    assert!(
        end >= third.revision,
        "revision went backwards: {} -> {end}",
        third.revision
    );
    if options.exclusive {
        assert_eq!(
            failed.revision, third.revision,
            "a failed transaction writes nothing"
        );
        assert_eq!(
            nothing.revision, third.revision,
            "deleting an absent key writes nothing"
        );
        assert_eq!(end, third.revision, "range reports the current revision");
    }
}

/// create_revision is kept across updates and reset by delete + put; mod_revision follows.
pub async fn create_and_mod_revisions(store: Store, _: MetadataSuiteOptions) {
    let key = format!("{}key", unique_prefix("create_and_mod_revisions"));
    let created = put(&store, &key, "v1").await;
    let kv = get(&store, &key).await.expect("created key");
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (created.revision, created.revision)
    );
    assert_eq!(
        (kv.key.as_str(), kv.value.as_ref(), kv.lease),
        (key.as_str(), &b"v1"[..], None)
    );

    let updated = put(&store, &key, "v2").await;
    let kv = get(&store, &key).await.expect("updated key");
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (created.revision, updated.revision)
    );
    assert_eq!(kv.value, b("v2"));

    let deleted = store
        .txn(Txn::new().then(TxnOp::Delete { key: key.clone() }))
        .await;
    assert!(deleted.expect("delete").succeeded);
    assert_eq!(get(&store, &key).await, None);
    let recreated = put(&store, &key, "v3").await;
    let kv = get(&store, &key).await.expect("recreated key");
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (recreated.revision, recreated.revision)
    );
}

/// Sleeps on tokio's clock (the adapters' leases expire on it).
pub(crate) async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}
