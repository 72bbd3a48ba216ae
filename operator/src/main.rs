//! `kafscale-operator [run]` watches the KafScale resources in every namespace;
//! `kafscale-operator crds [--dir DIR]` writes the CRD manifests generated from the types.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kafscale_operator::admin::KafkaClientAdmin;
use kafscale_operator::{controller, crd, Context};

#[derive(Parser)]
#[command(
    name = "kafscale-operator",
    version,
    about = "Kubernetes operator of KafScale"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile KafscaleCluster, KafscaleTopic and KafscaleUser resources (the default)
    Run,
    /// Write the CRD manifests (one YAML file per resource) into a directory, or print them
    Crds {
        /// Directory to write into; stdout when unset
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(),
        Command::Crds { dir } => crds(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crds(dir: Option<PathBuf>) -> anyhow::Result<()> {
    for (file, yaml) in crd::manifests()? {
        match &dir {
            Some(dir) => std::fs::write(dir.join(file), yaml)?,
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = kube::Client::try_default().await?;
        let ctx = Arc::new(Context::new(client, Arc::new(KafkaClientAdmin)));
        controller::run(ctx).await;
        Ok(())
    })
}
