//! `storefront-workloads payments` and the payments part of `migrate`: wires settings,
//! the ledger in PostgreSQL, the simulated provider, the bus consumer, the gRPC server and
//! the operations endpoints.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;

use super::{bus, domain::SimulatedProvider, grpc::serve, postgres::PgLedger};
use crate::args::ProviderArgs;
use storefront_platform::config::{BusArgs, CommonArgs};
use storefront_platform::events::{Bus, EventKeys, EventMetrics};
use storefront_platform::ops::Lifecycle;

/// How long an in-flight charge is left alone before another delivery may take it over.
const LEASE: Duration = Duration::from_secs(30);

/// Creates the ledger's schema and table.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let ledger =
        PgLedger::connect(common.database_url()?, common.database_schema()?, 2, LEASE).await?;
    ledger.migrate().await?;
    tracing::info!(
        schema = common.database_schema()?,
        "payments schema migrated"
    );
    Ok(())
}

/// Runs payments until SIGTERM and the drain are over.
pub async fn run(common: CommonArgs, provider: ProviderArgs, bus_args: BusArgs) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let provider = SimulatedProvider::new(provider.provider()?)?;
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let nats = common.nats_url()?;
    let keys = common.token_keys(&storefront)?;
    common.install_tls()?;
    let (concurrency, _) = bus_args.checked()?;

    let (grpc, life, metrics) =
        Lifecycle::start_service(&common, "payments", |r| Ok(EventMetrics::register(r))).await?;
    let ledger = PgLedger::connect(url, schema, 16, LEASE).await?;
    ledger.migrate().await?;
    // Events signed with this service's key; only their publishers' are accepted.
    let bus = Bus::connect(nats, &common.bus_name()?, metrics)
        .await?
        .signed(EventKeys::new(keys.service.clone(), keys.verifier.clone()));
    tracing::info!(%storefront, "payments ready");
    let verifier = Arc::new(keys.verifier);
    let consumer = bus::consume(
        ledger.clone(),
        Arc::new(Mutex::new(provider)),
        bus,
        concurrency,
    );
    life.serve_with_workers(vec![("order events", Box::pin(consumer))], |shutdown| {
        serve(grpc, ledger, verifier, shutdown)
    })
    .await
}
