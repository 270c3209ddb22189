//! `storefront-operator`: `run` the controllers, or print/write the CRDs (`crd`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "Storefront operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (leader-elected) with /metrics, /healthz and /readyz.
    Run(storefront_operator::run::RunArgs),
    /// Print the CRDs as YAML, or write one file per kind with --write DIR.
    Crd {
        /// Directory to write storefronts.yaml, serviceshards.yaml and flashsales.yaml into.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { write } => storefront_operator::crd_command(write.as_deref()),
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(storefront_operator::run::run(args))
        }
    }
}
