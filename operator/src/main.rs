//! `storefront-operator`: `run` the controllers, or print/write the CRDs (`crd`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Storefront operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    }
}
