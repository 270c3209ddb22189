//! `storefront-workloads catalog` and the catalog part of `migrate`: wires settings,
//! PostgreSQL (primary, and the read replica when named), the search index rebuilt at start,
//! the gRPC server and the operations endpoints ([`Lifecycle`]).

use std::sync::Arc;

use anyhow::{Context, Result};

use super::{
    cache::{CacheMetrics, ProductCache},
    grpc::{Catalog, serve},
    postgres::PgCatalog,
    search::SearchIndex,
};
use crate::seed;
use storefront_platform::config::{CatalogSeedArgs, CommonArgs};
use storefront_platform::ops::Lifecycle;

/// Creates the products table.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgCatalog::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(
        schema = common.database_schema()?,
        "catalog schema migrated"
    );
    Ok(())
}

/// Runs the catalog until SIGTERM and the drain are over.
pub async fn run(common: CommonArgs, seeding: CatalogSeedArgs) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let keys = common.token_keys(&storefront)?;
    common.install_tls()?;
    let seeding = seeding.seed()?;

    let (grpc, life, cache) = Lifecycle::start_service(&common, "catalog", |registry| {
        let cache = match &common.redis_url {
            Some(url) => Some(
                ProductCache::new(url, &common.bus_name()?, CacheMetrics::register(registry))
                    .context("invalid REDIS_URL")?,
            ),
            None => None,
        };
        Ok(cache)
    })
    .await?;
    let primary = PgCatalog::connect(url, schema, 8).await?;
    primary.migrate().await?;
    if let Some((number, products)) = seeding
        && primary.count().await? == 0
    {
        let catalog = seed::generate(number, products);
        primary.upsert(&catalog).await?;
        if let Some(cache) = &cache {
            cache.put(&catalog).await;
        }
        tracing::info!(seed = number, products, "loaded the generated catalog");
    }
    let reads = match &common.database_read_replica_url {
        Some(replica) => PgCatalog::connect(replica, schema, 8).await?.replica(),
        None => primary.clone(),
    };
    let catalog = Arc::new(Catalog {
        primary,
        reads,
        index: SearchIndex::new()?,
        cache,
    });
    let indexed = catalog
        .reindex()
        .await
        .map_err(|s| anyhow::anyhow!("failed to build the search index: {}", s.message()))?;
    tracing::info!(%storefront, products = indexed, "catalog ready");
    let verifier = Arc::new(keys.verifier);
    life.serve(|shutdown| serve(grpc, catalog, verifier, shutdown))
        .await
}
