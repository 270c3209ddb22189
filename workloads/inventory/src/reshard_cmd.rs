//! `storefront-workloads reshard <step>`: one step of a resharding's data handoff
//! ([`super::handoff`]), run by the operator as a Kubernetes Job per step. It prints what the
//! step did as one JSON line and writes the same line to the container's termination message
//! (`/dev/termination-log`), where the operator reads it.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::handoff::Handoff;

/// A step of the handoff.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Copy the moved keys to their new owners (shards keep serving).
    Copy,
    /// Compare the moved keys between old and new owners.
    Verify,
    /// Switch owners in one transaction (the write pause).
    Switch,
    /// Drop the schemas of shards `--to`..`--from` once empty (going down).
    Retire,
}

/// `reshard` settings.
#[derive(Args, Debug)]
pub struct ReshardArgs {
    /// The step to run.
    pub step: Step,
    /// The shop's database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Shard schemas are `<prefix><index>`, the ring `<prefix>ring`.
    #[arg(long, env = "SHARD_SCHEMA_PREFIX")]
    pub prefix: String,
    /// Shards before.
    #[arg(long)]
    pub from: u32,
    /// Shards after.
    #[arg(long)]
    pub to: u32,
    /// The ring's epoch after the switch.
    #[arg(long)]
    pub epoch: i64,
    /// Where to write the result for the operator.
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: std::path::PathBuf,
}

/// Runs one step; prints its result.
pub async fn run(args: ReshardArgs) -> Result<()> {
    let h = Handoff::connect(&args.database_url, &args.prefix)
        .await
        .context("failed to connect the handoff")?;
    let (from, to) = (args.from, args.to);
    let result = match args.step {
        Step::Copy => {
            json!({"step": "copy", "epoch": args.epoch, "progress": h.copy(from, to).await?})
        }
        Step::Verify => {
            json!({"step": "verify", "epoch": args.epoch, "progress": h.verify(from, to).await?})
        }
        Step::Switch => {
            json!({"step": "switch", "epoch": args.epoch, "switched": h.switch(from, to, args.epoch).await?})
        }
        Step::Retire => {
            for index in to..from {
                h.retire(index).await?;
            }
            json!({"step": "retire", "epoch": args.epoch, "retired": (to..from).collect::<Vec<_>>()})
        }
    };
    let line = result.to_string();
    println!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .open(&args.termination_log)
    {
        // The termination message holds 4 KiB: the result is a few hundred bytes.
        let _ = writeln!(f, "{line}");
    }
    Ok(())
}
