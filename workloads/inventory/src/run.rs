//! `storefront-workloads inventory` and the inventory part of `migrate`: wires settings,
//! PostgreSQL, the shard's bus consumer, the gRPC server and the operations endpoints
//! ([`Lifecycle`]).

use std::sync::Arc;

use anyhow::Result;

use super::{
    bus,
    grpc::serve,
    ports::ShardPlace,
    postgres::{PgInventory, RingPlace},
};
use storefront_catalog::seed;
use storefront_platform::config::{BusArgs, CatalogSeedArgs, CommonArgs, ShardArgs};
use storefront_platform::events::{Bus, EventKeys, EventMetrics};
use storefront_platform::ops::Lifecycle;

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
pub async fn run(
    common: CommonArgs,
    shard: ShardArgs,
    bus_args: BusArgs,
    seeding: CatalogSeedArgs,
) -> Result<()> {
    // Every setting is checked before anything starts.
    let storefront = common.storefront()?.to_string();
    let (index, count, epoch) = shard.place()?;
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    let keys = common.token_keys(&storefront)?;
    common.install_tls()?;
    let nats = common.nats_url()?;
    let (concurrency, _) = bus_args.checked()?;
    let seeding = seeding.seed()?;
    let place = ShardPlace {
        index,
        count,
        epoch,
    };

    let (grpc, life, metrics) =
        Lifecycle::start_service(&common, "inventory", |r| Ok(EventMetrics::register(r))).await?;
    // A shard of a sharded inventory keeps the ring in the database (resharding switches
    // owners there); the flags' count and epoch only start the ring of a new shop.
    let store = match (shard.shard_index, RingPlace::of_schema(schema, index)) {
        (Some(_), Some(place)) => PgInventory::connect_shard(url, place, POOL_SIZE).await?,
        _ => PgInventory::connect(url, schema, POOL_SIZE).await?,
    };
    store.migrate_ring(count, epoch).await?;
    let store = Arc::new(store);
    if let Some((number, products)) = seeding {
        let owned: Vec<(String, i64)> = seed::generate(number, products)
            .into_iter()
            .filter(|p| storefront_crds::ring::shard_of(&p.sku, count) == index)
            .map(|p| (p.sku, p.stock))
            .collect();
        let added = store.stock_missing(&owned).await?;
        tracing::info!(
            seed = number,
            owned = owned.len(),
            added,
            "stocked the generated catalog"
        );
    }
    // Events signed with this service's key; only their publishers' are accepted.
    let bus = Bus::connect(nats, &common.bus_name()?, metrics)
        .await?
        .signed(EventKeys::new(keys.service.clone(), keys.verifier.clone()));
    tracing::info!(%storefront, shard = index, shards = count, epoch, "inventory shard ready");
    let verifier = Arc::new(keys.verifier);
    let consumer = bus::consume(store.clone(), bus, place, concurrency);
    life.serve_with_workers(vec![("order events", Box::pin(consumer))], |shutdown| {
        serve(grpc, store, place, verifier, shutdown)
    })
    .await
}
