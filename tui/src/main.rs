//! `storefront-console`: see the library docs; this only parses the command line.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    storefront_console::run::run(storefront_console::run::Cli::parse()).await
}
