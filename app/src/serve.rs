//! `kafscale serve`: the configuration from its layers, logging, the runtime, and a broker
//! that runs until SIGTERM or Ctrl-C, then shuts down gracefully.

use clap::{ArgMatches, Args, CommandFactory};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::broker::BrokerBuilder;
use crate::config::{self, LogFormat};

/// The flags of `kafscale serve` that are not settings; the settings flags (the named ones
/// and `--set KEY=VALUE`) and their help are added from the registry by [`command`].
#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The command line of a binary with a `serve` subcommand, with the settings flags added.
pub fn command<C: CommandFactory>() -> clap::Command {
    C::command().mut_subcommand("serve", config::serve_flags)
}

/// The broker's log on stderr (`RUST_LOG`, `log.format`) and, with `audit.log.file`, the
/// audit trail (target `kafscale::audit`) as JSON lines appended to that file instead.
fn init_tracing(format: LogFormat, audit_file: Option<&std::path::Path>) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let audit = match audit_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("audit.log.file {}: {e}", path.display()))?;
            if let Ok(off) = "kafscale::audit=off".parse() {
                filter = filter.add_directive(off);
            }
            let targets = tracing_subscriber::filter::Targets::new()
                .with_target("kafscale::audit", tracing::Level::INFO);
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(targets),
            )
        }
        None => None,
    };
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Text => log.with_filter(filter).boxed(),
        LogFormat::Json => log.json().with_filter(filter).boxed(),
    };
    tracing_subscriber::registry()
        .with(log)
        .with(audit)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// Loads the configuration, starts the broker (`customize` may replace or wrap its stores:
/// the test broker injects faults this way) and serves until asked to stop.
/// `matches` are those of the whole command line (from [`command`]).
pub fn run(
    args: ServeArgs,
    matches: &ArgMatches,
    customize: impl FnOnce(BrokerBuilder) -> BrokerBuilder,
) -> ExitCode {
    let flags = matches
        .subcommand_matches("serve")
        .map(config::flag_values)
        .unwrap_or_default();
    let config = match config::load(args.config.as_deref(), config::process_env(), flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_tracing(config.log_format, config.audit_log_file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    serve(customize(BrokerBuilder::new(config)))
}

/// A tokio runtime for a command: multi-threaded for the broker, one thread for a client
/// command. A failure is reported on stderr and becomes the exit code.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn serve(builder: BrokerBuilder) -> ExitCode {
    let runtime = match runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
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
