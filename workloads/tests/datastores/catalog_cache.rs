//! The catalog's Redis product cache against real PostgreSQL and Redis servers: product reads
//! fill it, writes go through it, and the catalog answers from it.
//!
//! Needs `DATABASE_URL` and `REDIS_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use sqlx::AssertSqlSafe;
use storefront_workloads::catalog::{
    cache::{CacheMetrics, ProductCache, key},
    grpc::Catalog,
    postgres::PgCatalog,
    search::SearchIndex,
    seed::generate,
};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

#[tokio::test]
async fn product_reads_fill_the_cache_and_writes_go_through_it() {
    let shop = format!("it-cache-{}", std::process::id());
    let schema = format!("it_catalog_cache_{}", std::process::id());
    let primary = PgCatalog::connect(&env("DATABASE_URL"), &schema, 4)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(primary.pool())
    .await
    .expect("clean schema");
    primary.migrate().await.expect("migrates");
    let products = generate(9, 50);
    primary.upsert(&products).await.expect("loads");
    let metrics = CacheMetrics::default();
    let cache = ProductCache::new(&env("REDIS_URL"), &shop, metrics.clone()).expect("url");
    // A clean slate for this shop's keys.
    let mut redis = redis::Client::open(env("REDIS_URL"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects to Redis");
    for p in &products {
        let _: () = redis::AsyncCommands::del(&mut redis, key(&shop, &p.sku))
            .await
            .expect("del");
    }
    let catalog = Catalog {
        reads: primary.clone(),
        primary,
        index: SearchIndex::new().expect("index"),
        cache: Some(cache),
    };
    catalog.reindex().await.expect("indexes");

    // A miss reads PostgreSQL and fills the cache; the next read is a hit.
    let sku = &products[3].sku;
    let first = catalog.product(sku).await.expect("reads").expect("exists");
    assert_eq!(&first, &products[3]);
    assert_eq!((metrics.get("miss"), metrics.get("hit")), (1, 0));
    let cached: Option<String> = redis::AsyncCommands::get(&mut redis, key(&shop, sku))
        .await
        .expect("get");
    assert!(cached.is_some_and(|json| json.contains(sku.as_str())));
    assert_eq!(
        catalog.product(sku).await.expect("reads"),
        Some(first.clone())
    );
    assert_eq!(metrics.get("hit"), 1);

    // A write goes to PostgreSQL, the cache and the index: the next read sees the new price
    // from the cache, and PostgreSQL agrees.
    let mut changed = first.clone();
    changed.price_cents += 100;
    changed.name = "Zanzibar Special Edition".into();
    catalog
        .write(std::slice::from_ref(&changed))
        .await
        .expect("writes");
    assert_eq!(
        catalog.product(sku).await.expect("reads"),
        Some(changed.clone())
    );
    assert_eq!(metrics.get("hit"), 2);
    assert_eq!(
        catalog.reads.get(sku).await.expect("reads"),
        Some(changed.clone())
    );
    let page = catalog
        .index
        .search("zanzibar", None, 10, None)
        .expect("searches");
    assert!(
        page.items.iter().any(|s| &s.sku == sku),
        "the index has the new name"
    );
    // Unknown SKUs are not cached (nothing to fill).
    assert_eq!(
        catalog.product("SKU-9999-999999").await.expect("reads"),
        None
    );
}
