//! The operator's reconcilers against a simulated Kubernetes API ([`fake_api`]) and a
//! simulated Kafka cluster ([`fake_kafka`]); the manifests under `deploy/`.
//! Nothing here runs a real Kubernetes cluster.

#![allow(clippy::unwrap_used)]

mod admin_client;
mod cluster;
mod fake_api;
mod fake_kafka;
mod manifests;
mod real_users;
mod topics;
mod users;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub const NS: &str = "shop";

/// The `Ready` condition of a status.
pub fn ready(conditions: &[Condition]) -> &Condition {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition")
}
