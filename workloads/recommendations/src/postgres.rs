//! Recommendations' PostgreSQL store, in the service's own schema.
//!
//! ```text
//!   baskets  order_id PK, skus text[], state (pending | counted | dropped)
//!   pairs    (sku, other) PK, n            ← "bought together" counts
//! ```
//!
//! `OrderCreated` records the basket (pending); `OrderConfirmed` counts its pairs and marks it
//! counted in the same transaction, so a redelivery counts nothing twice; `OrderCancelled`
//! drops it. A confirmation that arrives before its basket is retried later.

use sqlx::{PgPool, Row};

use super::domain::{basket, pairs};
use storefront_platform::datastore_metrics::{Datastore, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration, validate_schema};

/// Failures of the store.
pub type PgRecommendationsError = db::StoreError;

type Result<T> = std::result::Result<T, PgRecommendationsError>;

/// What a confirmation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// The basket's pairs were counted now.
    Now,
    /// Counted (or dropped) before: nothing to do.
    Before,
    /// No basket yet: the `OrderCreated` is still on its way.
    NoBasket,
}

/// The store of one schema.
#[derive(Clone)]
pub struct PgRecommendations {
    pool: PgPool,
    schema: String,
}

impl PgRecommendations {
    /// Connects a pool whose `search_path` is `schema`.
    pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        validate_schema(schema)?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
        })
    }

    /// The pool (for health checks and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema and tables if missing.
    pub async fn migrate(&self) -> Result<()> {
        let s = &self.schema;
        db::migrate(
            &self.pool,
            s,
            "recommendations",
            vec![Migration::new(
                1,
                "the recommendations tables",
                vec![
                    format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
                    format!(
                        r#"CREATE TABLE IF NOT EXISTS "{s}".baskets (
                    order_id text PRIMARY KEY,
                    skus text[] NOT NULL,
                    state text NOT NULL CHECK (state IN ('pending', 'counted', 'dropped')))"#
                    ),
                    format!(
                        r#"CREATE TABLE IF NOT EXISTS "{s}".pairs (
                    sku text NOT NULL,
                    other text NOT NULL,
                    n bigint NOT NULL,
                    PRIMARY KEY (sku, other))"#
                    ),
                    format!(r#"CREATE INDEX IF NOT EXISTS pairs_top ON "{s}".pairs (sku, n DESC)"#),
                ],
            )],
        )
        .await?;
        Ok(())
    }

    /// Records an order's basket (idempotent).
    pub async fn record(&self, order_id: &str, skus: &[&str]) -> Result<()> {
        timed(datastore_op!(Datastore::Postgres, "record"), async {
            sqlx::query(
                "INSERT INTO baskets (order_id, skus, state) VALUES ($1, $2, 'pending') \
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id)
            .bind(basket(skus.iter().copied()))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Counts a confirmed order's pairs, once.
    pub async fn confirm(&self, order_id: &str) -> Result<Counted> {
        timed(datastore_op!(Datastore::Postgres, "confirm"), async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query("SELECT skus, state FROM baskets WHERE order_id = $1 FOR UPDATE")
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Counted::NoBasket);
            };
            if row.try_get::<String, _>("state")? != "pending" {
                return Ok(Counted::Before);
            }
            let skus: Vec<String> = row.try_get("skus")?;
            let (a, b): (Vec<String>, Vec<String>) = pairs(&skus).into_iter().unzip();
            sqlx::query(
                "INSERT INTO pairs (sku, other, n) SELECT x, y, 1 FROM unnest($1::text[], $2::text[]) AS p(x, y) \
                 ON CONFLICT (sku, other) DO UPDATE SET n = pairs.n + 1",
            )
            .bind(&a)
            .bind(&b)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE baskets SET state = 'counted' WHERE order_id = $1")
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Counted::Now)
        })
        .await
    }

    /// Forgets a cancelled order's basket (a tombstone if it has not arrived yet).
    pub async fn cancel(&self, order_id: &str) -> Result<()> {
        timed(datastore_op!(Datastore::Postgres, "cancel"), async {
            sqlx::query(
                "INSERT INTO baskets (order_id, skus, state) VALUES ($1, '{}', 'dropped') \
                 ON CONFLICT (order_id) DO UPDATE SET state = 'dropped' WHERE baskets.state = 'pending'",
            )
            .bind(order_id)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The SKUs most often bought with `sku`, most first (ties by SKU).
    pub async fn top(&self, sku: &str, limit: i64) -> Result<Vec<String>> {
        timed(datastore_op!(Datastore::Postgres, "top"), async {
            let rows = sqlx::query(
                "SELECT other FROM pairs WHERE sku = $1 ORDER BY n DESC, other LIMIT $2",
            )
            .bind(sku)
            .bind(limit.clamp(1, 50))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| r.try_get("other").map_err(PgRecommendationsError::from))
                .collect()
        })
        .await
    }
}
