//! Inventory's PostgreSQL store: the rules of [`super::domain`] in SQL, one schema per shard,
//! and the shop's ring in the database, so that resharding ([`super::handoff`]) can move keys
//! and switch owners in one transaction.
//!
//! ```text
//!   <prefix><i>.stock  (sku PK, stock, reserved)  CHECK 0 <= reserved <= stock ← never oversold
//!   <prefix><i>.lines  (order_id, sku) PK, quantity, state, rejection
//!                       state: pending | held | rejected | released | committed
//!   <prefix>ring.ring     (service PK, epoch, shards, prefix)   which shard owns which SKU
//!   <prefix>ring.settled  (order_id PK, state)                  confirmed / cancelled orders
//! ```
//!
//! A reservation is kept **per order line**, so a line can move to another shard with its SKU
//! and keep its state there. Every operation is one transaction at READ COMMITTED:
//! - It first takes the ring's advisory lock in shared mode and reads the ring: the shard
//!   acts only on the lines it owns *now*. A switch of owners takes the lock exclusively, so
//!   no operation straddles a switch (see [`super::handoff`]).
//! - `hold` claims the order's owned lines that have no row yet (`INSERT .. ON CONFLICT DO
//!   NOTHING`: a duplicate delivery waits for the first to commit, then answers what it
//!   recorded), locks their stock rows in SKU order (`FOR UPDATE`, so concurrent orders queue
//!   and deadlocks cannot form), and holds all of them or records the rejection. Lines held
//!   before (a redelivery, or lines that moved here with their SKU) are not held twice.
//! - `release` / `commit` record the order as settled (the shop-wide `settled` table: a
//!   cancellation that arrives before the reservation refuses it later, on any shard) and act
//!   on the order's `held` lines in this shard.
//! - Reading a SKU this shard no longer owns reads it from its owner's schema (same
//!   database), so a router on an old ring still gets the right answer.
//!
//! A store without a ring (an unsharded inventory, or a schema not named `<prefix><index>`)
//! owns every SKU and keeps `settled` in its own schema. The schema's CHECK constraint is the
//! last line of defence: even a bug above cannot commit `reserved > stock`. Queries are runtime
//! queries (no compile-time `DATABASE_URL`); the pool's `search_path` is the shard's schema.
//! Every public method is counted and timed as a `postgres` request
//! ([`storefront_platform::datastore_metrics`]).

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};
use storefront_crds::ring::shard_of;
use thiserror::Error;

mod lines;
mod port;

pub use crate::domain::{Held, RingView};
pub(crate) use lines::settle_held;

use super::domain::{
    InventoryError, Rejection, ReserveOutcome, StockLevel, line_rejection, merge_lines,
};
use storefront_platform::datastore_metrics::{Datastore, DatastoreFailure, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration};

/// Failures of the PostgreSQL store.
#[derive(Debug, Error)]
pub enum PgInventoryError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Input(#[from] InventoryError),
    #[error(transparent)]
    Schema(#[from] db::BadSchema),
    #[error(
        "SKU {sku} belongs to shard {owner} of {shards} at ring epoch {epoch}; reload the ring"
    )]
    NotOwner {
        sku: String,
        owner: u32,
        shards: u32,
        epoch: i64,
    },
    #[error("the ring {0:?} has no row for inventory: run the shard's migration")]
    NoRing(String),
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

/// Where a shard sits in its shop's database-held ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingPlace {
    /// Shard `i` keeps its stock in schema `<prefix><i>`; the ring lives in `<prefix>ring`.
    pub prefix: String,
    pub index: u32,
}

impl RingPlace {
    /// The place of a shard whose schema is `<prefix><index>` (as the operator names them:
    /// `<namespace>_<storefront>_inventory_<index>`); `None` for any other name.
    pub fn of_schema(schema: &str, index: u32) -> Option<Self> {
        let prefix = schema.strip_suffix(&index.to_string())?;
        (prefix.ends_with('_') && db::validate_schema(&format!("{prefix}ring")).is_ok()).then(
            || Self {
                prefix: prefix.to_string(),
                index,
            },
        )
    }

    /// The schema of shard `i`.
    pub fn schema_of(&self, i: u32) -> String {
        format!("{}{i}", self.prefix)
    }

    /// The schema of the ring and of the settled orders.
    pub fn ring_schema(&self) -> String {
        format!("{}ring", self.prefix)
    }
}

/// The versions of a shard's schema (`"<schema>".inventory_migrations`).
pub(crate) fn shard_migrations(schema: &str, settled_schema: &str) -> Vec<Migration> {
    vec![Migration::new(
        1,
        "the stock and order lines tables",
        shard_ddl(schema, settled_schema),
    )]
}

/// The versions of the settled orders' table of a store without a ring
/// (`"<schema>".settled_migrations`).
pub(crate) fn settled_migrations(schema: &str) -> Vec<Migration> {
    vec![Migration::new(
        1,
        "the settled orders table",
        settled_ddl(schema),
    )]
}

/// The versions of the ring's schema (`"<ring schema>".ring_migrations`).
pub(crate) fn ring_migrations(ring_schema: &str) -> Vec<Migration> {
    vec![Migration::new(
        1,
        "the ring, settled orders and handoffs tables",
        ring_ddl(ring_schema),
    )]
}

/// The DDL of a shard's schema: its stock and its order lines; an older `holds` table (one
/// row per order) is converted to lines and settled orders, then dropped.
pub(crate) fn shard_ddl(schema: &str, settled_schema: &str) -> Vec<String> {
    let (s, r) = (schema, settled_schema);
    vec![
        format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
        format!(
            r#"CREATE TABLE IF NOT EXISTS "{s}".stock (
            sku text PRIMARY KEY,
            stock bigint NOT NULL CHECK (stock >= 0),
            reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            CONSTRAINT never_oversold CHECK (reserved <= stock))"#
        ),
        format!(
            r#"CREATE TABLE IF NOT EXISTS "{s}".lines (
            order_id text NOT NULL,
            sku text NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            state text NOT NULL
                CHECK (state IN ('pending', 'held', 'rejected', 'released', 'committed')),
            rejection jsonb,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (order_id, sku))"#
        ),
        format!(r#"CREATE INDEX IF NOT EXISTS lines_by_sku ON "{s}".lines (sku)"#),
        format!(
            r#"DO $$ BEGIN
            IF to_regclass('"{s}".holds') IS NOT NULL THEN
                INSERT INTO "{s}".lines (order_id, sku, quantity, state, rejection)
                    SELECT h.order_id, l.key, l.value::bigint, h.state, h.rejection
                    FROM "{s}".holds h, jsonb_each_text(h.lines) l
                    WHERE h.state <> 'pending' ON CONFLICT DO NOTHING;
                INSERT INTO "{r}".settled (order_id, state)
                    SELECT order_id, state FROM "{s}".holds
                    WHERE state IN ('released', 'committed') ON CONFLICT DO NOTHING;
                DROP TABLE "{s}".holds;
            END IF;
            END $$"#
        ),
    ]
}

/// The DDL of the settled orders' table in `schema`.
pub(crate) fn settled_ddl(schema: &str) -> Vec<String> {
    vec![
        format!(r#"CREATE SCHEMA IF NOT EXISTS "{schema}""#),
        format!(
            r#"CREATE TABLE IF NOT EXISTS "{schema}".settled (
            order_id text PRIMARY KEY,
            state text NOT NULL CHECK (state IN ('released', 'committed')),
            at timestamptz NOT NULL DEFAULT now())"#
        ),
    ]
}

/// The DDL of the ring's schema: the ring, the settled orders and the handoffs' record.
pub(crate) fn ring_ddl(ring_schema: &str) -> Vec<String> {
    let r = ring_schema;
    let mut ddl = settled_ddl(r);
    ddl.push(format!(
        r#"CREATE TABLE IF NOT EXISTS "{r}".ring (
        service text PRIMARY KEY,
        epoch bigint NOT NULL CHECK (epoch > 0),
        shards integer NOT NULL CHECK (shards > 0),
        prefix text NOT NULL,
        switched_at timestamptz NOT NULL DEFAULT now())"#
    ));
    ddl.push(format!(
        r#"CREATE TABLE IF NOT EXISTS "{r}".handoffs (
        epoch bigint PRIMARY KEY,
        from_shards integer NOT NULL,
        to_shards integer NOT NULL,
        moved_keys bigint NOT NULL,
        moved_lines bigint NOT NULL,
        synced_keys bigint NOT NULL,
        settled_lines bigint NOT NULL,
        lock_wait_ms double precision NOT NULL,
        pause_ms double precision NOT NULL,
        switched_at timestamptz NOT NULL DEFAULT now())"#
    ));
    ddl
}

/// The ring's advisory lock key: shared by every shard operation, exclusive for a switch.
pub(crate) const RING_LOCK: &str = "SELECT hashtext('storefront-ring:' || $1)";

/// One shard's stock in its own schema.
#[derive(Clone)]
pub struct PgInventory {
    pool: PgPool,
    schema: String,
    ring: Option<RingPlace>,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Maps of strings to integers and plain enums always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

type Tx = Transaction<'static, Postgres>;

impl PgInventory {
    /// Connects a pool whose `search_path` is `schema` (which [`PgInventory::migrate`] creates),
    /// for a store that owns every SKU.
    pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        db::validate_schema(schema)?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
            ring: None,
        })
    }

    /// Connects shard `place.index` of a ring: its schema is `place.schema_of(index)`.
    pub async fn connect_shard(url: &str, place: RingPlace, max_connections: u32) -> Result<Self> {
        let mut store = Self::connect(url, &place.schema_of(place.index), max_connections).await?;
        let ring = place.ring_schema();
        db::validate_schema(&ring)?;
        store.ring = Some(place);
        Ok(store)
    }

    /// The pool (for health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The shard's place in its ring, if it has one.
    pub fn place(&self) -> Option<&RingPlace> {
        self.ring.as_ref()
    }

    fn settled_schema(&self) -> String {
        self.ring
            .as_ref()
            .map_or_else(|| self.schema.clone(), RingPlace::ring_schema)
    }

    /// Creates the schema and tables if missing. Safe to run from every replica at once:
    /// an advisory lock per schema serializes the DDL. A shard with a ring also creates the
    /// ring's schema and, the first time, the ring itself with `shards` shards at `epoch`
    /// (later the ring changes only by a handoff's switch).
    pub async fn migrate_ring(&self, shards: u32, epoch: i64) -> Result<()> {
        let settled = self.settled_schema();
        if let Some(place) = &self.ring {
            let r = place.ring_schema();
            db::migrate(&self.pool, &r, "ring", ring_migrations(&r)).await?;
            sqlx::query(AssertSqlSafe(format!(
                r#"INSERT INTO "{r}".ring (service, epoch, shards, prefix)
                VALUES ('inventory', $1, $2, $3) ON CONFLICT (service) DO NOTHING"#
            )))
            .bind(epoch)
            .bind(i32::try_from(shards).unwrap_or(i32::MAX))
            .bind(&place.prefix)
            .execute(&self.pool)
            .await?;
        } else {
            db::migrate(
                &self.pool,
                &settled,
                "settled",
                settled_migrations(&settled),
            )
            .await?;
        }
        db::migrate(
            &self.pool,
            &self.schema,
            "inventory",
            shard_migrations(&self.schema, &settled),
        )
        .await?;
        Ok(())
    }

    /// [`PgInventory::migrate_ring`] for a store without a ring (or a ring that exists).
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_ring(1, 1).await
    }

    /// Begins a transaction that holds the ring's lock in shared mode and has read the ring.
    async fn enter(&self) -> Result<(Tx, RingView)> {
        let mut tx = self.pool.begin().await?;
        let Some(place) = &self.ring else {
            return Ok((
                tx,
                RingView {
                    epoch: 0,
                    shards: 1,
                },
            ));
        };
        let r = place.ring_schema();
        sqlx::query(AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock_shared(({RING_LOCK}))"
        )))
        .bind(&r)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            r#"SELECT epoch, shards FROM "{r}".ring WHERE service = 'inventory'"#
        )))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PgInventoryError::NoRing(r.clone()))?;
        let shards: i32 = row.try_get("shards")?;
        Ok((
            tx,
            RingView {
                epoch: row.try_get("epoch")?,
                shards: u32::try_from(shards).unwrap_or(1).max(1),
            },
        ))
    }

    fn owns(&self, ring: RingView, sku: &str) -> bool {
        self.ring
            .as_ref()
            .is_none_or(|p| shard_of(sku, ring.shards) == p.index)
    }

    /// Sets a SKU's stock on hand; refuses to go below what is held.
    pub async fn set_stock(&self, sku: &str, stock: i64) -> Result<()> {
        timed(datastore_op!(Datastore::Postgres, "set_stock"), async {
            if stock < 0 {
                return Err(InventoryError::NegativeStock {
                    sku: sku.into(),
                    stock,
                }
                .into());
            }
            let (mut tx, ring) = self.enter().await?;
            let table = self.stock_table(ring, sku);
            let reserved: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT reserved FROM {table} WHERE sku = $1 FOR UPDATE"
            )))
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
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} (sku, stock) VALUES ($1, $2) \
                 ON CONFLICT (sku) DO UPDATE SET stock = EXCLUDED.stock"
            )))
            .bind(sku)
            .bind(stock)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The stock table that holds `sku` under `ring`: this shard's, or its owner's.
    fn stock_table(&self, ring: RingView, sku: &str) -> String {
        match &self.ring {
            Some(p) if !self.owns(ring, sku) => {
                format!(r#""{}".stock"#, p.schema_of(shard_of(sku, ring.shards)))
            }
            _ => "stock".to_string(),
        }
    }

    /// Adds the SKUs it does not know yet with their stock (one statement per 5,000; never
    /// changes a SKU it has, so re-running a seed after sales resets nothing), each in its
    /// owner's schema. Returns how many it added.
    pub async fn stock_missing(&self, levels: &[(String, i64)]) -> Result<u64> {
        timed(datastore_op!(Datastore::Postgres, "stock_missing"), async {
            let mut added = 0;
            for chunk in levels.chunks(5_000) {
                let (tx, ring) = self.enter().await?;
                let mut tx = tx;
                let mut by_table: BTreeMap<String, (Vec<&str>, Vec<i64>)> = BTreeMap::new();
                for (sku, n) in chunk {
                    let e = by_table.entry(self.stock_table(ring, sku)).or_default();
                    e.0.push(sku);
                    e.1.push((*n).max(0));
                }
                for (table, (skus, stocks)) in by_table {
                    added += sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {table} (sku, stock) \
                         SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT (sku) DO NOTHING"
                    )))
                    .bind(&skus)
                    .bind(&stocks)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
            }
            Ok(added)
        })
        .await
    }

    /// A SKU's stock, if known, read from its owner's schema.
    pub async fn level(&self, sku: &str) -> Result<Option<StockLevel>> {
        timed(datastore_op!(Datastore::Postgres, "level"), async {
            let row = if self.ring.is_some() {
                // Under the shared lock like a write: a switch moves the rows and changes the ring
                // together, so a read sees the owner before or after it, never a half.
                let (tx, ring) = self.enter().await?;
                let mut tx = tx;
                let table = self.stock_table(ring, sku);
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT stock, reserved FROM {table} WHERE sku = $1"
                )))
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                row
            } else {
                sqlx::query("SELECT stock, reserved FROM stock WHERE sku = $1")
                    .bind(sku)
                    .fetch_optional(&self.pool)
                    .await?
            };
            row.map(|r| {
                Ok(StockLevel {
                    stock: r.try_get("stock")?,
                    reserved: r.try_get("reserved")?,
                })
            })
            .transpose()
        })
        .await
    }
}
