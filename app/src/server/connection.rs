//! One client connection: frames in, responses out in request order.
//!
//! Requests are decoded in arrival order and their order-sensitive part (staging produce
//! batches) runs before the next frame is read; the rest runs as a task of its own, so slow
//! requests (long-polling fetches, produces awaiting a flush) overlap. Every other request
//! waits for the one sent before it to finish (`dispatch::Sequence`), so that commits, group
//! and admin operations take effect in the order they were sent. A writer task awaits the
//! tasks one after another, which keeps responses in request order.
//!
//! On a SASL listener with `connections.max.reauth.ms`, a SaslHandshake on an authenticated
//! connection starts a re-authentication (`auth.rs`): requests read before it finish and are
//! answered first, requests after it are read once it is over. A session that has ended
//! closes the connection at the next request that is not a re-authentication (Kafka's
//! "expired session"); a client that cannot re-authenticate is disconnected when it ends.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::{Login, Start};
use super::dispatch::{self, Reply};
use super::session::Session;
use crate::context::Context;

/// Requests of one connection being processed at once; the reader waits beyond that. Produce
/// requests wait for the next flush (up to `flush.ms` + a PUT), and librdkafka with many
/// partitions and a short linger sends a request every few milliseconds, so this must cover
/// a flush's worth of them: 128 capped such a producer at ~1,200 requests/s.
const MAX_IN_FLIGHT: usize = 4096;
/// Request bytes of one connection held at once: frames and an estimate of their decoded
/// form (see `wire::Checked`), each counted up to this size so that a single maximal frame
/// still passes.
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;
/// The request header's api key of Produce (0), as the frame starts.
const PRODUCE_KEY: [u8; 2] = 0i16.to_be_bytes();

/// Serves one connection until the client closes it or `stop` is cancelled; either way the
/// requests already read are answered before the connection closes. On a SASL listener
/// the client authenticates first (`auth.rs`); `session` is who it is until then.
pub async fn serve<R, W>(
    ctx: Arc<Context>,
    mut reader: R,
    mut writer: W,
    session: Session,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer;
    let (tx, mut rx) = mpsc::channel::<(JoinHandle<Reply>, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let queue = Queue {
        tx,
        budget: Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES)),
    };
    let writer_task = tokio::spawn(async move {
        // The permit is released once the response is written.
        while let Some((task, _permit)) = rx.recv().await {
            match task.await {
                Ok(Reply::Frame(frame)) => {
                    if let Err(e) = writer.write_all(&frame).await {
                        tracing::debug!(%peer, error = %e, "write failed; closing");
                        return;
                    }
                }
                Ok(Reply::None) => {}
                Ok(Reply::Close(reason)) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    return;
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request task failed; closing connection");
                    return;
                }
            }
        }
        // Sent: make sure it is on the wire before the connection is dropped (TLS buffers).
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    });
    let mut session = Arc::new(session);
    // SASL listeners: the login the session rests on, renewed by re-authentications.
    let mut login: Option<Login> = None;
    let mut sequence = dispatch::Sequence::default();
    if session.listener.protocol.sasl() {
        let authenticated = tokio::select! {
            login = super::auth::authenticate(&ctx, &mut reader, &session, &queue, Start::Fresh) => login,
            _ = stop.cancelled() => None,
        };
        match authenticated {
            Some(l) => {
                session = Arc::new(Session::new(
                    session.listener.clone(),
                    peer,
                    l.principal.clone(),
                ));
                login = Some(l);
            }
            None => {
                drop(queue);
                let _ = writer_task.await;
                return;
            }
        }
    }
    let max = ctx.config.max_request_bytes;
    loop {
        // A session the client cannot renew ends the connection when it ends.
        let end = login
            .as_ref()
            .filter(|l| !l.renewable)
            .and_then(|l| l.expires);
        let read = tokio::select! {
            read = read_frame(&mut reader, max, MIN_FRAME) => read,
            _ = sleep_until(end) => {
                expired(&ctx, &session, "session ended; the client cannot re-authenticate");
                break;
            }
            _ = stop.cancelled() => break,
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "bad frame; closing connection");
                ctx.metrics.refused_request("frame");
                break;
            }
        };
        if frame.get(..2) == Some(&PRODUCE_KEY[..]) {
            // Staged in arrival order: after the requests in the sequence sent before it.
            tokio::select! {
                _ = sequence.settle() => {}
                _ = stop.cancelled() => break,
            }
            // The broker holds at most `produce.buffer.max.bytes` of produced data: beyond
            // it this connection is not read until flushes make room (TCP pushes back).
            ctx.log.wait_for_room().await;
        }
        let decoded = match dispatch::decode_frame(frame) {
            Ok(decoded) => decoded,
            Err(error) => {
                // Answer what is already in flight, then close.
                tracing::warn!(%peer, %error, "closing connection");
                ctx.metrics.refused_request(error.reason());
                break;
            }
        };
        if let Some(current) = &login {
            if decoded.api_key == ApiKey::SaslHandshake
                && decoded.version >= 1
                && current.expires.is_some()
            {
                let start = Start::Renew {
                    handshake: Box::new(decoded),
                    previous: current,
                };
                let renewed = tokio::select! {
                    login = super::auth::authenticate(&ctx, &mut reader, &session, &queue, start) => login,
                    _ = stop.cancelled() => None,
                };
                match renewed {
                    Some(l) => {
                        login = Some(l);
                        continue;
                    }
                    None => break,
                }
            }
            if current.expired(Instant::now()) {
                expired(&ctx, &session, "expired session");
                break;
            }
        }
        let weight = decoded.weight.clamp(1, MAX_IN_FLIGHT_BYTES) as u32;
        let task = dispatch::dispatch(&ctx, decoded, &session, &mut sequence).await;
        if !queue.push(task, weight).await {
            break;
        }
    }
    drop(queue);
    if let Err(e) = writer_task.await {
        tracing::error!(%peer, error = %e, "connection writer failed");
    }
}

/// The writer's queue: answers (tasks that produce them) in request order, each holding a
/// share of the connection's in-flight budget until it is written.
pub(super) struct Queue {
    tx: mpsc::Sender<(JoinHandle<Reply>, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
}

impl Queue {
    /// Queues an answer behind those already queued, counted as `weight` bytes (waiting for
    /// room); `false` once the writer is gone.
    pub(super) async fn push(&self, task: JoinHandle<Reply>, weight: u32) -> bool {
        let Ok(permit) = self.budget.clone().acquire_many_owned(weight).await else {
            return false;
        };
        self.tx.send((task, permit)).await.is_ok()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The session has ended: the requests already read are answered, then the connection is
/// closed, and the client reconnects and logs in again (Kafka's "expired session").
fn expired(ctx: &Context, session: &Session, reason: &str) {
    tracing::info!(peer = %session.peer, listener = %session.listener.name, principal = %session.principal, %reason, "closing connection");
    ctx.metrics.refused_request("expired_session");
}

/// A request header is at least this long: api key, version, correlation id.
const MIN_FRAME: usize = 8;

/// Reads one size-prefixed frame of at least `min` bytes. The size is checked before
/// anything is allocated.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    min: usize,
) -> Result<Option<Bytes>, String> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read failed: {e}")),
    }
    let len = i32::from_be_bytes(len);
    let size = usize::try_from(len).map_err(|_| format!("negative frame size {len}"))?;
    if size > max {
        return Err(format!(
            "frame of {size} bytes exceeds socket.request.max.bytes ({max})"
        ));
    }
    if size < min {
        return Err(format!(
            "frame of {size} bytes is shorter than a request header"
        ));
    }
    // Read into spare capacity: a frame of a megabyte is not zeroed first only to be
    // overwritten.
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        let limit = size - buf.len();
        let n = (&mut *reader)
            .take(limit as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("truncated frame: {e}"))?;
        if n == 0 {
            return Err(format!(
                "truncated frame: connection closed after {} of {size} bytes",
                buf.len()
            ));
        }
    }
    Ok(Some(buf.freeze()))
}
