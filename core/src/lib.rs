//! kafscale-core: the domain of KafScale.
//!
//! Knows partitions, offsets, leader epochs, flush objects and the three ports (object store,
//! metadata store, clock); knows no Kafka wire types, no S3 and no etcd.

pub mod ports;
pub mod types;

pub use types::*;
