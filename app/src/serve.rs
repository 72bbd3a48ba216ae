//! `kafscale serve`: the configuration from its layers, logging, the runtime, and a broker
//! that runs until SIGTERM or Ctrl-C, then shuts down gracefully.

use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::broker::BrokerBuilder;
use crate::config::{self, LogFormat};

/// The flags of `kafscale serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Kafka listener, HOST:PORT [default: 127.0.0.1:9092]
    #[arg(long)]
    listen: Option<String>,
    /// Host and port clients should connect to [default: the listen address]
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Metrics and health listener, HOST:PORT [default: 127.0.0.1:9093]
    #[arg(long)]
    http_listen: Option<String>,
    /// Directory for the local object store and embedded metadata [default: ./kafscale-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory; nothing survives a restart
    #[arg(long)]
    ephemeral: bool,
    /// Object store URL (memory://, file:///path)
    #[arg(long)]
    object_store: Option<String>,
    /// Metadata store URL (memory://, embedded:///path)
    #[arg(long)]
    metadata: Option<String>,
    /// Broker id [default: the lowest id no live broker holds]
    #[arg(long)]
    broker_id: Option<i32>,
    /// TOML configuration file
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long)]
    log_format: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> BTreeMap<String, serde_json::Value> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("listen", self.listen.clone().map(Into::into));
        put(
            "advertised.listener",
            self.advertised_listener.clone().map(Into::into),
        );
        put("http.listen", self.http_listen.clone().map(Into::into));
        put(
            "data.dir",
            self.data_dir
                .as_ref()
                .map(|d| d.display().to_string().into()),
        );
        put("ephemeral", self.ephemeral.then_some(true.into()));
        put("object.store", self.object_store.clone().map(Into::into));
        put("metadata", self.metadata.clone().map(Into::into));
        put("broker.id", self.broker_id.map(Into::into));
        put("log.format", self.log_format.clone().map(Into::into));
        m
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Loads the configuration, starts the broker (`customize` may replace or wrap its stores:
/// the test broker injects faults this way) and serves until asked to stop.
pub fn run(args: ServeArgs, customize: impl FnOnce(BrokerBuilder) -> BrokerBuilder) -> ExitCode {
    let config = match config::load(args.config.as_deref(), config::process_env(), args.flags()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    serve(customize(BrokerBuilder::new(config)))
}

fn serve(builder: BrokerBuilder) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match builder.start().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot start: {e:#}");
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        crate::broker::shutdown_signal().await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}
