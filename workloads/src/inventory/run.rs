//! `storefront-workloads inventory` and the inventory part of `migrate`: wires settings,
//! PostgreSQL, the gRPC server and the operations endpoints ([`Lifecycle`]).

use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::{
    grpc::{ShardPlace, serve},
    postgres::PgInventory,
};
use crate::{
    config::{CommonArgs, ShardArgs},
    ops::Lifecycle,
};

/// Connections per shard pod.
const POOL_SIZE: u32 = 16;

/// Creates the shard's schema and tables.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgInventory::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(
        schema = common.database_schema()?,
        "inventory schema migrated"
    );
    Ok(())
}

/// Runs one inventory shard until SIGTERM, then drains for up to `--drain-seconds`.
pub async fn run(common: CommonArgs, shard: ShardArgs) -> Result<()> {
    // Every setting is checked before anything starts.
    let storefront = common.storefront()?.to_string();
    let (index, count, epoch) = shard.place()?;
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let keys = common.signing_keys()?;
    let place = ShardPlace {
        index,
        count,
        epoch,
    };

    let grpc = TcpListener::bind(common.grpc_addr)
        .await
        .with_context(|| format!("failed to listen on {}", common.grpc_addr))?;
    let life = Lifecycle::start(common.http_addr, common.drain(), Registry::default()).await?;
    let store = PgInventory::connect(url, schema, POOL_SIZE).await?;
    store.migrate().await?;
    tracing::info!(%storefront, shard = index, shards = count, epoch, "inventory shard ready");
    let verifier = Arc::new(keys.verifier(&storefront));
    life.serve(|shutdown| serve(grpc, Arc::new(store), place, verifier, shutdown))
        .await
}
