//! kafscale: the Kafka protocol server, HTTP endpoint, configuration and CLI around the core
//! log.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = kafscale::config::load(None, kafscale::config::process_env(), Default::default())?;
//! let broker = kafscale::broker::start(config).await?;
//! println!("serving Kafka on {}", broker.kafka_addr);
//! broker.shutdown().await;
//! # Ok(()) }
//! ```

pub mod acl_codes;
pub mod audit;
pub mod broker;
pub mod cli;
pub mod config;
pub mod context;
pub mod errors;
pub mod handlers;
pub mod http;
pub mod inter_broker;
pub mod metrics;
pub mod security;
pub mod serve;
pub mod server;
pub mod txn_markers;
pub mod txn_verify;
pub mod wire;
