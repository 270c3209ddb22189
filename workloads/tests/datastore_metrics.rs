//! The datastore and broker client metrics against real servers: after a store call, a cache
//! call and a publish/consume on the bus, `/metrics` has
//! `storefront_datastore_requests_total{service,datastore,operation,outcome}` and
//! `storefront_datastore_request_duration_seconds{service,datastore}` with the right labels.
//!
//! Needs `DATABASE_URL`, `DATABASE_READ_REPLICA_URL`, `REDIS_URL` and `NATS_URL` (run by
//! `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::time::Duration;

use prometheus_client::registry::Registry;
use sqlx::AssertSqlSafe;
use storefront_workloads::{
    catalog::{
        cache::{CacheMetrics, ProductCache},
        postgres::PgCatalog,
        seed::generate,
    },
    events::{Bus, EventMetrics, Handled},
};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encodes");
    out
}

/// The value of the series `name{labels}` (0 when it is not there).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn requests(text: &str, datastore: &str, operation: &str, outcome: &str) -> f64 {
    value(
        text,
        &format!(
            r#"storefront_datastore_requests_total{{service="catalog",datastore="{datastore}",operation="{operation}",outcome="{outcome}"}}"#
        ),
    )
}

fn timed(text: &str, datastore: &str) -> f64 {
    value(
        text,
        &format!(
            r#"storefront_datastore_request_duration_seconds_count{{service="catalog",datastore="{datastore}"}}"#
        ),
    )
}

#[tokio::test]
async fn store_cache_and_bus_calls_are_counted_by_datastore_operation_and_outcome() {
    let mut registry = Registry::default();
    // What every service's start does (the service label is the process's: catalog here).
    storefront_workloads::metrics::install(&mut registry, "catalog");

    // PostgreSQL primary: a write and a read, then a failing read (no such table).
    let id = std::process::id();
    let schema = format!("it_ds_metrics_{id}");
    let primary = PgCatalog::connect(&env("DATABASE_URL"), &schema, 2)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(primary.pool())
    .await
    .expect("clean schema");
    primary.migrate().await.expect("migrates");
    let products = generate(3, 5);
    primary.upsert(&products).await.expect("loads");
    let sku = &products[0].sku;
    assert!(primary.get(sku).await.expect("reads").is_some());
    let missing = PgCatalog::connect(&env("DATABASE_URL"), &format!("it_ds_none_{id}"), 1)
        .await
        .expect("connects");
    assert!(missing.get(sku).await.is_err(), "no products table there");

    // The read replica: its calls count as postgres-replica (it may lag the migration: retry).
    let replica = PgCatalog::connect(&env("DATABASE_READ_REPLICA_URL"), &schema, 1)
        .await
        .expect("connects to the replica")
        .replica();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !matches!(replica.get(sku).await, Ok(Some(_))) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica never had the product"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Redis: a write and a hit.
    let cache = ProductCache::new(
        &env("REDIS_URL"),
        &format!("it-ds-{id}"),
        CacheMetrics::default(),
    )
    .expect("url");
    cache.put(&products).await;
    assert!(cache.get(sku).await.is_some(), "a hit after the write");

    // NATS: a publish and its delivery to a consumer.
    let shop = format!("it-ds-{id}");
    let bus = Bus::connect(&env("NATS_URL"), &shop, EventMetrics::default())
        .await
        .expect("connects to NATS");
    bus.publish("orders", "OrderCreated", &format!("o-{id}"), b"{}".to_vec())
        .await
        .expect("publishes");
    let (seen, mut delivered) = tokio::sync::mpsc::unbounded_channel();
    let consumer = bus.clone();
    let consuming = tokio::spawn(async move {
        consumer
            .consume("it-ds", "orders.>", 1, move |subject, _| {
                let seen = seen.clone();
                async move {
                    let _ = seen.send(subject);
                    Ok(Handled::Done)
                }
            })
            .await
    });
    let subject = tokio::time::timeout(Duration::from_secs(10), delivered.recv())
        .await
        .expect("delivered within 10 s")
        .expect("a subject");
    assert_eq!(subject, format!("{shop}.orders.OrderCreated"));
    // The delivery is counted once it is acknowledged, just after the handler.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while requests(&text(&registry), "nats", "deliver", "ok") < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "no deliver counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consuming.abort();

    let out = text(&registry);
    assert_eq!(
        requests(&out, "postgres", "upsert_products", "ok"),
        1.0,
        "{out}"
    );
    assert_eq!(
        requests(&out, "postgres", "get_product", "ok"),
        1.0,
        "{out}"
    );
    assert_eq!(
        requests(&out, "postgres", "get_product", "error"),
        1.0,
        "{out}"
    );
    assert!(
        requests(&out, "postgres-replica", "get_product", "ok") >= 1.0,
        "{out}"
    );
    assert_eq!(requests(&out, "redis", "put_products", "ok"), 1.0, "{out}");
    assert_eq!(requests(&out, "redis", "get_product", "ok"), 1.0, "{out}");
    assert_eq!(requests(&out, "nats", "publish", "ok"), 1.0, "{out}");
    assert_eq!(requests(&out, "nats", "deliver", "ok"), 1.0, "{out}");
    // Every call that waited on its datastore is timed; a delivery is counted, not timed.
    assert_eq!(timed(&out, "postgres"), 3.0, "{out}");
    assert!(timed(&out, "postgres-replica") >= 1.0, "{out}");
    assert_eq!(timed(&out, "redis"), 2.0, "{out}");
    assert_eq!(timed(&out, "nats"), 1.0, "{out}");
    // Nothing was mislabelled as another service.
    assert!(
        out.lines()
            .filter(|l| l.starts_with("storefront_datastore_"))
            .all(|l| l.contains(r#"service="catalog""#)),
        "{out}"
    );
}
