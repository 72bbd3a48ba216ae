//! The errors of a reconcile. Those the user must fix (a bad spec, a missing Secret) are
//! reported in the resource's `Ready` condition; the others are retried with a backoff.

use kube::runtime::controller::Action;

use crate::admin::AdminError;
use crate::status::{RESYNC, RETRY};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("kafka admin: {0}")]
    Admin(#[from] AdminError),
    /// The spec cannot be turned into what it asks for; fixing the resource is the way out.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("cluster {0} not found in the namespace")]
    ClusterNotFound(String),
    #[error("secret {namespace}/{name}: {problem}")]
    Secret {
        namespace: String,
        name: String,
        problem: String,
    },
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("object has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// The `reason` of the `Ready` condition that reports this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Admin(AdminError::Unsupported { .. }) => "Unsupported",
            Error::Admin(AdminError::Unreachable { .. }) => "ClusterUnreachable",
            Error::Admin(AdminError::Refused { .. }) => "KafkaError",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::ClusterNotFound(_) => "ClusterNotFound",
            Error::Secret { .. } => "SecretError",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "KubernetesError",
            },
            Error::MissingField(_) => "InvalidObject",
        }
    }

    /// When to look at the resource again: a spec the user must fix waits for the
    /// resource to change; an unsupported feature comes back at the resync period, in case
    /// the brokers were upgraded; anything else is tried again soon.
    pub fn next_look(&self) -> Action {
        match self {
            Error::InvalidSpec(_) => Action::await_change(),
            Error::Admin(AdminError::Unsupported { .. }) => Action::requeue(RESYNC),
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.next_look(),
                _ => Action::requeue(RETRY),
            },
            _ => Action::requeue(RETRY),
        }
    }
}
