//! The `kafscale` command.

use clap::{FromArgMatches, Parser, Subcommand};
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
    let matches = kafscale::serve::command::<Cli>().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => kafscale::serve::run(args, &matches, |broker| broker),
        Command::Client(cmd) => kafscale::cli::run(cmd),
    }
}
