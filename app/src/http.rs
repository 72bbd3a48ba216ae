//! Probes and scraping over HTTP: `/healthz` (the process serves), `/readyz` (it can take
//! writes now) and `/metrics` (OpenMetrics text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// The content type of the OpenMetrics text exposition that `Metrics::render` produces.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the broker is shutting down: set first on shutdown, so that load balancers and
/// orchestrators stop sending clients here while partitions are handed over.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Why the broker cannot take writes now, if it cannot.
    pub fn problem(&self, ctx: &Context) -> Option<String> {
        if self.draining.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        if ctx.storage_health.state() == kafscale_adapters::HealthState::Unavailable {
            return Some("object store unavailable".into());
        }
        ctx.cluster.metadata_problem()
    }
}

#[derive(Clone)]
struct Probes {
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
}

pub fn router(ctx: Arc<Context>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(Probes { ctx, readiness })
}

/// Serves until `stop` is cancelled, then finishes the requests under way.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "http listener failed");
    }
}

async fn readyz(State(p): State<Probes>) -> Response {
    match p.readiness.problem(&p.ctx) {
        None => "ready\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(p): State<Probes>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        p.ctx.metrics.render(&p.ctx),
    )
        .into_response()
}
