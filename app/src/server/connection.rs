//! One client connection: frames in, responses out in request order.
//!
//! Requests are decoded in arrival order and their order-sensitive part (staging produce
//! batches) runs before the next frame is read; the rest runs as a task of its own, so slow
//! requests (long-polling fetches, produces awaiting a flush) overlap. A writer task awaits
//! the tasks one after another, which keeps responses in request order.

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Reply};
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
/// requests already read are answered before the connection closes.
pub async fn serve(
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<(JoinHandle<Reply>, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES));
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
    });
    let max = ctx.config.max_request_bytes;
    loop {
        let read = tokio::select! {
            read = read_frame(&mut reader, max) => read,
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
        let weight = decoded.weight.clamp(1, MAX_IN_FLIGHT_BYTES) as u32;
        let Ok(permit) = budget.clone().acquire_many_owned(weight).await else {
            break;
        };
        let task = dispatch::dispatch(&ctx, decoded, peer.ip());
        if tx.send((task, permit)).await.is_err() {
            break;
        }
    }
    drop(tx);
    if let Err(e) = writer_task.await {
        tracing::error!(%peer, error = %e, "connection writer failed");
    }
}

/// Reads one size-prefixed frame. The size is checked before anything is allocated.
async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    max: usize,
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
    if size < 8 {
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
