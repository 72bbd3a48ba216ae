//! kafscale-adapters: the implementations of core's ports.
//!
//! - object storage: [`object::MemoryObjectStore`], [`object::LocalObjectStore`]
//!   (S3 to come), chosen by [`object_store_from_url`];
//! - [`SystemClock`].
//!
//! Adapters keep their own errors private and report the port's error kinds.

pub mod clock;
mod location;
pub mod object;

pub use clock::SystemClock;
pub use object::{object_store_from_url, LocalObjectStore, MemoryObjectStore};
