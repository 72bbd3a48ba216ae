//! Start-up and shutdown of a broker: open and check the stores, load the log, bind the
//! listeners, serve until told to stop, then flush and commit what is pending.

use anyhow::Context as _;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use kafscale_adapters::{
    EncryptedObjectStore, HealthObjectStore, HealthPolicy, HealthState, HealthTracker,
    MeteredMetadataStore, MeteredObjectStore, RetryingObjectStore, TimeoutObjectStore,
};
use kafscale_core::cluster::{Cluster, ListenerEndpoint, Registration};
use kafscale_core::group::{GroupConfig, GroupCoordinator};
use kafscale_core::log::LogService;
use kafscale_core::ports::metadata::{decode_json, encode_json};
use kafscale_core::ports::{
    Clock, ClockExt, MetadataStore, MetadataStoreExt, ObjectStore, PutMode,
};

use crate::config::Config;
use crate::context::Context;
use crate::http::Readiness;
use crate::metrics::Metrics;

const CLUSTER_KEY: &str = "kafscale/cluster";

/// How long shutdown waits, after the last flush, for connections to write their answers.
const CONNECTIONS_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running broker; dropping it does not stop it, [`Broker::shutdown`] does.
pub struct Broker {
    /// The first listener's bound address.
    pub kafka_addr: SocketAddr,
    /// Every listener's name and bound address, in the configured order.
    pub listener_addrs: Vec<(String, SocketAddr)>,
    pub http_addr: SocketAddr,
    pub ctx: Arc<Context>,
    readiness: Arc<Readiness>,
    /// Cancelled once partitions are handed over: no new connections, no new requests.
    serving: CancellationToken,
    /// Cancelled last: the HTTP probes answer (503) throughout the shutdown.
    http_stop: CancellationToken,
    /// One task per client connection.
    connections: TaskTracker,
    /// The accept loop, the HTTP server and the background tasks.
    tasks: TaskTracker,
    clock: Arc<dyn Clock>,
}

/// Starts a broker on the stores its configuration names and the system clock.
pub async fn start(config: Config) -> anyhow::Result<Broker> {
    BrokerBuilder::new(config).start().await
}

/// Assembles a broker. The object store, metadata store and clock default to what the
/// configuration names (and the system clock); tests pass their own, such as memory stores
/// shared by several brokers of one process, fault wrappers, or a virtual clock. The
/// broker's own wrappers (timeouts, retries, metrics, health) wrap whatever is given.
pub struct BrokerBuilder {
    config: Config,
    object_store: Option<Arc<dyn ObjectStore>>,
    metadata: Option<Arc<dyn MetadataStore>>,
    clock: Option<Arc<dyn Clock>>,
    wrap_metadata: Option<WrapMetadata>,
}

type WrapMetadata = Box<dyn FnOnce(Arc<dyn MetadataStore>) -> Arc<dyn MetadataStore> + Send>;

impl BrokerBuilder {
    pub fn new(config: Config) -> BrokerBuilder {
        BrokerBuilder {
            config,
            object_store: None,
            metadata: None,
            clock: None,
            wrap_metadata: None,
        }
    }

    pub fn object_store(mut self, store: Arc<dyn ObjectStore>) -> BrokerBuilder {
        self.object_store = Some(store);
        self
    }

    pub fn metadata_store(mut self, meta: Arc<dyn MetadataStore>) -> BrokerBuilder {
        self.metadata = Some(meta);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> BrokerBuilder {
        self.clock = Some(clock);
        self
    }

    /// Wraps the metadata store, given or configured, before the broker's own wrappers
    /// (fault injection in tests).
    pub fn wrap_metadata_store(
        mut self,
        wrap: impl FnOnce(Arc<dyn MetadataStore>) -> Arc<dyn MetadataStore> + Send + 'static,
    ) -> BrokerBuilder {
        self.wrap_metadata = Some(Box::new(wrap));
        self
    }

    pub async fn start(self) -> anyhow::Result<Broker> {
        let BrokerBuilder {
            mut config,
            object_store,
            metadata,
            clock,
            wrap_metadata,
        } = self;
        let metrics = Metrics::new();
        let store = match object_store {
            Some(store) => store,
            None => {
                kafscale_adapters::object_store_from_url_with(&config.object_store_url, &config.s3)
                    .with_context(|| {
                        format!(
                            "object store {}",
                            kafscale_adapters::redact_url(&config.object_store_url)
                        )
                    })?
            }
        };
        let store = encrypted(store, config.encryption.as_ref())?;
        // Retries outermost and timeouts innermost, so that metrics and health see every
        // attempt, timed-out ones included.
        let storage_health = HealthTracker::new(HealthPolicy::default());
        let bounded = Arc::new(TimeoutObjectStore::new(
            store,
            config.object_store_retry.timeout,
        ));
        let store: Arc<dyn ObjectStore> = Arc::new(RetryingObjectStore::new(
            Arc::new(MeteredObjectStore::new(
                Arc::new(HealthObjectStore::new(bounded, storage_health.clone())),
                metrics.object_store.clone(),
            )),
            config.object_store_retry,
        ));
        let meta = match metadata {
            Some(meta) => meta,
            None => {
                kafscale_adapters::connect_metadata_store_with(&config.metadata_url, &config.etcd)
                    .await
                    .with_context(|| {
                        format!(
                            "metadata store {}",
                            kafscale_adapters::redact_url(&config.metadata_url)
                        )
                    })?
            }
        };
        let meta = match wrap_metadata {
            Some(wrap) => wrap(meta),
            None => meta,
        };
        let meta: Arc<dyn MetadataStore> =
            Arc::new(MeteredMetadataStore::new(meta, metrics.metadata.clone()));
        check_object_store(store.as_ref()).await.with_context(|| {
            format!(
                "object store {} is not usable",
                kafscale_adapters::redact_url(&config.object_store_url)
            )
        })?;
        let cluster_id = cluster_id(meta.as_ref()).await.with_context(|| {
            format!(
                "metadata store {} is not usable",
                kafscale_adapters::redact_url(&config.metadata_url)
            )
        })?;
        let clock = clock.unwrap_or_else(|| Arc::new(kafscale_adapters::SystemClock::new()));
        let mut sockets = Vec::new();
        for l in &config.listeners {
            let listener = crate::server::session::Listener::new(l).map_err(anyhow::Error::msg)?;
            let socket = TcpListener::bind(l.bind)
                .await
                .with_context(|| format!("cannot listen on {} (listener {})", l.bind, l.name))?;
            sockets.push((Arc::new(listener), socket));
        }
        let http_listener = TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {} (http)", config.http_listen))?;
        let http_addr = http_listener.local_addr()?;
        let mut listener_addrs = Vec::new();
        let mut endpoints = Vec::new();
        for ((listener, socket), l) in sockets.iter().zip(&config.listeners) {
            let bound = socket.local_addr()?;
            let (host, port) = l
                .advertised
                .clone()
                .unwrap_or_else(|| (bound.ip().to_string(), bound.port()));
            listener_addrs.push((listener.name.clone(), bound));
            endpoints.push(ListenerEndpoint {
                name: listener.name.clone(),
                host,
                port,
            });
        }
        let kafka_addr = listener_addrs[0].1;
        config.cluster.host = endpoints[0].host.clone();
        config.cluster.port = endpoints[0].port;
        config.cluster.listeners = endpoints.clone();
        // Unknown SCRAM users are shown salts seeded by a secret all brokers share.
        let sasl_secret = if config.listeners.iter().any(|l| l.protocol.sasl()) {
            kafscale_core::users::decoy_secret(
                meta.as_ref(),
                crate::security::scram::random_bytes(32),
            )
            .await
            .with_context(|| {
                format!(
                    "metadata store {} is not usable",
                    kafscale_adapters::redact_url(&config.metadata_url)
                )
            })?
        } else {
            Vec::new()
        };
        let registration = Registration::register(meta.as_ref(), clock.as_ref(), &config.cluster)
            .await
            .context("cannot register this broker")?;
        config.log.broker_id = registration.id;
        config.log.incarnation = registration.incarnation;
        let group_config = GroupConfig {
            broker_id: registration.id,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            ..GroupConfig::default()
        };
        let groups = Arc::new(GroupCoordinator::new(
            group_config,
            meta.clone(),
            clock.clone(),
        ));
        let log = LogService::open_clustered(
            config.log.clone(),
            store.clone(),
            meta.clone(),
            clock.clone(),
            metrics.flush.clone(),
        )
        .await
        .context("cannot load the log")?;
        let cluster = Cluster::start(
            config.cluster.clone(),
            registration,
            meta.clone(),
            clock.clone(),
            log.clone(),
            groups.clone(),
        )
        .await
        .context("cannot join the cluster")?;
        // A single broker, or the first of a cluster, assigns everything to itself right
        // away; waiting for that spares the first clients a round of retriable errors.
        if !cluster.wait_settled(Duration::from_secs(5)).await {
            tracing::info!("cluster not settled yet; serving anyway (clients retry)");
        }
        let acls = Arc::new(kafscale_core::acl_store::AclCache::default());
        if config.authorization.is_some() {
            acls.load(meta.as_ref()).await.with_context(|| {
                format!(
                    "cannot read the ACLs from {}",
                    kafscale_adapters::redact_url(&config.metadata_url)
                )
            })?;
        }
        let peers = Arc::new(crate::inter_broker::InterBroker::new(
            cluster.clone(),
            config.inter_broker_listener.clone(),
            crate::inter_broker::inter_broker_security(&config)?,
            crate::inter_broker::PEER_TIMEOUT,
        ));
        let verified = Arc::new(crate::txn_verify::Verified::default());
        let txns = Arc::new(kafscale_core::txn::TxnCoordinator::new(
            config.txn.clone(),
            meta.clone(),
            clock.clone(),
            groups.clone(),
            Arc::new(crate::txn_markers::ClusterMarkers {
                log: log.clone(),
                groups: groups.clone(),
                cluster: cluster.clone(),
                peers: peers.clone(),
                verified: verified.clone(),
                clock: clock.clone(),
            }),
            Arc::new(log.clone()),
        ));
        let ctx = Arc::new(Context {
            logins: Default::default(),
            acls: acls.clone(),
            log,
            config,
            endpoints,
            meta: meta.clone(),
            sasl_secret,
            cluster_id,
            groups: groups.clone(),
            txns: txns.clone(),
            cluster,
            peers,
            verified,
            metrics,
            storage_health,
        });
        let readiness = Arc::new(Readiness::default());
        let serving = CancellationToken::new();
        let http_stop = CancellationToken::new();
        let connections = TaskTracker::new();
        let tasks = TaskTracker::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(crate::server::MAX_CONNECTIONS));
        for (listener, socket) in sockets {
            tasks.spawn(crate::server::accept_loop(
                ctx.clone(),
                listener,
                socket,
                limit.clone(),
                connections.clone(),
                serving.clone(),
            ));
        }
        tasks.spawn(crate::http::serve(
            http_listener,
            crate::http::router(ctx.clone(), readiness.clone()),
            http_stop.clone(),
        ));
        let stop_rx = stop_signal(&tasks, &serving);
        tasks.spawn(groups.clone().run_timers(stop_rx.clone()));
        tasks.spawn(groups.run_snapshots(stop_rx.clone()));
        tasks.spawn(txns.run_timers(stop_rx.clone()));
        if ctx.config.authorization.is_some() {
            tasks.spawn(acls.run(meta.clone(), clock.clone(), stop_rx.clone()));
        }
        tasks.spawn(kafscale_core::cluster::backups::run(
            ctx.cluster.clone(),
            meta,
            store.clone(),
            clock.clone(),
            stop_rx,
        ));
        tasks.spawn(probe_unavailable_store(
            ctx.clone(),
            store,
            clock.clone(),
            serving.clone(),
        ));
        tracing::info!(
            kafka = %listener_addrs
                .iter()
                .map(|(name, addr)| format!("{name}://{addr}"))
                .collect::<Vec<_>>()
                .join(","),
            http = %http_addr,
            advertised = %ctx
                .endpoints
                .iter()
                .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
                .collect::<Vec<_>>()
                .join(","),
            broker = ctx.log.broker_id().0,
            cluster = %ctx.cluster_id,
            "broker started"
        );
        Ok(Broker {
            kafka_addr,
            listener_addrs,
            http_addr,
            ctx,
            readiness,
            serving,
            http_stop,
            connections,
            tasks,
            clock,
        })
    }
}

/// The stop signal of core's background tasks, which watch a flag: set once `token` is
/// cancelled.
fn stop_signal(tasks: &TaskTracker, token: &CancellationToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let token = token.clone();
    tasks.spawn(async move {
        token.cancelled().await;
        let _ = tx.send(true);
    });
    rx
}

impl Broker {
    /// Stops within a bound (the drain timeout plus [`CONNECTIONS_CLOSE_TIMEOUT`]):
    /// - `/readyz` turns 503 first, so that no new clients are sent here;
    /// - partitions and coordinator shards are handed over to other brokers, each after a
    ///   flush (clients follow the new leaders);
    /// - new connections and requests are refused, and what is still pending is flushed
    ///   and committed, so that its producers get answers;
    /// - connections write those answers and close; the registration is released.
    pub async fn shutdown(self) {
        self.readiness.set_draining();
        tracing::info!("shutting down: handing partitions over");
        self.ctx.cluster.drain().await;
        self.serving.cancel();
        self.ctx.log.shutdown().await;
        self.connections.close();
        if self
            .clock
            .timeout(CONNECTIONS_CLOSE_TIMEOUT, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.connections.len(),
                "connections did not close in time; leaving them"
            );
        }
        self.ctx.cluster.leave().await;
        self.http_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("stopped");
    }
}

/// While the object store is unavailable no produce reaches it, so nothing would show its
/// recovery: probe it every second until it answers again.
async fn probe_unavailable_store(
    ctx: Arc<Context>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = clock.sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
        ctx.metrics
            .set_storage_health(ctx.storage_health.state() as i64);
        if ctx.storage_health.state() == HealthState::Unavailable {
            match check_object_store(store.as_ref()).await {
                Ok(()) => tracing::info!("object store answers again"),
                Err(e) => tracing::warn!(error = %e, "object store still unavailable"),
            }
        }
    }
}

/// `store`, sealing and opening objects as `encryption` (`encryption.*`) says, if set.
pub fn encrypted(
    store: Arc<dyn ObjectStore>,
    encryption: Option<&crate::config::Encryption>,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let Some(e) = encryption else {
        return Ok(store);
    };
    let sealed = EncryptedObjectStore::open(store, &e.keys)
        .map_err(|e| anyhow::anyhow!("encryption.keys: {e}"))?;
    Ok(Arc::new(if e.allow_unencrypted {
        sealed
    } else {
        sealed.refusing_unencrypted()
    }))
}

/// Writes, reads back and deletes a small object, so a misconfigured store fails at start-up
/// rather than at the first produce.
async fn check_object_store(store: &dyn ObjectStore) -> anyhow::Result<()> {
    let key = format!("_probe/{}", uuid::Uuid::new_v4().simple());
    let data = Bytes::from_static(b"kafscale start-up probe");
    store.put(&key, data.clone(), PutMode::Create).await?;
    let back = store.get(&key).await?;
    anyhow::ensure!(back == data, "probe object read back differently");
    store.delete(&key).await?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ClusterRecord {
    id: String,
}

/// The cluster id, created on first start.
async fn cluster_id(meta: &dyn MetadataStore) -> anyhow::Result<String> {
    if let Some(kv) = meta.get(CLUSTER_KEY).await? {
        return Ok(decode_json::<ClusterRecord>(&kv)?.id);
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
    let outcome = meta
        .compare_and_swap(
            CLUSTER_KEY,
            0,
            encode_json(&ClusterRecord { id: id.clone() }),
        )
        .await?;
    if outcome.succeeded {
        return Ok(id);
    }
    let kv = meta
        .get(CLUSTER_KEY)
        .await?
        .ok_or_else(|| anyhow::anyhow!("cluster id vanished"))?;
    Ok(decode_json::<ClusterRecord>(&kv)?.id)
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
