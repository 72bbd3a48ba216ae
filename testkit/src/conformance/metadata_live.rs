//! Clauses of the metadata suite that involve time or concurrency: leases, watches and
//! concurrent compare-and-swap.

use futures::StreamExt;
use kafscale_core::ports::{
    LeaseId, MetadataError, MetadataStoreExt, Txn, TxnOp, WatchEvent, WatchEventKind, WatchStream,
};
use std::sync::Arc;
use std::time::Duration;

use super::metadata::{b, get, put, sleep, MetadataSuiteOptions, Store};
use super::unique_prefix;

/// How long a watch event or an expiry may take to show up.
const PATIENCE: Duration = Duration::from_secs(10);

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e:?}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

async fn put_leased(store: &Store, key: &str, lease: LeaseId) {
    let txn = Txn::new().then(TxnOp::Put {
        key: key.to_owned(),
        value: b("leased"),
        lease: Some(lease),
    });
    assert!(store.txn(txn).await.expect("put with lease").succeeded);
}

/// Polls until `key` is gone; panics if it is still there after the lease TTL plus patience.
async fn wait_until_deleted(store: &Store, key: &str, ttl: Duration) {
    let deadline = tokio::time::Instant::now() + ttl + PATIENCE;
    while get(store, key).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} outlived its lease"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

fn assert_lease_not_found(result: Result<(), MetadataError>, what: &str) {
    assert!(
        matches!(result, Err(MetadataError::LeaseNotFound(_))),
        "{what}: {result:?}"
    );
}

/// A lease not kept alive expires: its keys are deleted (watchers see the deletes), other
/// keys stay, and keep-alive then fails with LeaseNotFound.
pub async fn leases_expire_and_delete_their_keys(store: Store, options: MetadataSuiteOptions) {
    let p = unique_prefix("leases_expire_and_delete_their_keys");
    let lease = store.grant_lease(options.lease_ttl).await.expect("grant");
    let (leased, plain) = (format!("{p}leased"), format!("{p}plain"));
    put_leased(&store, &leased, lease).await;
    put(&store, &plain, "stays").await;
    assert_eq!(
        get(&store, &leased).await.expect("leased key").lease,
        Some(lease)
    );
    let mut watch = store.watch(&p).await.expect("watch");
    wait_until_deleted(&store, &leased, options.lease_ttl).await;
    let event = next_event(&mut watch).await;
    assert_eq!(
        (event.kind, event.kv.key.as_str()),
        (WatchEventKind::Delete, leased.as_str())
    );
    assert!(
        get(&store, &plain).await.is_some(),
        "a key without lease was deleted"
    );
    assert_lease_not_found(
        store.keep_alive(lease).await,
        "keep-alive of an expired lease",
    );
}

/// Keep-alives within the TTL keep a lease and its keys well past the TTL.
pub async fn keep_alive_extends_a_lease(store: Store, options: MetadataSuiteOptions) {
    let key = format!("{}leased", unique_prefix("keep_alive_extends_a_lease"));
    let lease = store.grant_lease(options.lease_ttl).await.expect("grant");
    put_leased(&store, &key, lease).await;
    let step = options.lease_ttl / 4;
    for _ in 0..10 {
        sleep(step).await;
        store
            .keep_alive(lease)
            .await
            .expect("keep-alive of a live lease");
    }
    assert!(
        get(&store, &key).await.is_some(),
        "key of a kept-alive lease was deleted"
    );
    store.revoke_lease(lease).await.expect("revoke");
}

/// Keep-alive after the TTL has passed fails with LeaseNotFound.
pub async fn keep_alive_of_expired_lease_fails(store: Store, options: MetadataSuiteOptions) {
    let lease = store.grant_lease(options.lease_ttl).await.expect("grant");
    sleep(options.lease_ttl + (options.lease_ttl / 2).max(Duration::from_millis(500))).await;
    assert_lease_not_found(store.keep_alive(lease).await, "keep-alive after the ttl");
}

/// Revoking deletes the lease's keys at once (watchers see it); the lease is then gone.
pub async fn revoke_deletes_keys(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("revoke_deletes_keys");
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("grant");
    let keys = [format!("{p}a"), format!("{p}b")];
    for key in &keys {
        put_leased(&store, key, lease).await;
    }
    let mut watch = store.watch(&p).await.expect("watch");
    store.revoke_lease(lease).await.expect("revoke");
    for key in &keys {
        assert_eq!(get(&store, key).await, None, "{key} survived the revoke");
    }
    let mut deleted = [next_event(&mut watch).await, next_event(&mut watch).await];
    deleted.sort_by(|x, y| x.kv.key.cmp(&y.kv.key));
    for (event, key) in deleted.iter().zip(&keys) {
        assert_eq!((event.kind, &event.kv.key), (WatchEventKind::Delete, key));
    }
    assert_lease_not_found(
        store.keep_alive(lease).await,
        "keep-alive of a revoked lease",
    );
}

/// A put attached to a lease that does not exist fails and writes nothing.
pub async fn put_with_unknown_lease_fails(store: Store, _: MetadataSuiteOptions) {
    let key = format!("{}key", unique_prefix("put_with_unknown_lease_fails"));
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("grant");
    store.revoke_lease(lease).await.expect("revoke");
    let txn = Txn::new().then(TxnOp::Put {
        key: key.clone(),
        value: b("x"),
        lease: Some(lease),
    });
    let result = store.txn(txn).await;
    assert!(
        matches!(result, Err(MetadataError::LeaseNotFound(_))),
        "put with a revoked lease: {result:?}"
    );
    assert_eq!(get(&store, &key).await, None);
}

/// A watch delivers, in revision order, every put and delete under its prefix committed
/// after it was created, and nothing else.
pub async fn watch_sees_changes_under_prefix_in_order(store: Store, _: MetadataSuiteOptions) {
    let p = unique_prefix("watch_sees_changes_under_prefix_in_order");
    let w = format!("{p}w/");
    put(&store, &format!("{w}before"), "old").await;
    let mut watch = store.watch(&w).await.expect("watch");

    let a = put(&store, &format!("{w}a"), "1").await;
    put(&store, &format!("{p}outside"), "x").await;
    put(&store, &format!("{p}w"), "x").await;
    let b2 = put(&store, &format!("{w}b"), "2").await;
    let txn = Txn::new()
        .then(TxnOp::Delete {
            key: format!("{w}a"),
        })
        .then(TxnOp::Put {
            key: format!("{w}c"),
            value: b("3"),
            lease: None,
        });
    let c = store.txn(txn).await.expect("txn");
    let wipe = store
        .txn(Txn::new().then(TxnOp::DeletePrefix { prefix: w.clone() }))
        .await;
    let wipe = wipe.expect("delete prefix");
    put(&store, &format!("{p}outside"), "y").await;
    let marker = put(&store, &format!("{w}marker"), "end").await;

    use WatchEventKind::{Delete, Put};
    let want: Vec<(i64, WatchEventKind, String, &str)> = vec![
        (a.revision, Put, format!("{w}a"), "1"),
        (b2.revision, Put, format!("{w}b"), "2"),
        (c.revision, Delete, format!("{w}a"), ""),
        (c.revision, Put, format!("{w}c"), "3"),
        (wipe.revision, Delete, format!("{w}b"), ""),
        (wipe.revision, Delete, format!("{w}before"), ""),
        (wipe.revision, Delete, format!("{w}c"), ""),
        (marker.revision, Put, format!("{w}marker"), "end"),
    ];
    let mut got: Vec<(i64, WatchEventKind, String, bytes::Bytes)> = Vec::new();
    for _ in 0..want.len() {
        let e = next_event(&mut watch).await;
        if let Some((last_revision, ..)) = got.last() {
            assert!(
                e.kv.mod_revision >= *last_revision,
                "events out of revision order"
            );
        }
        got.push((e.kv.mod_revision, e.kind, e.kv.key.clone(), e.kv.value));
    }
    // Within one revision the order of keys is not part of the contract.
    let normalise = |mut v: Vec<(i64, WatchEventKind, String, bytes::Bytes)>| {
        v.sort_by(|x, y| (x.0, &x.2).cmp(&(y.0, &y.2)));
        v
    };
    let want = want
        .into_iter()
        .map(|(r, k, key, v)| (r, k, key, b(v)))
        .collect();
    assert_eq!(normalise(got), normalise(want));
}

/// Many tasks incrementing one counter with get + compare-and-swap lose no update.
pub async fn concurrent_cas_increments_lose_no_update(store: Store, options: MetadataSuiteOptions) {
    let key = format!(
        "{}counter",
        unique_prefix("concurrent_cas_increments_lose_no_update")
    );
    let tasks: Vec<_> = (0..options.cas_tasks)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                for _ in 0..options.cas_increments {
                    loop {
                        let current = store.get(&key).await.expect("get");
                        let (value, revision) = match current {
                            None => (0u64, 0),
                            Some(kv) => {
                                let text = std::str::from_utf8(&kv.value).expect("utf-8 counter");
                                (text.parse().expect("numeric counter"), kv.mod_revision)
                            }
                        };
                        // Let the other tasks read the same value: the compare must catch it.
                        tokio::task::yield_now().await;
                        let next = b(&(value + 1).to_string());
                        if store
                            .compare_and_swap(&key, revision, next)
                            .await
                            .expect("cas")
                            .succeeded
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.expect("increment task panicked");
    }
    let total = (options.cas_tasks * options.cas_increments).to_string();
    assert_eq!(
        get(&store, &key).await.expect("counter").value,
        b(&total),
        "lost updates"
    );
}
