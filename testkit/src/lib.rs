//! kafscale-testkit: test support shared by the crates of the workspace.
//!
//! [`conformance`] holds one suite per port, to run against every adapter:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use std::sync::Arc;
//! use kafscale_adapters::MemoryObjectStore;
//! use kafscale_testkit::conformance::{object_store_suite_with, ObjectStoreSuiteOptions};
//!
//! let options = ObjectStoreSuiteOptions { list_keys: 50, ..Default::default() };
//! object_store_suite_with(Arc::new(MemoryObjectStore::new()), options).await;
//! # }
//! ```

pub mod cluster;
pub mod conformance;
pub mod etcd;
pub mod faults;
pub mod lost_replies;
pub mod s3;
