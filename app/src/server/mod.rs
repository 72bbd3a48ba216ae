//! The Kafka listeners: each accepts connections up to a shared limit and serves each on
//! its own task, after a TLS handshake on TLS listeners.

pub mod apis;
mod auth;
pub mod connection;
pub mod dispatch;
pub mod error_codes;
pub mod session;
pub mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;
use crate::security::tls::RELOAD_CHECK;
use crate::security::{principal, Principal};
use session::{Listener, Session};

/// Open connections (of all listeners) beyond which new ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Bytes of a TLS connection read ahead of the frame being read.
const TLS_READ_BUFFER: usize = 256 << 10;
/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections of one listener until `stop` is cancelled; each runs on a task of
/// `connections`, which shutdown waits for, and stops reading requests when `stop` is
/// cancelled. `limit` is shared by all listeners.
pub async fn accept_loop(
    ctx: Arc<Context>,
    listener: Arc<Listener>,
    socket: TcpListener,
    limit: Arc<Semaphore>,
    connections: TaskTracker,
    stop: CancellationToken,
) {
    if listener.tls.is_some() {
        tokio::spawn(reload_certificates(listener.clone(), stop.clone()));
    }
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let stop = stop.clone();
                ctx.metrics.connections.inc();
                ctx.metrics.open_connections.inc();
                let listener = listener.clone();
                connections.spawn(async move {
                    open(ctx.clone(), listener, stream, peer, stop).await;
                    ctx.metrics.open_connections.dec();
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves an accepted connection: plaintext at once, TLS after its handshake.
async fn open(
    ctx: Arc<Context>,
    listener: Arc<Listener>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let Some(certificates) = &listener.tls else {
        let (reader, writer) = stream.into_split();
        let session = Session::new(listener, peer, Principal::anonymous());
        connection::serve(ctx, reader, writer, session, stop).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.current());
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let tls = match tokio::select! { h = handshake => h, _ = stop.cancelled() => return } {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // Plaintext or garbage on a TLS port, an unknown CA, an expired certificate.
            tracing::warn!(%peer, listener = %listener.name, error = %e, "TLS handshake failed; closing connection");
            ctx.metrics.refused_request("tls_handshake");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, listener = %listener.name, "TLS handshake timed out; closing connection");
            ctx.metrics.refused_request("tls_handshake");
            return;
        }
    };
    let principal = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => Principal::anonymous(),
        Some(cert) => {
            let subject = principal::certificate_subject(cert.as_ref());
            let name = subject.as_deref().and_then(|s| {
                listener
                    .principal_rules
                    .as_ref()
                    .and_then(|rules| rules.apply(s))
            });
            match name {
                Some(name) => Principal::user(&name),
                None => {
                    tracing::warn!(%peer, listener = %listener.name, subject = ?subject, "client certificate subject matches no ssl.principal.mapping.rules; closing connection");
                    ctx.metrics.authentication_failed();
                    return;
                }
            }
        }
    };
    // Frames are read a size prefix, then a body, at a time: through a buffer, each read is
    // a copy instead of a pass through the split's lock and rustls.
    let (reader, writer) = tokio::io::split(tls);
    let reader = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, reader);
    let session = Session::new(listener, peer, principal);
    if session.listener.protocol == crate::config::SecurityProtocol::Ssl
        && session.principal != Principal::anonymous()
    {
        ctx.metrics.authentication_succeeded();
        crate::audit::authentication(
            &ctx,
            &session,
            Some(&session.principal),
            "client certificate",
        );
    }
    connection::serve(ctx, reader, writer, session, stop).await;
}

/// Checks the listener's certificate files for changes until `stop`.
async fn reload_certificates(listener: Arc<Listener>, stop: CancellationToken) {
    let Some(certificates) = &listener.tls else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_CHECK) => {}
            _ = stop.cancelled() => return,
        }
        certificates.reload_if_changed(&listener.name);
    }
}
