//! `storefront-workloads recommendations` and its part of `migrate`.

use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::{grpc::serve, postgres::PgRecommendations, saga};
use crate::{
    config::{BusArgs, CommonArgs},
    events::{Bus, EventMetrics},
    ops::Lifecycle,
};

/// Creates the schema and tables.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store =
        PgRecommendations::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(
        schema = common.database_schema()?,
        "recommendations schema migrated"
    );
    Ok(())
}

/// Runs recommendations until SIGTERM and the drain are over.
pub async fn run(common: CommonArgs, bus_args: BusArgs) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let nats = common.nats_url()?;
    let keys = common.signing_keys()?;
    common.install_tls()?;
    let (concurrency, _) = bus_args.checked()?;

    let grpc = TcpListener::bind(common.grpc_addr)
        .await
        .with_context(|| format!("failed to listen on {}", common.grpc_addr))?;
    let mut registry = Registry::default();
    crate::metrics::install(&mut registry, "recommendations");
    let metrics = EventMetrics::register(&mut registry);
    let life = Lifecycle::start(common.http_addr, common.drain(), registry).await?;
    let store = PgRecommendations::connect(url, schema, 8).await?;
    store.migrate().await?;
    let bus = Bus::connect(nats, &common.bus_name()?, metrics).await?;
    tracing::info!(%storefront, "recommendations ready");
    let verifier = Arc::new(keys.verifier(&storefront));
    let consumer = saga::consume(store.clone(), bus, concurrency);
    life.serve_with_workers(vec![("order events", Box::pin(consumer))], |shutdown| {
        serve(grpc, store, verifier, shutdown)
    })
    .await
}
