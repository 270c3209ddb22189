//! Inventory's PostgreSQL store against a real server: the domain's rules hold in SQL, and
//! many concurrent orders (and redeliveries) for one SKU with little stock never oversell.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::AssertSqlSafe;
use storefront_workloads::inventory::{
    domain::{Rejection, ReserveOutcome},
    postgres::PgInventory,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A store in a fresh schema of its own.
async fn store() -> PgInventory {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!(
        "it_inventory_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = PgInventory::connect(&url, &schema, 16)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");
    store.migrate().await.expect("migrating twice is a no-op");
    store
}

fn lines(items: &[(&str, u32)]) -> Vec<(String, u32)> {
    items.iter().map(|(s, q)| (s.to_string(), *q)).collect()
}

async fn levels(store: &PgInventory, sku: &str) -> (i64, i64) {
    let l = store.level(sku).await.expect("query").expect("known SKU");
    (l.stock, l.reserved)
}

#[tokio::test]
async fn reservations_follow_the_domain_rules_in_sql() {
    let s = store().await;
    s.set_stock("A", 5).await.expect("stock");
    s.set_stock("B", 1).await.expect("stock");

    // All or nothing.
    let out = s
        .reserve("o1", &lines(&[("A", 2), ("B", 2)]))
        .await
        .expect("valid");
    assert_eq!(
        out,
        ReserveOutcome::Rejected(Rejection::Insufficient {
            sku: "B".into(),
            requested: 2,
            available: 1
        })
    );
    assert_eq!(levels(&s, "A").await, (5, 0));
    assert_eq!(
        s.reserve("o2", &lines(&[("A", 2), ("B", 1)]))
            .await
            .expect("valid"),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        (levels(&s, "A").await, levels(&s, "B").await),
        ((5, 2), (1, 1))
    );
    let unknown = s.reserve("o3", &lines(&[("Z", 1)])).await.expect("valid");
    assert_eq!(
        unknown,
        ReserveOutcome::Rejected(Rejection::UnknownSku { sku: "Z".into() })
    );

    // Idempotent: the same answers again, nothing more held.
    assert_eq!(
        s.reserve("o2", &lines(&[("A", 2), ("B", 1)]))
            .await
            .expect("valid"),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve("o1", &lines(&[("A", 2), ("B", 2)]))
            .await
            .expect("valid"),
        out
    );
    assert_eq!(levels(&s, "A").await, (5, 2));

    // Stock cannot drop below what is held.
    assert!(s.set_stock("A", 1).await.is_err());

    // Commit sells once; release gives back once; a cancel that comes first blocks.
    assert!(s.commit("o2").await.expect("commits"));
    assert!(!s.commit("o2").await.expect("no-op"));
    assert!(!s.release("o2").await.expect("no-op"));
    assert_eq!(
        (levels(&s, "A").await, levels(&s, "B").await),
        ((3, 0), (0, 0))
    );
    assert_eq!(
        s.reserve("o4", &lines(&[("A", 3)])).await.expect("valid"),
        ReserveOutcome::Reserved
    );
    assert!(s.release("o4").await.expect("releases"));
    assert!(!s.release("o4").await.expect("no-op"));
    assert_eq!(levels(&s, "A").await, (3, 0));
    assert!(!s.release("o5").await.expect("tombstone"));
    assert_eq!(
        s.reserve("o5", &lines(&[("A", 1)])).await.expect("valid"),
        ReserveOutcome::Rejected(Rejection::OrderCancelled)
    );
    assert!(s.reserve("o6", &[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_a_hot_sku_never_oversell() {
    const STOCK: i64 = 10;
    const ORDERS: usize = 60;
    const ROUNDS: usize = 5;
    let s = store().await;
    // Open the pool's connections up front so that the orders really run in parallel.
    let warm: Vec<_> = futures::future::join_all((0..16).map(|_| s.pool().acquire())).await;
    drop(warm);
    for round in 0..ROUNDS {
        let (hot, cold) = (format!("HOT-{round}"), format!("COLD-{round}"));
        s.set_stock(&hot, STOCK).await.expect("stock");
        s.set_stock(&cold, 1_000).await.expect("stock");
        // Every order is delivered twice, concurrently, as a redelivering broker would.
        let mut tasks = Vec::new();
        for i in 0..ORDERS {
            for _ in 0..2 {
                let (s, hot, cold) = (s.clone(), hot.clone(), cold.clone());
                tasks.push(tokio::spawn(async move {
                    let order = format!("order-{round}-{i}");
                    let out = s
                        .reserve(&order, &lines(&[(&cold, 1), (&hot, 1)]))
                        .await
                        .expect("reserve");
                    (order, out)
                }));
            }
        }
        let mut answers = std::collections::HashMap::new();
        for task in tasks {
            let (order, out) = task.await.expect("joins");
            if let Some(previous) = answers.insert(order.clone(), out.clone()) {
                assert_eq!(
                    previous, out,
                    "{order}: both deliveries get the same answer"
                );
            }
        }
        let reserved = answers
            .values()
            .filter(|o| **o == ReserveOutcome::Reserved)
            .count();
        assert_eq!(
            reserved as i64, STOCK,
            "exactly the stock is sold, never more"
        );
        assert_eq!(levels(&s, &hot).await, (STOCK, STOCK));
        assert_eq!(
            levels(&s, &cold).await,
            (1_000, STOCK),
            "all or nothing per order"
        );

        // Cancelling some of them frees exactly their units.
        let mut released = 0;
        for (order, out) in &answers {
            if *out == ReserveOutcome::Reserved && released < 5 {
                assert!(s.release(order).await.expect("release"));
                released += 1;
            }
        }
        assert_eq!(levels(&s, &hot).await, (STOCK, STOCK - 5));
    }
}

/// Seeding at start adds the SKUs a shard does not know and never resets one it has (a
/// restart after sales must not put sold stock back).
#[tokio::test]
async fn seeding_adds_missing_skus_and_keeps_known_stock() {
    let store = store().await;
    store.set_stock("SKU-A", 5).await.expect("stock");
    let seed = vec![("SKU-A".to_string(), 100), ("SKU-B".to_string(), 3)];
    assert_eq!(store.stock_missing(&seed).await.expect("seeds"), 1);
    assert_eq!(levels(&store, "SKU-A").await, (5, 0));
    assert_eq!(levels(&store, "SKU-B").await, (3, 0));
    assert_eq!(store.stock_missing(&seed).await.expect("seeds again"), 0);
}
