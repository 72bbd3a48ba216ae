//! Requests from this broker to another on the inter-broker listener: transaction markers
//! (WriteTxnMarkers) and the produce path's transaction verification (AddPartitionsToTxn
//! `verify_only`). Connections are kept and reused, a few per broker: one request at a
//! time on each, so concurrent calls to the same broker take another.

use kafka_protocol::protocol::Request;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafscale_core::cluster::Cluster;

use crate::cli::client::{ClientSecurity, Conn};
use crate::cli::error::CliError;
use crate::config::{Config, SecurityProtocol};

/// Idle connections kept per broker; more concurrent calls open more, closed after use.
const IDLE_PER_BROKER: usize = 4;
/// How long a connection or an exchange with another broker may take: short, as a broker
/// that does not answer loses its partitions and shards within its session timeout and the
/// next attempt goes to their new owners.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to another broker failed (connection, timeout, a response that cannot be
/// read): the caller retries or answers a retriable error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PeerError(String);

/// The brokers of the cluster as this broker reaches them.
pub struct InterBroker {
    /// Who the brokers are and where they listen.
    cluster: Cluster,
    /// The listener other brokers are reached on.
    listener: String,
    /// How connections are made; None: not possible (a listener that is not PLAINTEXT,
    /// without `inter.broker.client.config`).
    security: Option<Arc<ClientSecurity>>,
    /// How long a connection or an exchange may take.
    timeout: Duration,
    /// Idle connections by broker id, each with the address it was opened to.
    idle: Mutex<HashMap<i32, Vec<Conn>>>,
}

impl InterBroker {
    pub fn new(
        cluster: Cluster,
        listener: String,
        security: Option<Arc<ClientSecurity>>,
        timeout: Duration,
    ) -> InterBroker {
        InterBroker {
            cluster,
            listener,
            security,
            timeout,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Broker `broker`'s address on the inter-broker listener.
    fn endpoint(&self, broker: i32) -> Result<String, PeerError> {
        self.cluster
            .brokers()
            .into_iter()
            .find(|b| b.id.0 == broker)
            .and_then(|b| b.endpoint(&self.listener).map(|(h, p)| format!("{h}:{p}")))
            .ok_or_else(|| {
                PeerError(format!(
                    "broker {broker} has no live {} endpoint",
                    self.listener
                ))
            })
    }

    /// An idle connection to `addr`, if one is kept (those to an older address are closed).
    fn take_idle(&self, broker: i32, addr: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.get_mut(&broker)?;
        conns.retain(|c| c.addr() == addr);
        conns.pop()
    }

    fn keep(&self, broker: i32, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(broker).or_default();
        if conns.len() < IDLE_PER_BROKER {
            conns.push(conn);
        }
    }

    /// Sends `req` in `version` to broker `broker` and returns its response. A kept
    /// connection the broker closed meanwhile is replaced by a new one (callers only send
    /// requests that may be repeated: markers, verification); one that timed out is not,
    /// as a broker that does not answer would only make the caller wait twice.
    pub async fn call<R: Request>(
        &self,
        broker: i32,
        version: i16,
        req: &R,
    ) -> Result<R::Response, PeerError> {
        let addr = self.endpoint(broker)?;
        let Some(security) = &self.security else {
            return Err(PeerError(format!(
                "calls to other brokers on the inter-broker listener {} need inter.broker.client.config",
                self.listener
            )));
        };
        let failed =
            |e: &dyn std::fmt::Display| PeerError(format!("broker {broker} at {addr}: {e}"));
        if let Some(mut conn) = self.take_idle(broker, &addr) {
            match conn.call(version, req).await {
                Ok(resp) => {
                    self.keep(broker, conn);
                    return Ok(resp);
                }
                Err(e @ CliError::Timeout { .. }) => return Err(failed(&e)),
                Err(_) => {}
            }
        }
        let mut conn = Conn::open(&addr, security, self.timeout)
            .await
            .map_err(|e| failed(&e))?;
        let resp = conn.call(version, req).await.map_err(|e| failed(&e))?;
        self.keep(broker, conn);
        Ok(resp)
    }
}

/// How this broker connects to the others on the inter-broker listener: with the client
/// properties of `inter.broker.client.config` (TLS, SASL), or in plain TCP where the listener
/// is PLAINTEXT. A file that cannot be read or checked, or whose `security.protocol` is not
/// the listener's, stops the broker at start-up. A listener that is not PLAINTEXT without the
/// file gives None, with a warning: in a cluster of several brokers, transactions then
/// cannot end on partitions led by another broker than their coordinator, and their batches
/// there are refused unverified.
pub fn inter_broker_security(config: &Config) -> anyhow::Result<Option<Arc<ClientSecurity>>> {
    let Some(listener) = config
        .listeners
        .iter()
        .find(|l| l.name == config.inter_broker_listener)
    else {
        return Ok(None);
    };
    if let Some(path) = &config.inter_broker_client_config {
        let security = ClientSecurity::load(path)
            .map_err(|e| anyhow::anyhow!("inter.broker.client.config {}: {e}", path.display()))?;
        if security.protocol != listener.protocol {
            anyhow::bail!(
                "inter.broker.client.config {} says security.protocol {}, but the inter-broker listener {} is {}",
                path.display(),
                security.protocol.name(),
                listener.name,
                listener.protocol.name()
            );
        }
        return Ok(Some(Arc::new(security)));
    }
    if listener.protocol == SecurityProtocol::Plaintext {
        return Ok(Some(Arc::default()));
    }
    tracing::warn!(
        listener = %listener.name,
        protocol = listener.protocol.name(),
        "transaction markers and verification cannot reach other brokers on this inter-broker listener without inter.broker.client.config (the client properties to connect with): with several brokers, transactions whose partitions or groups are on other brokers than their coordinator cannot complete"
    );
    Ok(None)
}
