//! The Kafka listener: accepts connections up to a limit and serves each on its own task.

pub mod apis;
pub mod connection;
pub mod dispatch;
pub mod error_codes;
pub mod versions;

use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::context::Context;

/// Open connections beyond which new ones wait to be accepted.
const MAX_CONNECTIONS: usize = 10_000;

pub async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                ctx.metrics.connections.inc();
                ctx.metrics.open_connections.inc();
                tokio::spawn(async move {
                    connection::serve(ctx.clone(), stream, peer).await;
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
