//! Clauses of the metadata suite about transactions: compares, atomicity, operations,
//! ranges and request limits.

use kafscale_core::ports::metadata::MAX_TXN_OPS;
use kafscale_core::ports::{Compare, MetadataError, MetadataStoreExt, Txn, TxnOp, TxnOutcome};
use std::sync::Arc;

use super::metadata::{b, get, put, revision, MetadataSuiteOptions, Store};
use super::unique_prefix;

async fn txn_succeeds(store: &Store, txn: Txn) -> bool {
    store.txn(txn).await.expect("txn").succeeded
}

fn put_op(key: &str, value: &str) -> TxnOp {
    TxnOp::Put {
        key: key.to_owned(),
        value: b(value),
        lease: None,
    }
}

/// `Compare::Value`: equal value holds, a different value fails, `None` means absent.
pub async fn compare_on_value(store: Store, _: MetadataSuiteOptions) {
    let key = format!("{}key", unique_prefix("compare_on_value"));
    let value_is = |value: Option<&str>| Compare::Value {
        key: key.clone(),
        value: value.map(b),
    };
    assert!(
        txn_succeeds(
            &store,
            Txn::new().when(value_is(None)).then(put_op(&key, "v1"))
        )
        .await
    );
    assert!(
        !txn_succeeds(
            &store,
            Txn::new().when(value_is(None)).then(put_op(&key, "x"))
        )
        .await
    );
    assert!(
        !txn_succeeds(
            &store,
            Txn::new()
                .when(value_is(Some("v2")))
                .then(put_op(&key, "x"))
        )
        .await
    );
    assert!(
        txn_succeeds(
            &store,
            Txn::new()
                .when(value_is(Some("v1")))
                .then(put_op(&key, "v2"))
        )
        .await
    );
    assert!(
        !txn_succeeds(
            &store,
            Txn::new()
                .when(value_is(Some("v1")))
                .then(put_op(&key, "x"))
        )
        .await
    );
    assert_eq!(get(&store, &key).await.expect("key").value, b("v2"));
    // The empty value is a value, not absence.
    assert!(txn_succeeds(&store, Txn::new().then(put_op(&key, ""))).await);
    assert!(
        !txn_succeeds(
            &store,
            Txn::new().when(value_is(None)).then(put_op(&key, "x"))
        )
        .await
    );
    assert!(
        txn_succeeds(
            &store,
            Txn::new().when(value_is(Some(""))).then(put_op(&key, "v3"))
        )
        .await
    );
}

/// `Compare::ModRevision`: the current mod revision holds, a stale one fails, 0 means absent.
pub async fn compare_on_mod_revision(store: Store, _: MetadataSuiteOptions) {
    let key = format!("{}key", unique_prefix("compare_on_mod_revision"));
    let rev_is = |revision: i64| Compare::ModRevision {
        key: key.clone(),
        revision,
    };
    assert!(txn_succeeds(&store, Txn::new().when(rev_is(0)).then(put_op(&key, "v1"))).await);
    let first = get(&store, &key).await.expect("key").mod_revision;
    assert!(!txn_succeeds(&store, Txn::new().when(rev_is(0)).then(put_op(&key, "x"))).await);
    assert!(
        txn_succeeds(
            &store,
            Txn::new().when(rev_is(first)).then(put_op(&key, "v2"))
        )
        .await
    );
    assert!(
        !txn_succeeds(
            &store,
            Txn::new().when(rev_is(first)).then(put_op(&key, "x"))
        )
        .await
    );
    let second = get(&store, &key).await.expect("key").mod_revision;
    // The provided helper is the same compare.
    assert!(
        !store
            .compare_and_swap(&key, first, b("x"))
            .await
            .expect("cas")
            .succeeded
    );
    assert!(
        store
            .compare_and_swap(&key, second, b("v3"))
            .await
            .expect("cas")
            .succeeded
    );
    assert_eq!(get(&store, &key).await.expect("key").value, b("v3"));
}

/// One failing compare among several: no operation applies and the revision stays.
pub async fn failed_compare_applies_nothing(store: Store, options: MetadataSuiteOptions) {
    let p = unique_prefix("failed_compare_applies_nothing");
    let (k1, k2, k3) = (format!("{p}1"), format!("{p}2"), format!("{p}3"));
    let k4 = format!("{p}x/4");
    put(&store, &k4, "v4").await;
    put(&store, &k1, "v1").await;
    let written = put(&store, &k2, "v2").await;
    let txn = Txn::new()
        .when(Compare::Value {
            key: k1.clone(),
            value: Some(b("v1")),
        })
        .when(Compare::ModRevision {
            key: k2.clone(),
            revision: written.revision + 1000,
        })
        .then(put_op(&k1, "changed"))
        .then(TxnOp::Delete { key: k2.clone() })
        .then(put_op(&k3, "new"))
        .then(TxnOp::DeletePrefix {
            prefix: format!("{p}x/"),
        });
    let outcome = store.txn(txn).await.expect("txn");
    assert!(
        !outcome.succeeded,
        "a failing compare must fail the transaction"
    );
    assert_eq!(get(&store, &k1).await.expect("k1").value, b("v1"));
    assert_eq!(
        get(&store, &k2).await.expect("k2").mod_revision,
        written.revision
    );
    assert_eq!(get(&store, &k3).await, None);
    assert!(
        get(&store, &k4).await.is_some(),
        "DeletePrefix of a failed txn applied"
    );
    if options.exclusive {
        assert_eq!(outcome.revision, written.revision);
        assert_eq!(revision(&store, &p).await, written.revision);
    }
}

/// A successful transaction applies all its operations at one revision.
pub async fn txn_applies_all_operations(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("txn_applies_all_operations");
    put(&store, &format!("{p}old"), "x").await;
    put(&store, &format!("{p}gone/1"), "x").await;
    put(&store, &format!("{p}gone/2"), "x").await;
    let txn = Txn::new()
        .when(Compare::ModRevision {
            key: format!("{p}new1"),
            revision: 0,
        })
        .then(put_op(&format!("{p}new1"), "1"))
        .then(put_op(&format!("{p}new2"), "2"))
        .then(TxnOp::Delete {
            key: format!("{p}old"),
        })
        .then(TxnOp::DeletePrefix {
            prefix: format!("{p}gone/"),
        });
    let outcome = store.txn(txn).await.expect("txn");
    assert!(outcome.succeeded);
    let range = store.range(&p).await.expect("range");
    let keys: Vec<&str> = range.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, [format!("{p}new1"), format!("{p}new2")]);
    assert!(range
        .kvs
        .iter()
        .all(|kv| kv.mod_revision == outcome.revision));
}

/// DeletePrefix deletes every key under the prefix and nothing else.
pub async fn delete_prefix_deletes_only_under_prefix(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("delete_prefix_deletes_only_under_prefix");
    for key in ["d/1", "d/2", "d/x/3", "d", "dd/1", "e/1"] {
        put(&store, &format!("{p}{key}"), key).await;
    }
    let txn = Txn::new().then(TxnOp::DeletePrefix {
        prefix: format!("{p}d/"),
    });
    assert!(txn_succeeds(&store, txn).await);
    let range = store.range(&p).await.expect("range");
    let keys: Vec<&str> = range.kvs.iter().map(|kv| &kv.key[p.len()..]).collect();
    assert_eq!(keys, ["d", "dd/1", "e/1"]);
}

/// DeleteRange deletes the keys from its start (included) to its end (excluded).
pub async fn delete_range_deletes_from_start_to_end(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("delete_range_deletes_from_start_to_end");
    for key in ["a", "r/01", "r/02", "r/03", "r/04", "r/10", "s"] {
        put(&store, &format!("{p}{key}"), key).await;
    }
    let txn = Txn::new().then(TxnOp::DeleteRange {
        start: format!("{p}r/02"),
        end: format!("{p}r/04"),
    });
    assert!(txn_succeeds(&store, txn).await);
    let range = store.range(&p).await.expect("range");
    let keys: Vec<&str> = range.kvs.iter().map(|kv| &kv.key[p.len()..]).collect();
    assert_eq!(keys, ["a", "r/01", "r/04", "r/10", "s"]);
    // An empty or inverted range deletes nothing.
    let txn = Txn::new().then(TxnOp::DeleteRange {
        start: format!("{p}r/10"),
        end: format!("{p}r/01"),
    });
    assert!(txn_succeeds(&store, txn).await);
    assert_eq!(store.range(&p).await.expect("range").kvs.len(), 5);
}

/// `range_from` is `range` without the keys that sort before its start; a start before the
/// prefix reads the whole prefix.
pub async fn range_from_starts_at_its_key(store: Store, _: MetadataSuiteOptions) {
    let base = unique_prefix("range_from_starts_at_its_key");
    let p = format!("{base}in/");
    for key in ["001", "002", "010", "011", "100"] {
        put(&store, &format!("{p}{key}"), key).await;
    }
    put(&store, &format!("{base}inz"), "outside").await;
    let keys = |r: kafscale_core::ports::RangeResult| -> Vec<String> {
        r.kvs
            .iter()
            .map(|kv| kv.key[p.len()..].to_owned())
            .collect()
    };
    let from = store
        .range_from(&p, &format!("{p}010"))
        .await
        .expect("range");
    assert!(from.revision > 0);
    assert_eq!(keys(from), ["010", "011", "100"]);
    let from = store
        .range_from(&p, &format!("{p}0105"))
        .await
        .expect("range");
    assert_eq!(keys(from), ["011", "100"]);
    let all = store.range_from(&p, &base).await.expect("range");
    assert_eq!(keys(all), ["001", "002", "010", "011", "100"]);
    let none = store.range_from(&p, &format!("{p}2")).await.expect("range");
    assert!(none.kvs.is_empty());
}

/// `status` reports at least the current revision and the keys written; `compact` to a
/// past revision keeps every current value.
pub async fn status_and_compact(store: Store, options: MetadataSuiteOptions) {
    let p = unique_prefix("status_and_compact");
    let mut last = 0;
    for i in 0..5 {
        last = put(&store, &format!("{p}k"), &format!("v{i}"))
            .await
            .revision;
    }
    put(&store, &format!("{p}other"), "x").await;
    let status = store.status().await.expect("status");
    assert!(
        status.revision > last,
        "status revision {} <= {last}",
        status.revision
    );
    assert!(status.keys >= 2, "status counts {} keys", status.keys);
    assert!(status.db_size_bytes > 0 || !options.exclusive || status.keys > 0);
    assert!(
        status.alarms.is_empty(),
        "alarms raised: {:?}",
        status.alarms
    );
    store.compact(last).await.expect("compact");
    // Compacting again, or below an earlier compaction, is not an error.
    store.compact(last - 1).await.expect("compact again");
    assert_eq!(
        get(&store, &format!("{p}k")).await.expect("key").value,
        b("v4")
    );
    assert_eq!(
        get(&store, &format!("{p}other")).await.expect("key").value,
        b("x")
    );
}

/// `range` returns every key under the prefix, in byte order, with the store revision.
pub async fn range_is_sorted_with_revision(store: Store, options: MetadataSuiteOptions) {
    let base = unique_prefix("range_is_sorted_with_revision");
    let p = format!("{base}in/");
    let mut want = Vec::new();
    let mut last = TxnOutcome {
        succeeded: true,
        revision: 0,
    };
    for i in 0..60 {
        // Scrambled order, mixed lengths and a non-ASCII key to check byte order.
        let suffix = match (i * 37) % 60 {
            7 => "é".to_owned(),
            n if n % 3 == 0 => format!("{n}/sub"),
            n => format!("{n}"),
        };
        let key = format!("{p}{suffix}");
        last = put(&store, &key, &suffix).await;
        want.push(key);
    }
    put(&store, &format!("{base}in"), "outside").await;
    put(&store, &format!("{base}inside"), "outside").await;
    let range = store.range(&p).await.expect("range");
    want.sort();
    let keys: Vec<&String> = range.kvs.iter().map(|kv| &kv.key).collect();
    assert_eq!(
        keys,
        want.iter().collect::<Vec<_>>(),
        "keys in byte order, only under the prefix"
    );
    for kv in &range.kvs {
        assert_eq!(kv.value, b(&kv.key[p.len()..]), "value of {}", kv.key);
        assert!(kv.mod_revision <= range.revision);
    }
    assert!(
        range.revision > last.revision,
        "range revision older than the last write"
    );
    if options.exclusive {
        assert_eq!(range.revision, last.revision + 2);
    }
    assert!(store
        .range(&format!("{base}none/"))
        .await
        .expect("range")
        .kvs
        .is_empty());
    assert_eq!(get(&store, &format!("{base}absent")).await, None);
}

/// More than MAX_TXN_OPS operations is refused (as etcd does) and applies nothing.
pub async fn too_many_operations_is_invalid_request(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("too_many_operations_is_invalid_request");
    let txn_of = |n: usize, tag: &str| {
        (0..n).fold(Txn::new(), |txn, i| {
            txn.then(put_op(&format!("{p}{tag}/{i:03}"), "x"))
        })
    };
    assert!(
        txn_succeeds(&store, txn_of(MAX_TXN_OPS, "max")).await,
        "MAX_TXN_OPS operations"
    );
    let refused = store.txn(txn_of(MAX_TXN_OPS + 1, "over")).await;
    assert!(
        matches!(refused, Err(MetadataError::InvalidRequest { .. })),
        "{} operations: {refused:?}",
        MAX_TXN_OPS + 1
    );
    assert!(store
        .range(&format!("{p}over/"))
        .await
        .expect("range")
        .kvs
        .is_empty());
}

/// 16 concurrent create-if-absent transactions on one key: exactly one succeeds.
pub async fn concurrent_creates_exactly_one_wins(store: Store, _: MetadataSuiteOptions) {
    let key = format!(
        "{}key",
        unique_prefix("concurrent_creates_exactly_one_wins")
    );
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                let txn = Txn::new()
                    .when(Compare::ModRevision {
                        key: key.clone(),
                        revision: 0,
                    })
                    .then(put_op(&key, &format!("{i}")));
                (i, store.txn(txn).await.expect("txn").succeeded)
            })
        })
        .collect();
    let winners: Vec<i32> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.expect("task panicked"))
        .filter_map(|(i, won)| won.then_some(i))
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        get(&store, &key).await.expect("key").value,
        b(&winners[0].to_string())
    );
}
