//! `storefront-workloads inventory` and the inventory part of `migrate`: wires settings,
//! PostgreSQL, the gRPC server and the operations endpoints, and drains on SIGTERM.

use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

use super::{
    grpc::{ShardPlace, serve},
    postgres::PgInventory,
};
use crate::{
    config::{CommonArgs, ConfigError, ShardArgs, required},
    ops::{self, Readiness},
};

/// Connections per shard pod.
const POOL_SIZE: u32 = 16;

fn schema(common: &CommonArgs) -> Result<&str, ConfigError> {
    required(
        common.database_schema.as_deref(),
        "--database-schema",
        "DATABASE_SCHEMA",
    )
}

/// Creates the shard's schema and tables.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgInventory::connect(common.database_url()?, schema(common)?, 2).await?;
    store.migrate().await?;
    tracing::info!(schema = schema(common)?, "inventory schema migrated");
    Ok(())
}

/// Runs one inventory shard until SIGTERM, then drains for up to `--drain-seconds`.
pub async fn run(common: CommonArgs, shard: ShardArgs) -> Result<()> {
    // Every setting is checked before anything starts.
    let storefront = common.storefront()?.to_string();
    let (index, count, epoch) = shard.place()?;
    let url = common.database_url()?;
    let schema = schema(&common)?;
    let keys = common.signing_keys()?;
    let place = ShardPlace {
        index,
        count,
        epoch,
    };

    let ready = Readiness::default();
    let http = TcpListener::bind(common.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", common.http_addr))?;
    let grpc = TcpListener::bind(common.grpc_addr)
        .await
        .with_context(|| format!("failed to listen on {}", common.grpc_addr))?;
    // The operations endpoints outlive the gRPC drain, so probes see "not ready" meanwhile.
    let (stop_ops, ops_stopped) = oneshot::channel::<()>();
    let ops_server = tokio::spawn(ops::serve(
        http,
        ops::router(ready.clone(), Registry::default()),
        async {
            let _ = ops_stopped.await;
        },
    ));

    let store = PgInventory::connect(url, schema, POOL_SIZE).await?;
    store.migrate().await?;
    ready.set(true);
    tracing::info!(%storefront, shard = index, shards = count, epoch, "inventory shard ready");

    let (signalled, mut on_signal) = watch::channel(false);
    let draining = ready.clone();
    let drain = common.drain();
    let served = serve(
        grpc,
        Arc::new(store),
        place,
        Arc::new(keys.verifier(&storefront)),
        async move {
            ops::shutdown_signal().await;
            draining.set(false);
            tracing::info!(seconds = drain.as_secs(), "draining");
            let _ = signalled.send(true);
        },
    );
    let deadline = async move {
        if on_signal.wait_for(|s| *s).await.is_ok() {
            tokio::time::sleep(drain).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = served => result.context("failed to serve gRPC")?,
        () = deadline => tracing::warn!("in-flight requests outlived the {drain:?} drain; stopping"),
    }
    let _ = stop_ops.send(());
    let _ = ops_server.await;
    Ok(())
}
