//! The Kafka listener: accepts connections up to a limit and serves each on its own task.

pub mod apis;
pub mod connection;
pub mod dispatch;
pub mod error_codes;
pub mod versions;

use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;

/// Open connections beyond which new ones wait to be accepted.
const MAX_CONNECTIONS: usize = 10_000;

/// Accepts connections until `stop` is cancelled; each runs on a task of `connections`, which
/// shutdown waits for, and stops reading requests when `stop` is cancelled.
pub async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    connections: TaskTracker,
    stop: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let stop = stop.clone();
                ctx.metrics.connections.inc();
                ctx.metrics.open_connections.inc();
                connections.spawn(async move {
                    connection::serve(ctx.clone(), stream, peer, stop).await;
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
