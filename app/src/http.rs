//! A minimal HTTP endpoint for probes and scraping: `/healthz`, `/readyz`, `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::context::Context;

const MAX_REQUEST_HEAD: usize = 8 << 10;

pub async fn serve(
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(ctx, ready, stream).await {
                        tracing::debug!(error = %e, "http request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why the broker cannot take writes now, if it cannot.
fn not_ready(ctx: &Context, ready: &AtomicBool) -> Option<String> {
    if !ready.load(Ordering::SeqCst) {
        return Some("shutting down".into());
    }
    if ctx.storage_health.state() == kafscale_adapters::HealthState::Unavailable {
        return Some("object store unavailable".into());
    }
    ctx.cluster.metadata_problem()
}

async fn respond(
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
    mut stream: TcpStream,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow http client"))??;
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/readyz") => match not_ready(&ctx, &ready) {
            None => ("200 OK", "text/plain", "ready\n".to_owned()),
            Some(reason) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            ctx.metrics.render(&ctx),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
