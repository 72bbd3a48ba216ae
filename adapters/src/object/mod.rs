//! Adapters of the [`ObjectStore`] port, built on the `object_store` crate.

mod common;
pub mod local;
pub mod memory;

use kafscale_core::ports::{ObjectStore, StoreError};
use std::sync::Arc;

use crate::location::{parse_location, Location};
pub use local::LocalObjectStore;
pub use memory::MemoryObjectStore;

/// Opens the object store named by `url`:
/// - `memory://`: in memory, lost with the process;
/// - `file:///abs/dir` or a plain directory path: a local directory, created if missing;
///   fails if it cannot be created or written.
///
/// `s3://bucket/prefix` is recognised but not supported yet.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let location = parse_location(url, "file").map_err(|message| StoreError::Fatal { message })?;
    match location {
        Location::Memory => Ok(Arc::new(MemoryObjectStore::new())),
        Location::Dir(dir) => Ok(Arc::new(LocalObjectStore::open(dir)?)),
        // The S3 adapter goes here: object_store's `AmazonS3Builder` with the bucket, prefix
        // and endpoint from the URL (and config for MinIO), behind the same `Backend`.
        Location::Other { scheme } if scheme == "s3" => Err(StoreError::Fatal {
            message: format!("object store url {url:?}: s3 is not supported yet"),
        }),
        Location::Other { scheme } => Err(StoreError::Fatal {
            message: format!(
                "object store url {url:?}: unknown scheme {scheme:?} (expected memory://, \
                 file:///abs/dir or a directory path)"
            ),
        }),
    }
}
