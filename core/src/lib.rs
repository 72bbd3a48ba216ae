//! kafscale-core: the domain of KafScale.
//!
//! Knows partitions, offsets, leader epochs, flush objects and the three ports (object store,
//! metadata store, clock); knows no Kafka wire types, no S3 and no etcd.

pub mod acl;
pub mod acl_store;
pub mod backup;
pub mod batch;
pub mod broker_config;
pub mod checkpoint_format;
pub mod cluster;
pub mod error;
pub mod group;
pub mod log;
pub mod object_format;
pub mod ports;
pub mod records;
pub mod retry;
pub mod schema;
pub mod segment;
pub mod settings;
pub mod topic;
pub mod topic_config;
pub mod topic_settings;
pub mod txn;
pub mod types;
pub mod unpack;
pub mod users;

pub use error::{Error, Result};
pub use types::*;
