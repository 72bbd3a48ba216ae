//! The transaction state machine shared by the memory and embedded stores: request
//! validation, compare evaluation and the application of operations to a key-value table
//! with revisions. A backend supplies the table (a `BTreeMap`, or a table inside a redb
//! write transaction) and makes the application atomic.

use bytes::Bytes;
use kafscale_core::ports::metadata::MAX_TXN_OPS;
use kafscale_core::ports::{
    Compare, KeyValue, LeaseId, MetadataError, Txn, TxnOp, TxnOutcome, WatchEvent, WatchEventKind,
};
use std::collections::{BTreeMap, HashSet};

/// etcd's default request size limit (`--max-request-bytes`). Enforced here too so a
/// transaction that the production store would refuse fails in tests already.
pub(crate) const MAX_TXN_BYTES: usize = 1536 * 1024;

/// A sorted table of key-values, as seen from inside one atomic write.
pub(crate) trait KvTable {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError>;
    /// Keys starting with `prefix`, in byte order.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, MetadataError>;
    /// Keys `k` with `start <= k < end`, in byte order.
    fn keys_in_range(&self, start: &str, end: &str) -> Result<Vec<String>, MetadataError>;
    fn insert(&mut self, kv: KeyValue) -> Result<(), MetadataError>;
    fn remove(&mut self, key: &str) -> Result<Option<KeyValue>, MetadataError>;
}

/// One committed change, with what lease bookkeeping needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub event: WatchEvent,
    /// The lease the key was attached to before this change.
    pub prev_lease: Option<LeaseId>,
}

#[derive(Debug)]
pub(crate) struct Applied {
    pub outcome: TxnOutcome,
    /// In operation order; empty if the compares failed or nothing changed.
    pub changes: Vec<Change>,
}

/// Refuses what etcd refuses: too many compares or operations, requests over the size
/// limit, empty keys, and a key written twice or both written and deleted.
pub(crate) fn validate(txn: &Txn) -> Result<(), MetadataError> {
    let invalid = |message: String| Err(MetadataError::InvalidRequest { message });
    if txn.compares.len() > MAX_TXN_OPS || txn.ops.len() > MAX_TXN_OPS {
        return invalid(format!(
            "too many operations in transaction: {} compares, {} ops (limit {MAX_TXN_OPS})",
            txn.compares.len(),
            txn.ops.len()
        ));
    }
    let mut bytes = 0usize;
    for compare in &txn.compares {
        bytes += match compare {
            Compare::Value { key, value } => key.len() + value.as_ref().map_or(0, Bytes::len),
            Compare::ModRevision { key, .. } => key.len() + 8,
        };
    }
    let mut put_keys = HashSet::new();
    for op in &txn.ops {
        match op {
            TxnOp::Put { key, value, .. } => {
                bytes += key.len() + value.len();
                if key.is_empty() {
                    return invalid("empty key in put".to_owned());
                }
                if !put_keys.insert(key.as_str()) {
                    return invalid(format!("duplicate key in transaction: {key}"));
                }
            }
            TxnOp::Delete { key } => {
                bytes += key.len();
                if key.is_empty() {
                    return invalid("empty key in delete".to_owned());
                }
            }
            TxnOp::DeletePrefix { prefix } => bytes += prefix.len(),
            TxnOp::DeleteRange { start, end } => bytes += start.len() + end.len(),
        }
    }
    if bytes > MAX_TXN_BYTES {
        return invalid(format!(
            "transaction too large: {bytes} bytes (limit {MAX_TXN_BYTES})"
        ));
    }
    for op in &txn.ops {
        let conflict = match op {
            TxnOp::Put { .. } => None,
            TxnOp::Delete { key } => put_keys.get(key.as_str()),
            TxnOp::DeletePrefix { prefix } => {
                put_keys.iter().find(|k| k.starts_with(prefix.as_str()))
            }
            TxnOp::DeleteRange { start, end } => put_keys
                .iter()
                .find(|k| start.as_str() <= **k && **k < end.as_str()),
        };
        if let Some(key) = conflict {
            return invalid(format!("key both put and deleted in transaction: {key}"));
        }
    }
    Ok(())
}

fn compare_holds(table: &impl KvTable, compare: &Compare) -> Result<bool, MetadataError> {
    Ok(match compare {
        Compare::Value { key, value } => match (table.get(key)?, value) {
            (None, None) => true,
            (Some(kv), Some(value)) => kv.value == value,
            _ => false,
        },
        Compare::ModRevision { key, revision } => {
            let current = table.get(key)?.map_or(0, |kv| kv.mod_revision);
            current == *revision
        }
    })
}

/// Applies a validated `txn` on top of `revision`. All checks (compares, leases) happen
/// before the first write, so a table without its own transactions (a `BTreeMap`) is never
/// left half-changed; a failing table (I/O) must be discarded by its backend.
///
/// The revision advances by one iff something changed; deleting absent keys changes nothing.
pub(crate) fn apply(
    table: &mut impl KvTable,
    revision: i64,
    txn: &Txn,
    live_leases: &HashSet<LeaseId>,
) -> Result<Applied, MetadataError> {
    for compare in &txn.compares {
        if !compare_holds(table, compare)? {
            return Ok(Applied {
                outcome: TxnOutcome {
                    succeeded: false,
                    revision,
                },
                changes: Vec::new(),
            });
        }
    }
    for op in &txn.ops {
        if let TxnOp::Put {
            lease: Some(lease), ..
        } = op
        {
            if !live_leases.contains(lease) {
                return Err(MetadataError::LeaseNotFound(*lease));
            }
        }
    }

    let next = revision + 1;
    let mut changes = Vec::new();
    for op in &txn.ops {
        match op {
            TxnOp::Put { key, value, lease } => {
                let prev = table.get(key)?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.as_ref().map_or(next, |p| p.create_revision),
                    mod_revision: next,
                    lease: *lease,
                };
                table.insert(kv.clone())?;
                changes.push(Change {
                    event: WatchEvent {
                        kind: WatchEventKind::Put,
                        kv,
                    },
                    prev_lease: prev.and_then(|p| p.lease),
                });
            }
            TxnOp::Delete { key } => {
                if let Some(prev) = table.remove(key)? {
                    changes.push(delete_change(prev, next));
                }
            }
            TxnOp::DeletePrefix { prefix } => {
                for key in table.keys_with_prefix(prefix)? {
                    if let Some(prev) = table.remove(&key)? {
                        changes.push(delete_change(prev, next));
                    }
                }
            }
            TxnOp::DeleteRange { start, end } => {
                for key in table.keys_in_range(start, end)? {
                    if let Some(prev) = table.remove(&key)? {
                        changes.push(delete_change(prev, next));
                    }
                }
            }
        }
    }
    let revision = if changes.is_empty() { revision } else { next };
    Ok(Applied {
        outcome: TxnOutcome {
            succeeded: true,
            revision,
        },
        changes,
    })
}

fn delete_change(prev: KeyValue, revision: i64) -> Change {
    Change {
        event: WatchEvent {
            kind: WatchEventKind::Delete,
            kv: KeyValue {
                key: prev.key,
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: revision,
                lease: None,
            },
        },
        prev_lease: prev.lease,
    }
}

/// The memory store's table.
impl KvTable for BTreeMap<String, KeyValue> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        Ok(BTreeMap::get(self, key).cloned())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, MetadataError> {
        Ok(range_prefix(self, prefix)
            .map(|kv| kv.key.clone())
            .collect())
    }

    fn keys_in_range(&self, start: &str, end: &str) -> Result<Vec<String>, MetadataError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .range::<str, _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Excluded(end),
            ))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn insert(&mut self, kv: KeyValue) -> Result<(), MetadataError> {
        BTreeMap::insert(self, kv.key.clone(), kv);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        Ok(BTreeMap::remove(self, key))
    }
}

/// Entries of `map` whose key starts with `prefix`, in key order.
pub(crate) fn range_prefix<'a>(
    map: &'a BTreeMap<String, KeyValue>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a KeyValue> + 'a {
    range_from(map, prefix, prefix)
}

/// Entries of `map` whose key starts with `prefix` and sorts at or after `start`.
pub(crate) fn range_from<'a>(
    map: &'a BTreeMap<String, KeyValue>,
    prefix: &'a str,
    start: &'a str,
) -> impl Iterator<Item = &'a KeyValue> + 'a {
    map.range::<str, _>((
        std::ops::Bound::Included(start.max(prefix)),
        std::ops::Bound::Unbounded,
    ))
    .take_while(move |(k, _)| k.starts_with(prefix))
    .map(|(_, kv)| kv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> TxnOp {
        TxnOp::Put {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value),
            lease: None,
        }
    }

    fn invalid(txn: &Txn) -> bool {
        matches!(validate(txn), Err(MetadataError::InvalidRequest { .. }))
    }

    #[test]
    fn validate_refuses_what_etcd_refuses() {
        assert!(invalid(
            &Txn::new().then(put("a", b"1")).then(put("a", b"2"))
        ));
        let delete = TxnOp::Delete {
            key: "a".to_owned(),
        };
        assert!(invalid(&Txn::new().then(put("a", b"1")).then(delete)));
        let wipe = TxnOp::DeletePrefix {
            prefix: "a/".to_owned(),
        };
        assert!(invalid(
            &Txn::new().then(wipe.clone()).then(put("a/b", b"1"))
        ));
        assert!(!invalid(&Txn::new().then(wipe).then(put("ab", b"1"))));
        assert!(invalid(&Txn::new().then(put("", b"1"))));
        let big = vec![0u8; MAX_TXN_BYTES];
        assert!(invalid(&Txn::new().then(put("a", &big))));
        let many = (0..=MAX_TXN_OPS).fold(Txn::new(), |t, i| t.then(put(&i.to_string(), b"")));
        assert!(invalid(&many));
    }

    #[test]
    fn apply_advances_the_revision_only_on_change() {
        let mut map = BTreeMap::new();
        let none = HashSet::new();
        let first = apply(&mut map, 4, &Txn::new().then(put("a", b"1")), &none);
        let first = first.expect("apply");
        assert_eq!((first.outcome.revision, first.changes.len()), (5, 1));
        let noop = Txn::new().then(TxnOp::Delete {
            key: "x".to_owned(),
        });
        let noop = apply(&mut map, 5, &noop, &none).expect("apply");
        assert!(noop.outcome.succeeded && noop.changes.is_empty());
        assert_eq!(noop.outcome.revision, 5);
        let leased = Txn::new().then(TxnOp::Put {
            key: "b".to_owned(),
            value: Bytes::new(),
            lease: Some(LeaseId(9)),
        });
        let refused = apply(&mut map, 5, &leased, &none);
        assert!(matches!(
            refused,
            Err(MetadataError::LeaseNotFound(LeaseId(9)))
        ));
        assert_eq!(map.len(), 1, "a refused transaction applies nothing");
    }
}
