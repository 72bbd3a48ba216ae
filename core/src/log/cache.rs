//! A byte-capped LRU cache of chunk bytes. Freshly committed chunks enter it at commit time, so
//! tail reads by consumers that keep up never touch the object store.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

type Key = (String, u64);

#[derive(Debug)]
pub struct ChunkCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Bytes, u64)>,
    /// Use tick -> key, oldest first.
    order: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl ChunkCache {
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only cache bookkeeping behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, object: &str, position: u64) -> Option<Bytes> {
        let mut inner = self.lock();
        let key = (object.to_owned(), position);
        inner.tick += 1;
        let tick = inner.tick;
        match inner.entries.get_mut(&key) {
            Some((bytes, used)) => {
                let old = std::mem::replace(used, tick);
                let bytes = bytes.clone();
                inner.order.remove(&old);
                inner.order.insert(tick, key);
                inner.hits += 1;
                Some(bytes)
            }
            None => {
                inner.misses += 1;
                None
            }
        }
    }

    pub fn insert(&self, object: &str, position: u64, bytes: Bytes) {
        if bytes.len() > self.capacity {
            return;
        }
        let mut inner = self.lock();
        let key = (object.to_owned(), position);
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((old, used)) = inner.entries.remove(&key) {
            inner.bytes -= old.len();
            inner.order.remove(&used);
        }
        inner.bytes += bytes.len();
        inner.entries.insert(key.clone(), (bytes, tick));
        inner.order.insert(tick, key);
        while inner.bytes > self.capacity {
            let Some((_, victim)) = inner.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = inner.entries.remove(&victim) {
                inner.bytes -= b.len();
            }
        }
    }

    /// (bytes held, hits, misses)
    pub fn stats(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (inner.bytes, inner.hits, inner.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let cache = ChunkCache::new(10);
        cache.insert("a", 0, Bytes::from_static(b"1234"));
        cache.insert("b", 0, Bytes::from_static(b"1234"));
        assert!(cache.get("a", 0).is_some());
        cache.insert("c", 0, Bytes::from_static(b"1234"));
        assert!(cache.get("b", 0).is_none());
        assert!(cache.get("a", 0).is_some());
        assert!(cache.get("c", 0).is_some());
        assert!(cache.stats().0 <= 10);
        cache.insert("huge", 0, Bytes::from(vec![0u8; 11]));
        assert!(cache.get("huge", 0).is_none());
    }
}
