//! Resharding's data handoff: moving the keys whose owner changes when a sharded inventory
//! goes from `from` to `to` shards, over the one PostgreSQL database that holds every shard's
//! schema and the ring ([`super::postgres`]).
//!
//! ```text
//!   prepare   the schemas of shards 0..max(from, to) exist
//!   copy      every moved key's stock row and order lines: owner at `from` → owner at `to`
//!             (upserts, no lock: shards keep serving; a pre-copy that makes the switch small)
//!   verify    the same keys compared, source against target (mismatches: a key written
//!             since the copy, or a bad copy; the switch syncs and re-verifies under its lock)
//!   switch    ONE transaction, under the ring's lock taken exclusively (shard operations
//!             hold it shared, so this waits for those in flight and new ones wait for it):
//!               1. sync the moved keys again (only rows that differ are written)
//!               2. verify every moved key, stock and lines; any difference rolls back
//!               3. held lines that moved, of orders settled meanwhile, are settled
//!               4. the moved rows leave their old owners
//!               5. the ring becomes `to` shards at `epoch`; the handoff is recorded
//!             The write pause is the lock wait plus this transaction.
//!   retire    an emptied shard's schema is dropped (going down, once its pods are gone)
//! ```
//!
//! Which keys move is the jump hash's business ([`storefront_crds::ring`]): growing, keys
//! move only to the new shards; shrinking, only the removed shards' keys move. This module
//! scans every shard and moves whatever is not where `to` wants it, so it also repairs a
//! stray row. A line (an order's reservation of one SKU) moves with its SKU and keeps its
//! state; the shop-wide `settled` table settles, at the switch, a held line whose order was
//! confirmed or cancelled by its new owner before the line arrived. Every step is idempotent
//! and the switch is recorded by epoch, so a crash or a rerun at any step does no harm.
//!
//! This relies on every shard of a shop sharing one database (today's layout). Shards on
//! separate databases would need a two-phase handoff; see `docs/sharding.md`.

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool, Row, postgres::PgPoolOptions};
use storefront_crds::ring::shard_of;
use thiserror::Error;

use super::postgres::{
    PgInventoryError, RING_LOCK, RingPlace, RingView, ring_migrations, settle_held,
    shard_migrations,
};
use storefront_platform::db;

/// Failures of a handoff.
#[derive(Debug, Error)]
pub enum HandoffError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] PgInventoryError),
    #[error("invalid schema prefix {0:?}: shard schemas are <prefix><index>, a-z 0-9 _")]
    Prefix(String),
    #[error("the ring {0:?} has no row for inventory: no shard has started yet")]
    NoRing(String),
    #[error("shard counts must be 1 or more (from {from} to {to})")]
    Shards { from: u32, to: u32 },
    #[error(
        "the ring is at {found_shards} shards, epoch {found_epoch}; this handoff goes \
         {from} → {to} shards at epoch {epoch}"
    )]
    RingMoved {
        from: u32,
        to: u32,
        epoch: i64,
        found_shards: u32,
        found_epoch: i64,
    },
    #[error("verification failed under the switch's lock: {0}; nothing was switched")]
    Mismatch(Mismatches),
    #[error("shard {index} still holds {keys} keys and {held} held lines; not retired")]
    NotEmpty { index: u32, keys: i64, held: i64 },
}

type Result<T> = std::result::Result<T, HandoffError>;

/// A count of keys and lines that differ between their old and new owners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatches {
    /// Moved keys whose stock row differs (or is missing) at the new owner.
    pub keys: u64,
    /// Moved order lines that differ (or are missing) at the new owner.
    pub lines: u64,
}

impl Mismatches {
    pub fn is_empty(&self) -> bool {
        self.keys == 0 && self.lines == 0
    }
}

impl std::fmt::Display for Mismatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} keys and {} lines differ", self.keys, self.lines)
    }
}

/// What a copy or a verification found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Keys whose owner changes.
    pub keys: u64,
    /// Keys copied (or compared).
    pub done_keys: u64,
    /// Order lines of those keys copied (or compared).
    pub lines: u64,
    /// Differences found (verification only).
    pub mismatched: Mismatches,
}

/// What a switch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Switched {
    pub epoch: i64,
    pub from: u32,
    pub to: u32,
    pub moved_keys: u64,
    pub moved_lines: u64,
    /// Keys written again under the lock (changed since the copy).
    pub synced_keys: u64,
    /// Held lines of orders settled before their lines arrived, settled at the switch.
    pub settled_lines: u64,
    /// Waiting for the operations in flight to finish (new ones already wait).
    pub lock_wait_ms: f64,
    /// The lock held: sync, verify, settle, delete, ring.
    pub pause_ms: f64,
    /// Whether this call switched (false: it had been switched before, the record is read).
    pub now: bool,
}

/// A fault to inject (tests of the verification): corrupt one moved key at its new owner
/// after the switch's sync, as a bad copy would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    CorruptAfterSync,
}

/// The handoff of one shop's inventory.
pub struct Handoff {
    pool: PgPool,
    place: RingPlace,
    fault: Fault,
}

/// The keys of one source that move, by their new owner.
type Moves = BTreeMap<u32, Vec<String>>;

impl Handoff {
    /// Connects to the shop's database; shard schemas are `<prefix><index>`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let place = RingPlace {
            prefix: prefix.to_string(),
            index: 0,
        };
        if !prefix.ends_with('_')
            || db::validate_schema(&place.ring_schema()).is_err()
            || db::validate_schema(&place.schema_of(999)).is_err()
        {
            return Err(HandoffError::Prefix(prefix.to_string()));
        }
        let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
        Ok(Self {
            pool,
            place,
            fault: Fault::None,
        })
    }

    /// Injects `fault` into later switches.
    pub fn inject(&mut self, fault: Fault) {
        self.fault = fault;
    }

    fn stock(&self, i: u32) -> String {
        format!(r#""{}".stock"#, self.place.schema_of(i))
    }

    fn lines(&self, i: u32) -> String {
        format!(r#""{}".lines"#, self.place.schema_of(i))
    }

    /// The ring in force.
    pub async fn ring(&self) -> Result<RingView> {
        let r = self.place.ring_schema();
        let row = sqlx::query(AssertSqlSafe(format!(
            r#"SELECT epoch, shards FROM "{r}".ring WHERE service = 'inventory'"#
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(ref d) if d.code().as_deref() == Some("42P01") => {
                HandoffError::NoRing(r.clone())
            }
            e => e.into(),
        })?
        .ok_or_else(|| HandoffError::NoRing(r.clone()))?;
        let shards: i32 = row.try_get("shards")?;
        Ok(RingView {
            epoch: row.try_get("epoch")?,
            shards: u32::try_from(shards).unwrap_or(1),
        })
    }

    /// The schemas and tables of shards `0..shards` exist.
    pub async fn prepare(&self, shards: u32) -> Result<()> {
        let r = self.place.ring_schema();
        db::migrate(&self.pool, &r, "ring", ring_migrations(&r)).await?;
        for i in 0..shards {
            let s = self.place.schema_of(i);
            db::migrate(&self.pool, &s, "inventory", shard_migrations(&s, &r)).await?;
        }
        Ok(())
    }

    /// The keys of shard `source` that `to` shards place elsewhere, by new owner.
    async fn moves<'c, E>(&self, exec: E, source: u32, to: u32) -> Result<Moves>
    where
        E: sqlx::PgExecutor<'c>,
    {
        let skus: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT sku FROM {}",
            self.stock(source)
        )))
        .fetch_all(exec)
        .await?;
        let mut moves = Moves::new();
        for sku in skus {
            let owner = shard_of(&sku, to);
            if owner != source {
                moves.entry(owner).or_default().push(sku);
            }
        }
        Ok(moves)
    }

    /// Copies the moved keys (stock rows and their order lines) to their new owners, without
    /// stopping the shards. Returns what moves and what was written.
    pub async fn copy(&self, from: u32, to: u32) -> Result<Progress> {
        check(from, to)?;
        self.prepare(from.max(to)).await?;
        let mut p = Progress::default();
        for source in 0..from.max(to) {
            for (target, skus) in self.moves(&self.pool, source, to).await? {
                for chunk in skus.chunks(5_000) {
                    let mut tx = self.pool.begin().await?;
                    let (keys, lines) = self.upsert(&mut tx, source, target, chunk).await?;
                    tx.commit().await?;
                    p.keys += chunk.len() as u64;
                    p.done_keys += keys;
                    p.lines += lines;
                }
            }
        }
        p.done_keys = p.keys;
        Ok(p)
    }

    /// Writes `skus`' stock rows and lines from `source` to `target` where they differ.
    /// Returns (stock rows written, lines written).
    async fn upsert(
        &self,
        tx: &mut sqlx::PgConnection,
        source: u32,
        target: u32,
        skus: &[String],
    ) -> Result<(u64, u64)> {
        let (src_stock, dst_stock) = (self.stock(source), self.stock(target));
        let (src_lines, dst_lines) = (self.lines(source), self.lines(target));
        let keys = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {dst_stock} AS t (sku, stock, reserved) \
             SELECT sku, stock, reserved FROM {src_stock} WHERE sku = ANY($1) \
             ON CONFLICT (sku) DO UPDATE SET stock = EXCLUDED.stock, reserved = EXCLUDED.reserved \
             WHERE (t.stock, t.reserved) IS DISTINCT FROM (EXCLUDED.stock, EXCLUDED.reserved)"
        )))
        .bind(skus)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let lines = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {dst_lines} AS t (order_id, sku, quantity, state, rejection, updated_at) \
             SELECT order_id, sku, quantity, state, rejection, updated_at FROM {src_lines} \
             WHERE sku = ANY($1) \
             ON CONFLICT (order_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity, \
               state = EXCLUDED.state, rejection = EXCLUDED.rejection, \
               updated_at = EXCLUDED.updated_at \
             WHERE (t.quantity, t.state, t.rejection::text) \
               IS DISTINCT FROM (EXCLUDED.quantity, EXCLUDED.state, EXCLUDED.rejection::text)"
        )))
        .bind(skus)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok((keys, lines))
    }

    /// Compares `skus` between `source` and `target`: stock rows and order lines.
    async fn compare(
        &self,
        tx: &mut sqlx::PgConnection,
        source: u32,
        target: u32,
        skus: &[String],
    ) -> Result<(Mismatches, u64)> {
        let (src_stock, dst_stock) = (self.stock(source), self.stock(target));
        let (src_lines, dst_lines) = (self.lines(source), self.lines(target));
        let keys: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {src_stock} s LEFT JOIN {dst_stock} t USING (sku) \
             WHERE s.sku = ANY($1) \
               AND (t.sku IS NULL OR (s.stock, s.reserved) IS DISTINCT FROM (t.stock, t.reserved))"
        )))
        .bind(skus)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT count(*) AS lines, count(*) FILTER (WHERE t.order_id IS NULL \
               OR (s.quantity, s.state, s.rejection::text) \
                  IS DISTINCT FROM (t.quantity, t.state, t.rejection::text)) AS differ \
             FROM {src_lines} s LEFT JOIN {dst_lines} t USING (order_id, sku) \
             WHERE s.sku = ANY($1)"
        )))
        .bind(skus)
        .fetch_one(&mut *tx)
        .await?;
        let (lines, differ): (i64, i64) = (row.try_get("lines")?, row.try_get("differ")?);
        Ok((
            Mismatches {
                keys: keys.max(0) as u64,
                lines: differ.max(0) as u64,
            },
            lines.max(0) as u64,
        ))
    }

    /// Compares every moved key between its old and new owner, without stopping the shards
    /// (a key written since the copy differs; the switch syncs it).
    pub async fn verify(&self, from: u32, to: u32) -> Result<Progress> {
        check(from, to)?;
        let mut p = Progress::default();
        for source in 0..from.max(to) {
            for (target, skus) in self.moves(&self.pool, source, to).await? {
                for chunk in skus.chunks(5_000) {
                    let mut conn = self.pool.acquire().await?;
                    let (m, lines) = self.compare(&mut conn, source, target, chunk).await?;
                    p.keys += chunk.len() as u64;
                    p.done_keys += chunk.len() as u64;
                    p.lines += lines;
                    p.mismatched.keys += m.keys;
                    p.mismatched.lines += m.lines;
                }
            }
        }
        Ok(p)
    }

    /// Switches owners from `from` to `to` shards at `epoch` (the ring's epoch + 1), in one
    /// transaction under the ring's exclusive lock. Idempotent: once switched, it answers
    /// the recorded switch.
    pub async fn switch(&self, from: u32, to: u32, epoch: i64) -> Result<Switched> {
        check(from, to)?;
        self.prepare(from.max(to)).await?;
        let r = self.place.ring_schema();
        let asked = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock(({RING_LOCK}))"
        )))
        .bind(&r)
        .execute(&mut *tx)
        .await?;
        let locked = Instant::now();
        let row = sqlx::query(AssertSqlSafe(format!(
            r#"SELECT epoch, shards FROM "{r}".ring WHERE service = 'inventory' FOR UPDATE"#
        )))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| HandoffError::NoRing(r.clone()))?;
        let (found_epoch, found_shards): (i64, i32) =
            (row.try_get("epoch")?, row.try_get("shards")?);
        let found_shards = u32::try_from(found_shards).unwrap_or(0);
        if found_epoch >= epoch && found_shards == to {
            tx.rollback().await?;
            return self.recorded(epoch, from, to).await;
        }
        if found_epoch != epoch - 1 || found_shards != from {
            return Err(HandoffError::RingMoved {
                from,
                to,
                epoch,
                found_shards,
                found_epoch,
            });
        }
        let mut s = Switched {
            epoch,
            from,
            to,
            now: true,
            ..Switched::default()
        };
        let mut moved: Vec<(u32, u32, Vec<String>)> = Vec::new();
        for source in 0..from.max(to) {
            for (target, skus) in self.moves(&mut *tx, source, to).await? {
                moved.push((source, target, skus));
            }
        }
        // 1. Sync.
        for (source, target, skus) in &moved {
            let (keys, _) = self.upsert(&mut tx, *source, *target, skus).await?;
            s.synced_keys += keys;
            s.moved_keys += skus.len() as u64;
        }
        if self.fault == Fault::CorruptAfterSync
            && let Some((_, target, skus)) = moved.iter().find(|(_, _, k)| !k.is_empty())
        {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {} SET stock = stock + 1 WHERE sku = $1",
                self.stock(*target)
            )))
            .bind(&skus[0])
            .execute(&mut *tx)
            .await?;
        }
        // 2. Verify, under the lock: nothing can change between this and the commit.
        let mut mismatched = Mismatches::default();
        for (source, target, skus) in &moved {
            let (m, lines) = self.compare(&mut tx, *source, *target, skus).await?;
            mismatched.keys += m.keys;
            mismatched.lines += m.lines;
            s.moved_lines += lines;
        }
        if !mismatched.is_empty() {
            tx.rollback().await?;
            return Err(HandoffError::Mismatch(mismatched));
        }
        // 3. Held lines that arrived for orders their new owner already saw settled.
        for target in 0..to {
            let arrived: Vec<String> = moved
                .iter()
                .filter(|(_, t, _)| *t == target)
                .flat_map(|(_, _, k)| k.iter().cloned())
                .collect();
            if arrived.is_empty() {
                continue;
            }
            let schema = self.place.schema_of(target);
            for (state, assignment) in [
                ("released", "reserved = s.reserved - w.q"),
                (
                    "committed",
                    "reserved = s.reserved - w.q, stock = s.stock - w.q",
                ),
            ] {
                let orders: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                    r#"SELECT DISTINCT l.order_id FROM "{schema}".lines l
                    JOIN "{r}".settled f ON f.order_id = l.order_id AND f.state = $2
                    WHERE l.sku = ANY($1) AND l.state = 'held'"#
                )))
                .bind(&arrived)
                .bind(state)
                .fetch_all(&mut *tx)
                .await?;
                // Every held line of those orders that the target owns: its own were due to
                // settle when it heard of the settlement; settling them now is the same.
                if !orders.is_empty() {
                    s.settled_lines +=
                        settle_held(&mut tx, &schema, &orders, state, assignment, |sku| {
                            shard_of(sku, to) == target
                        })
                        .await?;
                }
            }
        }
        // 4. The moved rows leave their old owners.
        for (source, _, skus) in &moved {
            for table in [self.lines(*source), self.stock(*source)] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE sku = ANY($1)"
                )))
                .bind(skus)
                .execute(&mut *tx)
                .await?;
            }
        }
        // 5. The ring, and the record.
        sqlx::query(AssertSqlSafe(format!(
            r#"UPDATE "{r}".ring SET epoch = $1, shards = $2, switched_at = now()
            WHERE service = 'inventory'"#
        )))
        .bind(epoch)
        .bind(i32::try_from(to).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
        s.lock_wait_ms = (locked - asked).as_secs_f64() * 1e3;
        s.pause_ms = locked.elapsed().as_secs_f64() * 1e3;
        sqlx::query(AssertSqlSafe(format!(
            r#"INSERT INTO "{r}".handoffs (epoch, from_shards, to_shards, moved_keys, moved_lines,
              synced_keys, settled_lines, lock_wait_ms, pause_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (epoch) DO NOTHING"#
        )))
        .bind(epoch)
        .bind(i32::try_from(from).unwrap_or(i32::MAX))
        .bind(i32::try_from(to).unwrap_or(i32::MAX))
        .bind(i64::try_from(s.moved_keys).unwrap_or(i64::MAX))
        .bind(i64::try_from(s.moved_lines).unwrap_or(i64::MAX))
        .bind(i64::try_from(s.synced_keys).unwrap_or(i64::MAX))
        .bind(i64::try_from(s.settled_lines).unwrap_or(i64::MAX))
        .bind(s.lock_wait_ms)
        .bind(s.pause_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        s.pause_ms = locked.elapsed().as_secs_f64() * 1e3;
        Ok(s)
    }

    /// The switch recorded for `epoch`.
    async fn recorded(&self, epoch: i64, from: u32, to: u32) -> Result<Switched> {
        let r = self.place.ring_schema();
        let row = sqlx::query(AssertSqlSafe(format!(
            r#"SELECT moved_keys, moved_lines, synced_keys, settled_lines, lock_wait_ms, pause_ms
            FROM "{r}".handoffs WHERE epoch = $1"#
        )))
        .bind(epoch)
        .fetch_optional(&self.pool)
        .await?;
        let mut s = Switched {
            epoch,
            from,
            to,
            now: false,
            ..Switched::default()
        };
        if let Some(row) = row {
            let n = |c: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(c)?.max(0) as u64) };
            s.moved_keys = n("moved_keys")?;
            s.moved_lines = n("moved_lines")?;
            s.synced_keys = n("synced_keys")?;
            s.settled_lines = n("settled_lines")?;
            s.lock_wait_ms = row.try_get("lock_wait_ms")?;
            s.pause_ms = row.try_get("pause_ms")?;
        }
        Ok(s)
    }

    /// Drops shard `index`'s schema once it holds nothing (going down: after the switch,
    /// when its pods are gone). Idempotent.
    pub async fn retire(&self, index: u32) -> Result<()> {
        let schema = self.place.schema_of(index);
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
        )
        .bind(&schema)
        .fetch_one(&self.pool)
        .await?;
        if !exists {
            return Ok(());
        }
        let keys: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            self.stock(index)
        )))
        .fetch_one(&self.pool)
        .await?;
        let held: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE state = 'held'",
            self.lines(index)
        )))
        .fetch_one(&self.pool)
        .await?;
        if keys > 0 || held > 0 {
            return Err(HandoffError::NotEmpty { index, keys, held });
        }
        sqlx::query(AssertSqlSafe(format!(
            r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
        )))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn check(from: u32, to: u32) -> Result<()> {
    if from == 0 || to == 0 {
        return Err(HandoffError::Shards { from, to });
    }
    Ok(())
}
