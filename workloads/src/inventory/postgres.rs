//! Inventory's PostgreSQL store: the rules of [`super::domain`] in SQL, one schema per shard.
//!
//! ```text
//!   <schema>.stock  (sku PK, stock, reserved)   CHECK 0 <= reserved <= stock  ← never oversold
//!   <schema>.holds  (order_id PK, state, lines, rejection)
//!                    state: held | rejected | released | committed
//! ```
//!
//! Every operation is one transaction at READ COMMITTED:
//! - `reserve` first claims the order id (`INSERT .. ON CONFLICT DO NOTHING`): a duplicate
//!   delivery waits for the first to commit, then answers what it recorded. Then it locks the
//!   order's stock rows in SKU order (`FOR UPDATE`, so concurrent orders queue and deadlocks
//!   cannot form), checks every line and either holds all of them or records the rejection.
//! - `release` / `commit` lock the hold, act only on `held`, and leave a tombstone when the
//!   cancellation arrives before the reservation.
//!
//! The schema's CHECK constraint is the last line of defence: even a bug above cannot
//! commit `reserved > stock`. Queries are runtime queries (no compile-time `DATABASE_URL`);
//! the pool's `search_path` is the shard's schema, so they name no schema.
//! Every public method is counted and timed as a `postgres` request
//! ([`crate::datastore_metrics`]).

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};
use thiserror::Error;

use super::domain::{InventoryError, Rejection, ReserveOutcome, StockLevel, merge_lines};
use crate::db;
use crate::{
    datastore_metrics::{Datastore, DatastoreFailure, timed},
    datastore_op,
};

/// Failures of the PostgreSQL store.
#[derive(Debug, Error)]
pub enum PgInventoryError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Input(#[from] InventoryError),
    #[error("invalid schema name {0:?}: use 1 to 63 of a-z, 0-9 and _")]
    Schema(String),
    #[error("failed to read the hold of order {order_id}: {detail}")]
    Corrupt { order_id: String, detail: String },
}

type Result<T> = std::result::Result<T, PgInventoryError>;

/// Only a failed query is the datastore's failure; the rest are answers.
impl DatastoreFailure for PgInventoryError {
    fn is_datastore_failure(&self) -> bool {
        matches!(self, PgInventoryError::Db(_))
    }
}

/// One shard's stock in its own schema.
#[derive(Clone)]
pub struct PgInventory {
    pool: PgPool,
    schema: String,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Maps of strings to integers and plain enums always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl PgInventory {
    /// Connects a pool whose `search_path` is `schema` (which [`PgInventory::migrate`] creates).
    pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        db::validate_schema(schema).map_err(|_| PgInventoryError::Schema(schema.to_string()))?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
        })
    }

    /// The pool (for health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema and tables if missing. Safe to run from every replica at once:
    /// an advisory lock per schema serializes the DDL.
    pub async fn migrate(&self) -> Result<()> {
        let s = &self.schema;
        db::migrate(
            &self.pool,
            "inventory",
            s,
            &[
                format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{s}".stock (
                    sku text PRIMARY KEY,
                    stock bigint NOT NULL CHECK (stock >= 0),
                    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                    CONSTRAINT never_oversold CHECK (reserved <= stock))"#
                ),
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{s}".holds (
                    order_id text PRIMARY KEY,
                    state text NOT NULL
                        CHECK (state IN ('pending', 'held', 'rejected', 'released', 'committed')),
                    lines jsonb NOT NULL,
                    rejection jsonb,
                    updated_at timestamptz NOT NULL DEFAULT now())"#
                ),
            ],
        )
        .await?;
        Ok(())
    }

    /// Sets a SKU's stock on hand; refuses to go below what is held.
    pub async fn set_stock(&self, sku: &str, stock: i64) -> Result<()> {
        timed(
            datastore_op!(Datastore::Postgres, "set_stock"),
            self.set_stock_untimed(sku, stock),
        )
        .await
    }

    async fn set_stock_untimed(&self, sku: &str, stock: i64) -> Result<()> {
        if stock < 0 {
            return Err(InventoryError::NegativeStock {
                sku: sku.into(),
                stock,
            }
            .into());
        }
        let mut tx = self.pool.begin().await?;
        let reserved: Option<i64> =
            sqlx::query_scalar("SELECT reserved FROM stock WHERE sku = $1 FOR UPDATE")
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(reserved) = reserved.filter(|&r| stock < r) {
            return Err(InventoryError::BelowReserved {
                sku: sku.into(),
                stock,
                reserved,
            }
            .into());
        }
        sqlx::query(
            "INSERT INTO stock (sku, stock) VALUES ($1, $2) \
             ON CONFLICT (sku) DO UPDATE SET stock = EXCLUDED.stock",
        )
        .bind(sku)
        .bind(stock)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds the SKUs it does not know yet with their stock (one statement; never changes a
    /// SKU it has, so re-running a seed after sales resets nothing). Returns how many it added.
    pub async fn stock_missing(&self, levels: &[(String, i64)]) -> Result<u64> {
        timed(
            datastore_op!(Datastore::Postgres, "stock_missing"),
            self.stock_missing_untimed(levels),
        )
        .await
    }

    async fn stock_missing_untimed(&self, levels: &[(String, i64)]) -> Result<u64> {
        let mut added = 0;
        for chunk in levels.chunks(5_000) {
            let skus: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
            let stocks: Vec<i64> = chunk.iter().map(|(_, n)| (*n).max(0)).collect();
            added += sqlx::query(
                "INSERT INTO stock (sku, stock) SELECT * FROM unnest($1::text[], $2::bigint[]) \
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(&skus)
            .bind(&stocks)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(added)
    }

    /// A SKU's stock, if known.
    pub async fn level(&self, sku: &str) -> Result<Option<StockLevel>> {
        timed(
            datastore_op!(Datastore::Postgres, "level"),
            self.level_untimed(sku),
        )
        .await
    }

    async fn level_untimed(&self, sku: &str) -> Result<Option<StockLevel>> {
        let row = sqlx::query("SELECT stock, reserved FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StockLevel {
                stock: r.try_get("stock")?,
                reserved: r.try_get("reserved")?,
            })
        })
        .transpose()
    }

    /// Reserves every line of `order_id`, or nothing; idempotent per order id.
    pub async fn reserve(&self, order_id: &str, lines: &[(String, u32)]) -> Result<ReserveOutcome> {
        timed(
            datastore_op!(Datastore::Postgres, "reserve"),
            self.reserve_untimed(order_id, lines),
        )
        .await
    }

    async fn reserve_untimed(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
    ) -> Result<ReserveOutcome> {
        let wanted = merge_lines(lines)?;
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO holds (order_id, state, lines) VALUES ($1, 'pending', $2::jsonb) \
             ON CONFLICT (order_id) DO NOTHING RETURNING 1",
        )
        .bind(order_id)
        .bind(to_json(&wanted))
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let outcome = recorded_outcome(&mut tx, order_id).await?;
            tx.commit().await?;
            return Ok(outcome);
        }
        let skus: Vec<String> = wanted.keys().cloned().collect();
        let rows = sqlx::query(
            "SELECT sku, stock, reserved FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
        )
        .bind(&skus)
        .fetch_all(&mut *tx)
        .await?;
        let mut levels = BTreeMap::new();
        for row in rows {
            let sku: String = row.try_get("sku")?;
            let level = StockLevel {
                stock: row.try_get("stock")?,
                reserved: row.try_get("reserved")?,
            };
            levels.insert(sku, level);
        }
        let rejection = wanted
            .iter()
            .find_map(|(sku, &requested)| match levels.get(sku) {
                None => Some(Rejection::UnknownSku { sku: sku.clone() }),
                Some(level) if level.available() < i64::from(requested) => {
                    Some(Rejection::Insufficient {
                        sku: sku.clone(),
                        requested,
                        available: level.available(),
                    })
                }
                Some(_) => None,
            });
        if let Some(rejection) = rejection {
            sqlx::query(
                "UPDATE holds SET state = 'rejected', rejection = $2::jsonb, updated_at = now() \
                 WHERE order_id = $1",
            )
            .bind(order_id)
            .bind(to_json(&rejection))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(ReserveOutcome::Rejected(rejection));
        }
        let quantities: Vec<i64> = wanted.values().map(|&q| i64::from(q)).collect();
        sqlx::query(
            "UPDATE stock AS s SET reserved = s.reserved + w.q \
             FROM unnest($1::text[], $2::bigint[]) AS w(sku, q) WHERE s.sku = w.sku",
        )
        .bind(&skus)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
        set_state(&mut tx, order_id, "held").await?;
        tx.commit().await?;
        Ok(ReserveOutcome::Reserved)
    }

    /// Gives back what `order_id` holds; `false` if it held nothing (a tombstone is left
    /// when the order was never seen, so a late reservation is refused).
    pub async fn release(&self, order_id: &str) -> Result<bool> {
        timed(
            datastore_op!(Datastore::Postgres, "release"),
            self.release_untimed(order_id),
        )
        .await
    }

    async fn release_untimed(&self, order_id: &str) -> Result<bool> {
        self.settle(order_id, "released", "reserved = s.reserved - w.q")
            .await
    }

    /// Turns what `order_id` holds into sold units; `false` if it held nothing.
    pub async fn commit(&self, order_id: &str) -> Result<bool> {
        timed(
            datastore_op!(Datastore::Postgres, "commit"),
            self.commit_untimed(order_id),
        )
        .await
    }

    async fn commit_untimed(&self, order_id: &str) -> Result<bool> {
        self.settle(
            order_id,
            "committed",
            "reserved = s.reserved - w.q, stock = s.stock - w.q",
        )
        .await
    }

    async fn settle(
        &self,
        order_id: &str,
        state: &'static str,
        assignment: &'static str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Only a release leaves a tombstone; a commit for an unknown order changes nothing.
        let tombstone = sqlx::query(
            "INSERT INTO holds (order_id, state, lines) \
             SELECT $1, 'released', '{}'::jsonb WHERE $2 \
             ON CONFLICT (order_id) DO NOTHING RETURNING 1",
        )
        .bind(order_id)
        .bind(state == "released")
        .fetch_optional(&mut *tx)
        .await?;
        if tombstone.is_some() {
            tx.commit().await?;
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT state, lines::text AS lines FROM holds WHERE order_id = $1 FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let current: String = row.try_get("state")?;
        if current != "held" {
            tx.commit().await?;
            return Ok(false);
        }
        let lines: String = row.try_get("lines")?;
        let held: BTreeMap<String, u32> =
            serde_json::from_str(&lines).map_err(|e| PgInventoryError::Corrupt {
                order_id: order_id.to_string(),
                detail: e.to_string(),
            })?;
        let skus: Vec<String> = held.keys().cloned().collect();
        let quantities: Vec<i64> = held.values().map(|&q| i64::from(q)).collect();
        // Lock in SKU order, as reserve does, then apply.
        sqlx::query("SELECT 1 FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
            .bind(&skus)
            .fetch_all(&mut *tx)
            .await?;
        let update = format!(
            "UPDATE stock AS s SET {assignment} \
             FROM unnest($1::text[], $2::bigint[]) AS w(sku, q) WHERE s.sku = w.sku"
        );
        sqlx::query(AssertSqlSafe(update))
            .bind(&skus)
            .bind(&quantities)
            .execute(&mut *tx)
            .await?;
        set_state(&mut tx, order_id, state).await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn set_state(tx: &mut Transaction<'_, Postgres>, order_id: &str, state: &str) -> Result<()> {
    sqlx::query("UPDATE holds SET state = $2, updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .bind(state)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The answer recorded for an order seen before.
async fn recorded_outcome(
    tx: &mut Transaction<'_, Postgres>,
    order_id: &str,
) -> Result<ReserveOutcome> {
    let row =
        sqlx::query("SELECT state, rejection::text AS rejection FROM holds WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&mut **tx)
            .await?;
    let state: String = row.try_get("state")?;
    let corrupt = |detail: String| PgInventoryError::Corrupt {
        order_id: order_id.to_string(),
        detail,
    };
    match state.as_str() {
        "held" | "committed" => Ok(ReserveOutcome::Reserved),
        "released" => Ok(ReserveOutcome::Rejected(Rejection::OrderCancelled)),
        "rejected" => {
            let text: Option<String> = row.try_get("rejection")?;
            let rejection = serde_json::from_str(&text.unwrap_or_default())
                .map_err(|e| corrupt(e.to_string()))?;
            Ok(ReserveOutcome::Rejected(rejection))
        }
        other => Err(corrupt(format!("unexpected state {other:?}"))),
    }
}
