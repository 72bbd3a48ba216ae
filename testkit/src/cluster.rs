//! Several brokers in one process, on shared stores: the in-process counterpart of the
//! end-to-end cluster tests, for tests of the controller, the watcher and hand-overs that
//! run in seconds.
//!
//! [`TestCluster::in_memory`] shares memory stores and runs on tokio's clock; under a
//! paused runtime (`#[tokio::test(start_paused = true)]`) that clock is virtual: leases,
//! flush timers and the controller's loops all advance together, as fast as the brokers
//! become idle, so a test that waits out a lease takes milliseconds. [`TestCluster::on`]
//! takes real stores (etcd, S3) and the system clock instead.
//!
//! Each broker reaches the metadata store through its own [`FaultyMetadataStore`], so a test
//! can cut one broker off (as a network partition or a SIGSTOP would) while the others go on.

use anyhow::Context as _;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafscale::broker::{Broker, BrokerBuilder};
use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore};
use kafscale_core::ports::{Clock, MetadataStore, ObjectStore};
use kafscale_core::{BrokerId, Millis, PartitionKey};

use crate::faults::FaultyMetadataStore;

/// A [`Clock`] on tokio's timer: virtual under a paused runtime, where it moves with the
/// metadata store's lease deadlines (the memory store keeps those on tokio's clock too).
#[derive(Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
    start_ms: Millis,
}

impl TokioClock {
    pub fn new(start_ms: Millis) -> TokioClock {
        TokioClock {
            start: tokio::time::Instant::now(),
            start_ms,
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> Millis {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        self.start_ms + elapsed
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// One broker of the cluster and its own way to the metadata store.
pub struct TestBroker {
    pub broker: Broker,
    pub metadata: Arc<FaultyMetadataStore>,
}

pub struct TestCluster {
    pub object_store: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    pub clock: Arc<dyn Clock>,
    /// Settings every broker gets, as `kafscale serve` flags keyed by dotted name.
    settings: BTreeMap<String, serde_json::Value>,
    brokers: BTreeMap<BrokerId, TestBroker>,
}

/// Settings that keep in-process clusters quick: a short lease and no delays that only
/// matter to real clients.
fn default_settings() -> BTreeMap<String, serde_json::Value> {
    [
        ("listen", serde_json::json!("127.0.0.1:0")),
        ("http.listen", serde_json::json!("127.0.0.1:0")),
        ("ephemeral", serde_json::json!(true)),
        ("broker.session.timeout.ms", serde_json::json!(3_000)),
        ("group.initial.rebalance.delay.ms", serde_json::json!(0)),
        ("shutdown.drain.timeout.ms", serde_json::json!(10_000)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl TestCluster {
    /// Memory stores and tokio's clock (virtual under a paused runtime).
    pub fn in_memory() -> TestCluster {
        TestCluster::on(
            Arc::new(MemoryObjectStore::new()),
            Arc::new(MemoryMetadataStore::new()),
            Arc::new(TokioClock::new(1_700_000_000_000)),
        )
    }

    /// The given stores and clock.
    pub fn on(
        object_store: Arc<dyn ObjectStore>,
        metadata: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
    ) -> TestCluster {
        TestCluster {
            object_store,
            metadata,
            clock,
            settings: default_settings(),
            brokers: BTreeMap::new(),
        }
    }

    /// Sets a broker setting for the brokers started from now on.
    pub fn set(&mut self, key: &str, value: serde_json::Value) -> &mut TestCluster {
        self.settings.insert(key.to_owned(), value);
        self
    }

    /// Starts one more broker (its id is allocated) and returns its id.
    pub async fn start_broker(&mut self) -> anyhow::Result<BrokerId> {
        let config = kafscale::config::load(
            None,
            figment::providers::Env::prefixed("KAFSCALE_TESTKIT_UNUSED_"),
            self.settings.clone(),
        )?;
        let metadata = FaultyMetadataStore::new(self.metadata.clone());
        let broker = BrokerBuilder::new(config)
            .object_store(self.object_store.clone())
            .metadata_store(metadata.clone())
            .clock(self.clock.clone())
            .start()
            .await
            .context("cannot start a broker")?;
        let id = broker.ctx.log.broker_id();
        self.brokers.insert(id, TestBroker { broker, metadata });
        Ok(id)
    }

    pub fn broker(&self, id: BrokerId) -> &Broker {
        &self.test_broker(id).broker
    }

    pub fn test_broker(&self, id: BrokerId) -> &TestBroker {
        match self.brokers.get(&id) {
            Some(b) => b,
            None => panic!("no running broker {}", id.0),
        }
    }

    /// Ids of the running brokers.
    pub fn ids(&self) -> Vec<BrokerId> {
        self.brokers.keys().copied().collect()
    }

    /// Shuts a broker down gracefully (hand-over, flush, release of its lease).
    pub async fn stop(&mut self, id: BrokerId) {
        if let Some(b) = self.brokers.remove(&id) {
            b.broker.shutdown().await;
        }
    }

    /// Shuts every broker down.
    pub async fn stop_all(&mut self) {
        for id in self.ids() {
            self.stop(id).await;
        }
    }

    /// Which brokers serve each partition, as the brokers themselves say (their log has it
    /// loaded and is not done handing it over). More than one is a transient state of a
    /// hand-over at most; tests wait for exactly one.
    pub fn serving(&self, partitions: &[PartitionKey]) -> BTreeMap<PartitionKey, Vec<BrokerId>> {
        partitions
            .iter()
            .map(|p| {
                let ids = self
                    .brokers
                    .iter()
                    .filter(|(_, b)| b.broker.ctx.log.check_serving(*p).is_ok())
                    .map(|(id, _)| *id)
                    .collect();
                (*p, ids)
            })
            .collect()
    }

    /// The one broker serving each partition, once every partition has exactly one.
    pub fn leaders(&self, partitions: &[PartitionKey]) -> Option<BTreeMap<PartitionKey, BrokerId>> {
        self.serving(partitions)
            .into_iter()
            .map(|(p, ids)| match ids[..] {
                [id] => Some((p, id)),
                _ => None,
            })
            .collect()
    }

    /// Polls `check` every 50 ms (of the cluster's clock) until it returns `Some`, for at
    /// most `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&TestCluster) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = self.clock.now_ms() + i64::try_from(timeout.as_millis()).unwrap_or(0);
        loop {
            if let Some(v) = check(self) {
                return Ok(v);
            }
            if self.clock.now_ms() > deadline {
                anyhow::bail!("timed out after {timeout:?} waiting for {what}");
            }
            self.clock.sleep(Duration::from_millis(50)).await;
        }
    }
}
