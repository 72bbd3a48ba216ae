//! Requests by operation and result, and a latency histogram per operation: what both
//! metered store wrappers (object store, metadata store) report, under their own prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<OpLabels, Histogram>,
}

impl RequestMetrics {
    /// Registers `requests{op,result}` and `request_duration_seconds{op}` in `sub` (a
    /// prefixed sub-registry); `histogram` makes each operation's latency histogram.
    pub fn register(
        sub: &mut Registry,
        what: &str,
        histogram: fn() -> Histogram,
    ) -> RequestMetrics {
        let m = RequestMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(histogram),
        };
        sub.register(
            "requests",
            format!("{what} requests by operation and result"),
            m.requests.clone(),
        );
        sub.register(
            "request_duration_seconds",
            format!("{what} request latency"),
            m.duration.clone(),
        );
        m
    }

    pub fn record(&self, op: &'static str, started: Instant, result: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { op, result })
            .inc();
        self.duration
            .get_or_create(&OpLabels { op })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Requests of `op` that ended with `result` so far.
    pub fn count(&self, op: &'static str, result: &'static str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { op, result })
            .get()
    }
}
