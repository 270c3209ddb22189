//! `storefront-workloads recommendations` and its part of `migrate`.

use std::sync::Arc;

use anyhow::Result;

use super::{bus, grpc::serve, postgres::PgRecommendations};
use storefront_platform::config::{BusArgs, CommonArgs};
use storefront_platform::events::{Bus, EventKeys, EventMetrics};
use storefront_platform::ops::Lifecycle;

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
    let keys = common.token_keys(&storefront)?;
    common.install_tls()?;
    let (concurrency, _) = bus_args.checked()?;

    let (grpc, life, metrics) = Lifecycle::start_service(&common, "recommendations", |r| {
        Ok(EventMetrics::register(r))
    })
    .await?;
    let store = PgRecommendations::connect(url, schema, 8).await?;
    store.migrate().await?;
    // Events signed with this service's key; only their publishers' are accepted.
    let bus = Bus::connect(nats, &common.bus_name()?, metrics)
        .await?
        .signed(EventKeys::new(keys.service.clone(), keys.verifier.clone()));
    tracing::info!(%storefront, "recommendations ready");
    let verifier = Arc::new(keys.verifier);
    let consumer = bus::consume(store.clone(), bus, concurrency);
    life.serve_with_workers(vec![("order events", Box::pin(consumer))], |shutdown| {
        serve(grpc, store, verifier, shutdown)
    })
    .await
}
