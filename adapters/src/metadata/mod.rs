//! Adapters of the [`MetadataStore`] port.
//!
//! The memory and embedded stores share everything but storage: [`state`] is the
//! transaction state machine (compares, operations, revisions) applied to either a
//! `BTreeMap` or a redb table, and [`engine`] holds leases, watches and the write lock.

pub mod embedded;
mod engine;
pub mod etcd;
mod leases;
pub mod memory;
mod metered;
mod state;
mod watch;

use kafscale_core::ports::{MetadataError, MetadataStore};
use std::sync::Arc;

use crate::location::{parse_location, Location};
pub use embedded::EmbeddedMetadataStore;
pub use etcd::{EtcdMetadataStore, EtcdOptions, EtcdSettings, EtcdTls};
pub use memory::MemoryMetadataStore;
pub use metered::{MetadataMetrics, MeteredMetadataStore};

/// Opens the metadata store named by `url`:
/// - `memory://`: in memory, lost with the process;
/// - `embedded:///abs/dir` or a plain directory path: durable single-node store in
///   `<dir>/metadata.redb`, the directory created if missing.
///
/// `etcd://host:2379,...` needs a connection: use [`connect_metadata_store`].
pub fn metadata_store_from_url(url: &str) -> Result<Arc<dyn MetadataStore>, MetadataError> {
    let location =
        parse_location(url, "embedded").map_err(|message| MetadataError::Fatal { message })?;
    match location {
        Location::Memory => Ok(Arc::new(MemoryMetadataStore::new())),
        Location::Dir(dir) => Ok(Arc::new(EmbeddedMetadataStore::open(dir)?)),
        Location::Other { scheme } if scheme == "etcd" => Err(MetadataError::Fatal {
            message: format!("metadata store url {url:?}: etcd needs connect_metadata_store"),
        }),
        Location::Other { scheme } => Err(MetadataError::Fatal {
            message: format!(
                "metadata store url {url:?}: unknown scheme {scheme:?} (expected memory://, \
                 embedded:///abs/dir or a directory path)"
            ),
        }),
    }
}

/// Opens the metadata store named by `url`: everything [`metadata_store_from_url`] accepts,
/// plus `etcd://[user:password@][https://]host:port[,...][/prefix]`, which connects and
/// checks that etcd answers.
pub async fn connect_metadata_store(url: &str) -> Result<Arc<dyn MetadataStore>, MetadataError> {
    connect_metadata_store_with(url, &EtcdOptions::default()).await
}

/// [`connect_metadata_store`] with what the URL does not say about etcd: TLS and
/// credentials. Other stores do not use `etcd`.
pub async fn connect_metadata_store_with(
    url: &str,
    etcd: &EtcdOptions,
) -> Result<Arc<dyn MetadataStore>, MetadataError> {
    let trimmed = url.trim();
    if let Some(rest) = trimmed.strip_prefix("etcd://") {
        let settings = EtcdSettings::parse(rest)?;
        return Ok(Arc::new(
            EtcdMetadataStore::connect(settings, etcd.clone()).await?,
        ));
    }
    metadata_store_from_url(url)
}
