//! The catalog against a real PostgreSQL primary and its streaming replica: a 10,000-product
//! seeded catalog loads, reads back identical (also from the replica), re-seeding is
//! idempotent, and the search index rebuilt from it answers.
//!
//! Needs `DATABASE_URL` and `DATABASE_READ_REPLICA_URL` (run by
//! `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use storefront_workloads::catalog::{
    postgres::PgCatalog,
    search::SearchIndex,
    seed::{DEFAULT_PRODUCTS, generate},
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

#[tokio::test]
async fn a_seeded_catalog_loads_reads_back_and_indexes() {
    let schema = format!("it_catalog_{}", std::process::id());
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
    primary.migrate().await.expect("migrating twice is a no-op");

    let products = generate(42, DEFAULT_PRODUCTS);
    let started = Instant::now();
    primary.upsert(&products).await.expect("loads");
    eprintln!(
        "catalog: {} products loaded in {:?}",
        products.len(),
        started.elapsed()
    );
    primary
        .upsert(&products)
        .await
        .expect("re-seeding is idempotent");
    let stored = primary.all().await.expect("reads");
    let mut expected = products.clone();
    expected.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(stored, expected);

    assert_eq!(
        primary.get(&products[7].sku).await.expect("reads"),
        Some(products[7].clone())
    );
    assert_eq!(primary.get("SKU-NOPE").await.expect("reads"), None);
    let some = primary
        .get_many(&[
            products[3].sku.clone(),
            "SKU-NOPE".into(),
            products[1].sku.clone(),
        ])
        .await
        .expect("reads");
    assert_eq!(some.len(), 2);

    // The streaming replica serves the same rows shortly after.
    let replica = PgCatalog::connect(&env("DATABASE_READ_REPLICA_URL"), &schema, 2)
        .await
        .expect("connects");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match replica.get(&products[9_999].sku).await {
            Ok(Some(p)) => {
                assert_eq!(p, products[9_999]);
                break;
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the replica did not catch up: {other:?}"),
        }
    }

    let index = SearchIndex::new().expect("index");
    let started = Instant::now();
    index.rebuild(&stored).expect("indexes");
    eprintln!(
        "catalog: indexed {} products in {:?}",
        index.len(),
        started.elapsed()
    );
    assert_eq!(index.len(), DEFAULT_PRODUCTS as u64);
    let page = index
        .search("headphones", Some("electronics"), 20, None)
        .expect("search");
    assert_eq!(page.items.len(), 20);
    assert!(page.next.is_some());
}
