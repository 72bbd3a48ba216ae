//! Adapters of the [`ObjectStore`] port, built on the `object_store` crate.

mod common;
pub mod encrypted;
pub mod health;
pub mod local;
pub mod memory;
pub mod metered;
pub mod retrying;
pub mod s3;

use kafscale_core::ports::{ObjectStore, StoreError};
use std::sync::Arc;

use crate::location::{parse_location, Location};
pub use encrypted::{EncryptedObjectStore, EncryptionKeys};
pub use health::{HealthObjectStore, HealthPolicy, HealthState, HealthTracker};
pub use local::LocalObjectStore;
pub use memory::MemoryObjectStore;
pub use metered::{MeteredObjectStore, ObjectStoreMetrics};
pub use retrying::{RetryPolicy, RetryingObjectStore, TimeoutObjectStore};
pub use s3::{S3Encryption, S3ObjectStore, S3Settings};

/// Opens the object store named by `url`:
/// - `memory://`: in memory, lost with the process;
/// - `file:///abs/dir` or a plain directory path: a local directory, created if missing;
///   fails if it cannot be created or written.
/// - `s3://bucket[/prefix]`: S3 or an S3-compatible service, configured by the standard
///   `AWS_*` environment (see [`S3ObjectStore`]).
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    object_store_from_url_with(url, &S3Settings::default())
}

/// [`object_store_from_url`] with settings of S3 beyond the `AWS_*` environment (a CA
/// bundle, server-side encryption). Other stores do not use `s3`.
pub fn object_store_from_url_with(
    url: &str,
    s3: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let location = parse_location(url, "file").map_err(|message| StoreError::Fatal { message })?;
    match location {
        Location::Memory => Ok(Arc::new(MemoryObjectStore::new())),
        Location::Dir(dir) => Ok(Arc::new(LocalObjectStore::open(dir)?)),
        Location::Other { scheme } if scheme == "s3" => {
            let rest = url.trim().split_once("://").map_or("", |(_, rest)| rest);
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            Ok(Arc::new(S3ObjectStore::open(bucket, prefix, s3.clone())?))
        }
        Location::Other { scheme } => Err(StoreError::Fatal {
            message: format!(
                "object store url {url:?}: unknown scheme {scheme:?} (expected memory://, \
                 file:///abs/dir, s3://bucket/prefix or a directory path)"
            ),
        }),
    }
}
