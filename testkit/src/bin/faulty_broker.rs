//! `kafscale-faulty serve ...`: the broker of `kafscale serve`, same flags and configuration,
//! with faults injected into its ports, so that end-to-end tests can show what real clients
//! do when they happen. The product binary carries no fault code.
//!
//! Faults are chosen by environment variables (not `KAFSCALE_*`, which the configuration
//! reads and would refuse):
//! - `FAULT_METADATA_LOST_REPLY_EVERY=N`: every N-th metadata transaction that records data
//!   is applied and then reported as failed, followed by a short outage
//!   ([`kafscale_testkit::lost_replies`]).

use clap::{FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;

use kafscale::serve::ServeArgs;
use kafscale_testkit::lost_replies::LostRepliesMetadataStore;

#[derive(Parser)]
#[command(
    name = "kafscale-faulty",
    about = "kafscale serve with injected faults (tests only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker, as `kafscale serve` does, with the faults the environment names.
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let matches = kafscale::serve::command::<Cli>().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Command::Serve(args) = cli.command;
    let lost_reply_every = match std::env::var("FAULT_METADATA_LOST_REPLY_EVERY") {
        Err(_) => None,
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                eprintln!("error: FAULT_METADATA_LOST_REPLY_EVERY: expected a positive integer, got {v:?}");
                return ExitCode::from(2);
            }
        },
    };
    kafscale::serve::run(args, &matches, move |broker| match lost_reply_every {
        Some(every) => broker.wrap_metadata_store(move |meta| {
            tracing::warn!(every, "TESTING: metadata transaction replies will be lost");
            Arc::new(LostRepliesMetadataStore::new(meta, every))
        }),
        None => broker,
    })
}
