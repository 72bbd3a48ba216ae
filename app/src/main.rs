//! The `kafscale` command.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

use kafscale::serve::ServeArgs;

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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => kafscale::serve::run(args, |broker| broker),
        Command::Client(cmd) => kafscale::cli::run(cmd),
    }
}
