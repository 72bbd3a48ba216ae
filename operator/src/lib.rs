//! kafscale-operator: runs KafScale on Kubernetes. It reconciles three custom resources:
//! `KafscaleCluster` (brokers as a StatefulSet with a headless and a bootstrap Service and
//! a PodDisruptionBudget), `KafscaleTopic` and `KafscaleUser` (through the Kafka admin
//! API, behind the [`admin::KafkaAdmin`] trait).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let client = kube::Client::try_default().await?;
//! let ctx = Arc::new(kafscale_operator::Context::new(
//!     client,
//!     Arc::new(kafscale_operator::admin::KafkaClientAdmin),
//! ));
//! kafscale_operator::controller::run(ctx).await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod error;
pub mod status;
pub mod topic;
pub mod user;

use std::sync::Arc;

pub use error::Error;

/// The name the operator applies objects and writes statuses under.
pub const FIELD_MANAGER: &str = "kafscale-operator";

/// What every reconcile needs.
pub struct Context {
    pub client: kube::Client,
    /// The Kafka side of topics and users.
    pub admin: Arc<dyn admin::KafkaAdmin>,
}

impl Context {
    pub fn new(client: kube::Client, admin: Arc<dyn admin::KafkaAdmin>) -> Context {
        Context { client, admin }
    }
}
