//! The reservation rules exist twice: in the domain (`inventory::domain::Inventory`, behind
//! `MemoryStock`, the store the gateway's and the services' tests run against) and in SQL
//! (`PgInventory`, the one production runs). This test holds them to one behaviour: the same
//! seeded sequence of reservations, redeliveries, releases and commits, with unknown SKUs,
//! zero quantities, repeated SKUs and too little stock, runs against both, and every answer
//! and every stock level after every step must be the same.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`).

use std::sync::atomic::{AtomicU32, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::AssertSqlSafe;
use storefront_workloads::inventory::{
    memory::MemoryStock,
    ports::{StockStore, StoreError},
    postgres::PgInventory,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// SKUs with stock, and one the shard does not know.
const KNOWN: [(&str, i64); 3] = [("SKU-A", 6), ("SKU-B", 2), ("SKU-C", 0)];
const UNKNOWN: &str = "SKU-X";
const STEPS: usize = 400;

async fn postgres() -> PgInventory {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!(
        "it_inv_conformance_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = PgInventory::connect(&url, &schema, 4)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");
    store
}

/// One step of the sequence.
#[derive(Clone, Debug)]
enum Op {
    Reserve(String, Vec<(String, u32)>),
    Release(String),
    Commit(String),
}

/// The seeded sequence: a dozen orders, so most operations repeat or follow another on the
/// same order (redelivery, release after commit, reserve after release). Each order has one
/// set of lines, as a real order does (the SQL store decides per line, the domain per order:
/// they agree for an order whose lines do not change).
fn sequence(seed: u64) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let orders: Vec<(String, Vec<(String, u32)>)> = (0..12)
        .map(|o| {
            // Now and then an empty order, a zero quantity or a SKU the shard does not know.
            let n = if rng.random_ratio(1, 12) {
                0
            } else {
                rng.random_range(1..=3)
            };
            let lines = (0..n)
                .map(|_| {
                    let sku = if rng.random_ratio(1, 8) {
                        UNKNOWN
                    } else {
                        KNOWN[rng.random_range(0..KNOWN.len())].0
                    };
                    let quantity = if rng.random_ratio(1, 10) {
                        0
                    } else {
                        rng.random_range(1..=3)
                    };
                    // A SKU may come twice in one order (the lines are merged).
                    (sku.to_string(), quantity)
                })
                .collect();
            (format!("o{o}"), lines)
        })
        .collect();
    (0..STEPS)
        .map(|_| {
            let (order, lines) = orders[rng.random_range(0..orders.len())].clone();
            match rng.random_range(0..10) {
                0..=5 => Op::Reserve(order, lines),
                6..=7 => Op::Release(order),
                _ => Op::Commit(order),
            }
        })
        .collect()
}

/// An answer, comparable across stores (an unreachable store fails the test).
fn answer<T: std::fmt::Debug>(what: &Op, r: Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(StoreError::Invalid(e)) => format!("invalid: {e}"),
        Err(e) => panic!("{what:?}: the store failed: {e}"),
    }
}

async fn apply(store: &impl StockStore, op: &Op) -> String {
    match op {
        Op::Reserve(order, lines) => answer(op, store.reserve(order, lines).await),
        Op::Release(order) => answer(op, store.release(order).await),
        Op::Commit(order) => answer(op, store.commit(order).await),
    }
}

async fn levels(store: &impl StockStore) -> Vec<String> {
    let mut out = Vec::new();
    for sku in KNOWN.iter().map(|(s, _)| *s).chain([UNKNOWN]) {
        out.push(format!(
            "{sku}: {:?}",
            store.level(sku).await.expect("level")
        ));
    }
    out
}

#[tokio::test]
async fn the_sql_store_answers_as_the_domain_does() {
    for seed in 1..=6_u64 {
        let memory = MemoryStock::default();
        let pg = postgres().await;
        for (sku, stock) in KNOWN {
            memory.0.lock().await.set_stock(sku, stock).expect("stock");
            pg.set_stock(sku, stock).await.expect("stock");
        }
        let ops = sequence(seed);
        let (mut reserved, mut rejected, mut invalid) = (0, 0, 0);
        for (i, op) in ops.iter().enumerate() {
            let (m, p) = (apply(&memory, op).await, apply(&pg, op).await);
            assert_eq!(m, p, "seed {seed}, step {i}: {op:?}: memory vs PostgreSQL");
            let (lm, lp) = (levels(&memory).await, levels(&pg).await);
            assert_eq!(lm, lp, "seed {seed}, after step {i}: {op:?}: stock levels");
            if let Op::Reserve(..) = op {
                match m.as_str() {
                    "Reserved" => reserved += 1,
                    a if a.starts_with("Rejected") => rejected += 1,
                    _ => invalid += 1,
                }
            }
        }
        // The sequence reached every kind of answer, so the comparison covered them.
        assert!(
            reserved > 0 && rejected > 0 && invalid > 0,
            "seed {seed}: reserved {reserved}, rejected {rejected}, invalid {invalid}"
        );
    }
}
