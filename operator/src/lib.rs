//! The Storefront operator.

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
