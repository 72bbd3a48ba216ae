//! The `kafscale` command.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use kafscale::config::{self, Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "kafscale",
    version,
    about = "Kafka-compatible streaming on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (default: single node, data in ./kafscale-data).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(kafscale::cli::Command),
}

/// The settings flags (named ones, `--set`) are added from the registry in [`command`].
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The command line, with `serve`'s settings flags and their help from the registry.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", config::serve_flags)
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

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => {
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
            init_tracing(config.log_format);
            serve(config)
        }
        Command::Client(cmd) => kafscale::cli::run(cmd),
    }
}

fn serve(config: Config) -> ExitCode {
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
        let broker = match kafscale::broker::start(config).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot start: {e:#}");
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        kafscale::broker::shutdown_signal().await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}
