//! The Storefront operator: a Storefront controller that turns a shop into running commerce
//! services, a ServiceShard controller that runs each shard's pods, pure desired-state
//! builders ([`build`]), pure decisions ([`decide`]: sizing, sales, resharding, status),
//! metrics and leader election.
//!
//! ```text
//!  plan ──► build::desired(storefront, sales, now) ──► controller::children::sync_all
//!                                                   │   (SSA + prune, kind by kind)
//!                                                   └► decide::status::compute ──► status (if changed)
//! ```

pub mod build;
pub mod controller;
pub mod decide;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod references;
pub mod run;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::Path;

use anyhow::Context as _;
use storefront_crds::crdgen;

/// `storefront-operator crd`: print every CRD, or write one file per kind into `dir`.
pub fn crd_command(dir: Option<&Path>) -> anyhow::Result<()> {
    match dir {
        None => print!("{}", crdgen::all_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            for (file, crd) in crdgen::crds() {
                let path = dir.join(file);
                std::fs::write(&path, crdgen::to_yaml(&crd)?)
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
