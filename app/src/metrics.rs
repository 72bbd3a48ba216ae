//! Counters exposed in Prometheus text format on `/metrics`.

use kafka_protocol::messages::ApiKey;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const KEYS: usize = 128;

pub struct Metrics {
    requests: [AtomicU64; KEYS],
    pub produced_bytes: AtomicU64,
    pub produced_batches: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub connections: AtomicU64,
    pub open_connections: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            produced_bytes: AtomicU64::new(0),
            produced_batches: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn request(&self, key: ApiKey) {
        if let Some(c) = self.requests.get(key as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, cache: (usize, u64, u64)) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE kafscale_requests_total counter");
        for (i, c) in self.requests.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let name =
                    ApiKey::try_from(i as i16).map_or_else(|_| i.to_string(), |k| format!("{k:?}"));
                let _ = writeln!(out, "kafscale_requests_total{{api=\"{name}\"}} {n}");
            }
        }
        let simple = [
            (
                "kafscale_produced_bytes_total",
                "counter",
                &self.produced_bytes,
            ),
            (
                "kafscale_produced_batches_total",
                "counter",
                &self.produced_batches,
            ),
            (
                "kafscale_fetched_bytes_total",
                "counter",
                &self.fetched_bytes,
            ),
            ("kafscale_connections_total", "counter", &self.connections),
            ("kafscale_open_connections", "gauge", &self.open_connections),
        ];
        for (name, kind, v) in simple {
            let _ = writeln!(
                out,
                "# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let (bytes, hits, misses) = cache;
        let _ = writeln!(
            out,
            "# TYPE kafscale_cache_bytes gauge\nkafscale_cache_bytes {bytes}"
        );
        let _ = writeln!(
            out,
            "# TYPE kafscale_cache_hits_total counter\nkafscale_cache_hits_total {hits}"
        );
        let _ = writeln!(
            out,
            "# TYPE kafscale_cache_misses_total counter\nkafscale_cache_misses_total {misses}"
        );
        out
    }
}
