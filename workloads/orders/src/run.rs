//! `storefront-workloads orders` and the orders part of `migrate`: wires settings,
//! PostgreSQL, the event bus (outbox relay, reply consumers, timeouts), the gRPC server and
//! the operations endpoints.

use std::{sync::Arc, time::Duration};

use anyhow::Result;

use super::{args::OrderArgs, bus, grpc::serve, postgres::PgOrders};
use storefront_platform::config::{BusArgs, CommonArgs};
use storefront_platform::events::{Bus, EventKeys, EventMetrics};
use storefront_platform::ops::Lifecycle;

/// Connections per orders pod for the API (create, get, list).
const POOL_SIZE: u32 = 16;
/// Connections per orders pod for the saga (relay, consumers, sweeper): a pool of its own,
/// so a burst of replies never makes a shopper's request wait for a connection.
const SAGA_POOL_SIZE: u32 = 8;
/// How often pending orders are checked for the timeout.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Creates the orders schema and tables.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgOrders::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(schema = common.database_schema()?, "orders schema migrated");
    Ok(())
}

/// Runs orders until SIGTERM and the drain are over.
pub async fn run(common: CommonArgs, bus_args: BusArgs, order_args: OrderArgs) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let nats = common.nats_url()?;
    let keys = common.token_keys(&storefront)?;
    common.install_tls()?;
    let (concurrency, timeout) = bus_args.checked()?;
    let pending_cap = order_args.pending_cap()?;

    let (grpc, life, metrics) =
        Lifecycle::start_service(&common, "orders", |r| Ok(EventMetrics::register(r))).await?;
    let mut store = PgOrders::connect(url, schema, POOL_SIZE).await?;
    store.migrate().await?;
    if let Some(cap) = pending_cap {
        store = store.with_pending_cap(cap);
    }
    let saga_store = PgOrders::connect(url, schema, SAGA_POOL_SIZE).await?;
    // Events signed with this service's key; only their publishers' are accepted.
    let bus = Bus::connect(nats, &common.bus_name()?, metrics)
        .await?
        .signed(EventKeys::new(keys.service.clone(), keys.verifier.clone()));
    tracing::info!(%storefront, timeout_s = timeout.as_secs(), ?pending_cap, "orders ready");
    let verifier = Arc::new(keys.verifier);
    let workers: Vec<storefront_platform::ops::Worker> = vec![
        (
            "outbox relay",
            Box::pin(bus::relay(saga_store.clone(), bus.clone())),
        ),
        (
            "reply consumers",
            Box::pin(bus::consume_replies(saga_store.clone(), bus, concurrency)),
        ),
        (
            "timeout sweeper",
            Box::pin(bus::sweep_timeouts(saga_store, timeout, SWEEP_EVERY)),
        ),
    ];
    life.serve_with_workers(workers, |shutdown| {
        serve(grpc, Arc::new(store), verifier, shutdown)
    })
    .await
}
