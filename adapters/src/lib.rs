//! kafscale-adapters: the implementations of core's ports.
//!
//! - object storage: [`object::MemoryObjectStore`], [`object::LocalObjectStore`]
//!   (S3 to come), chosen by [`object_store_from_url`];
//! - metadata: [`metadata::MemoryMetadataStore`], [`metadata::EmbeddedMetadataStore`]
//!   (etcd to come), chosen by [`metadata_store_from_url`];
//! - [`SystemClock`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use kafscale_adapters::{metadata_store_from_url, object_store_from_url};
//! use kafscale_core::ports::{MetadataStoreExt, PutMode};
//!
//! let objects = object_store_from_url("memory://").expect("memory object store");
//! objects
//!     .put("flush/1", Bytes::from_static(b"batch"), PutMode::Create)
//!     .await
//!     .expect("put");
//! assert_eq!(objects.get("flush/1").await.expect("get"), Bytes::from_static(b"batch"));
//!
//! let metadata = metadata_store_from_url("memory://").expect("memory metadata store");
//! let outcome = metadata.put("brokers/1", Bytes::from_static(b"{}")).await.expect("put");
//! assert_eq!(outcome.revision, 1);
//! # }
//! ```
//!
//! Adapters keep their own errors private and report the port's error kinds.

pub mod clock;
mod error_chain;
mod location;
pub use location::redact_url;
pub mod metadata;
pub mod object;
mod request_metrics;

pub use clock::SystemClock;
pub use metadata::{
    connect_metadata_store, connect_metadata_store_with, metadata_store_from_url,
    EmbeddedMetadataStore, EtcdMetadataStore, EtcdOptions, EtcdTls, MemoryMetadataStore,
    MetadataMetrics, MeteredMetadataStore,
};
pub use object::{
    object_store_from_url, object_store_from_url_with, EncryptedObjectStore, EncryptionKeys,
    HealthObjectStore, HealthPolicy, HealthState, HealthTracker, LocalObjectStore,
    MemoryObjectStore, MeteredObjectStore, ObjectStoreMetrics, RetryPolicy, RetryingObjectStore,
    S3Encryption, S3ObjectStore, S3Settings, TimeoutObjectStore,
};
