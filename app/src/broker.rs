//! Start-up and shutdown of a broker: open and check the stores, load the log, bind the
//! listeners, serve until told to stop, then flush and commit what is pending.

use anyhow::Context as _;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

use kafscale_adapters::{
    HealthObjectStore, HealthPolicy, HealthState, HealthTracker, MeteredMetadataStore,
    MeteredObjectStore, RetryingObjectStore, TimeoutObjectStore,
};
use kafscale_core::cluster::{Cluster, Registration};
use kafscale_core::group::{GroupConfig, GroupCoordinator};
use kafscale_core::log::LogService;
use kafscale_core::ports::metadata::{decode_json, encode_json};
use kafscale_core::ports::{Clock, MetadataStore, MetadataStoreExt, ObjectStore, PutMode};

use crate::config::Config;
use crate::context::Context;
use crate::metrics::Metrics;

const CLUSTER_KEY: &str = "kafscale/cluster";

/// A running broker; dropping it does not stop it, [`Broker::shutdown`] does.
pub struct Broker {
    pub kafka_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ctx: Arc<Context>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub async fn start(config: Config) -> anyhow::Result<Broker> {
    let metrics = Metrics::new();
    let store = kafscale_adapters::object_store_from_url(&config.object_store_url)
        .with_context(|| format!("object store {}", config.object_store_url))?;
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
    let mut meta = kafscale_adapters::connect_metadata_store(&config.metadata_url)
        .await
        .with_context(|| format!("metadata store {}", config.metadata_url))?;
    if let Some(every) = config.testing_lost_reply_every {
        tracing::warn!(every, "TESTING: metadata transaction replies will be lost");
        meta = Arc::new(kafscale_adapters::LostRepliesMetadataStore::new(
            meta, every,
        ));
    }
    let meta: Arc<dyn MetadataStore> =
        Arc::new(MeteredMetadataStore::new(meta, metrics.metadata.clone()));
    check_object_store(store.as_ref())
        .await
        .with_context(|| format!("object store {} is not usable", config.object_store_url))?;
    let cluster_id = cluster_id(meta.as_ref())
        .await
        .with_context(|| format!("metadata store {} is not usable", config.metadata_url))?;
    let clock: Arc<dyn Clock> = Arc::new(kafscale_adapters::SystemClock::new());
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (http)", config.http_listen))?;
    let kafka_addr = listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let advertised = config
        .advertised
        .clone()
        .unwrap_or_else(|| (kafka_addr.ip().to_string(), kafka_addr.port()));
    let mut config = config;
    config.cluster.host = advertised.0.clone();
    config.cluster.port = advertised.1;
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
        meta,
        clock,
        log.clone(),
        groups.clone(),
    )
    .await
    .context("cannot join the cluster")?;
    // A single broker, or the first of a cluster, assigns everything to itself right
    // away; waiting for that spares the first clients a round of retriable errors.
    if !cluster
        .wait_settled(std::time::Duration::from_secs(5))
        .await
    {
        tracing::info!("cluster not settled yet; serving anyway (clients retry)");
    }
    let ctx = Arc::new(Context {
        log,
        config,
        advertised,
        cluster_id,
        groups: groups.clone(),
        cluster,
        metrics,
        storage_health,
    });
    let (stop, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(true));
    let tasks = vec![
        tokio::spawn(crate::server::accept_loop(
            ctx.clone(),
            listener,
            stop_rx.clone(),
        )),
        tokio::spawn(crate::http::serve(
            ctx.clone(),
            ready,
            http_listener,
            stop_rx.clone(),
        )),
        tokio::spawn(groups.clone().run_timers(stop_rx.clone())),
        tokio::spawn(groups.run_snapshots(stop_rx.clone())),
        tokio::spawn(probe_unavailable_store(ctx.clone(), store, stop_rx)),
    ];
    tracing::info!(
        kafka = %kafka_addr,
        http = %http_addr,
        advertised = %format!("{}:{}", ctx.advertised.0, ctx.advertised.1),
        broker = ctx.log.broker_id().0,
        cluster = %ctx.cluster_id,
        "broker started"
    );
    Ok(Broker {
        kafka_addr,
        http_addr,
        ctx,
        stop,
        tasks,
    })
}

impl Broker {
    /// Hands partitions and coordinator shards over to other brokers (each after flushing),
    /// stops accepting connections, flushes and commits what is still pending so that its
    /// producers get answers, and releases the registration.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: handing partitions over");
        self.ctx.cluster.drain().await;
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.ctx.log.shutdown().await;
        self.ctx.cluster.leave().await;
        // Let connection tasks write the answers of the last flush.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        tracing::info!("stopped");
    }
}

/// While the object store is unavailable no produce reaches it, so nothing would show its
/// recovery: probe it every second until it answers again.
async fn probe_unavailable_store(
    ctx: Arc<Context>,
    store: Arc<dyn ObjectStore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
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
