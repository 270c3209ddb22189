//! The operations on an order's lines in a shard: reserve (a store without a ring), hold
//! (by the ring in force), release and commit, and settling `held` lines (which the
//! resharding handoff shares). The rules are the module doc's ([`super`]).

use super::*;

impl PgInventory {
    /// Reserves every line of `order_id`, or nothing; idempotent per order id. Every line
    /// must be this shard's (the gRPC adapter checks); lines of a SKU another shard owns
    /// are left to that shard.
    pub async fn reserve(&self, order_id: &str, lines: &[(String, u32)]) -> Result<ReserveOutcome> {
        let held = timed(
            datastore_op!(Datastore::Postgres, "reserve"),
            self.hold_lines(order_id, lines, true),
        )
        .await?;
        Ok(held.outcome)
    }

    /// Holds the lines of `order_id` that this shard owns now, all or nothing, and answers
    /// which SKUs of the order it holds. Idempotent per order id and line.
    pub async fn hold(&self, order_id: &str, lines: &[(String, u32)]) -> Result<Held> {
        timed(
            datastore_op!(Datastore::Postgres, "reserve"),
            self.hold_lines(order_id, lines, false),
        )
        .await
    }

    /// What [`PgInventory::reserve`] and [`PgInventory::hold`] share (not timed: each of them is).
    /// `strict`: every line must be this shard's (else [`PgInventoryError::NotOwner`]).
    async fn hold_lines(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
        strict: bool,
    ) -> Result<Held> {
        let wanted = merge_lines(lines)?;
        let (mut tx, ring) = self.enter().await?;
        if strict && let Some(sku) = wanted.keys().find(|sku| !self.owns(ring, sku)) {
            return Err(PgInventoryError::NotOwner {
                sku: sku.clone(),
                owner: shard_of(sku, ring.shards),
                shards: ring.shards,
                epoch: ring.epoch,
            });
        }
        let owned: BTreeMap<String, u32> = wanted
            .into_iter()
            .filter(|(sku, _)| self.owns(ring, sku))
            .collect();
        let answer = |outcome, skus| Held {
            outcome,
            skus,
            ring,
        };
        if owned.is_empty() {
            tx.commit().await?;
            return Ok(answer(ReserveOutcome::Reserved, Vec::new()));
        }
        let settled: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            r#"SELECT state FROM "{}".settled WHERE order_id = $1"#,
            self.settled_schema()
        )))
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        if settled.as_deref() == Some("released") {
            // Cancelled first: nothing is held for a dead order, on any shard.
            tx.commit().await?;
            return Ok(answer(
                ReserveOutcome::Rejected(Rejection::OrderCancelled),
                Vec::new(),
            ));
        }
        let skus: Vec<&str> = owned.keys().map(String::as_str).collect();
        let quantities: Vec<i64> = owned.values().map(|&q| i64::from(q)).collect();
        let claimed: Vec<String> = if settled.is_some() {
            // Confirmed: its lines are held (or sold) wherever their SKUs are; claim nothing.
            Vec::new()
        } else {
            sqlx::query_scalar(
                "INSERT INTO lines (order_id, sku, quantity, state) \
                 SELECT $1, w.sku, w.q, 'pending' FROM unnest($2::text[], $3::bigint[]) AS w(sku, q) \
                 ON CONFLICT (order_id, sku) DO NOTHING RETURNING sku",
            )
            .bind(order_id)
            .bind(&skus)
            .bind(&quantities)
            .fetch_all(&mut *tx)
            .await?
        };
        // What was decided before for the other lines (a redelivery, or lines that moved here).
        let before = sqlx::query(
            "SELECT sku, state, rejection::text AS rejection FROM lines \
             WHERE order_id = $1 AND sku = ANY($2) AND NOT (sku = ANY($3))",
        )
        .bind(order_id)
        .bind(&skus)
        .bind(&claimed)
        .fetch_all(&mut *tx)
        .await?;
        let mut holding = Vec::new();
        let mut earlier: Option<Rejection> = None;
        for row in &before {
            let sku: String = row.try_get("sku")?;
            let state: String = row.try_get("state")?;
            match state.as_str() {
                "held" | "committed" => holding.push(sku),
                "released" => {
                    earlier.get_or_insert(Rejection::OrderCancelled);
                }
                "rejected" => {
                    let text: Option<String> = row.try_get("rejection")?;
                    let r = serde_json::from_str(&text.unwrap_or_default()).map_err(|e| {
                        PgInventoryError::Corrupt {
                            order_id: order_id.to_string(),
                            detail: e.to_string(),
                        }
                    })?;
                    earlier = Some(r);
                }
                other => {
                    return Err(PgInventoryError::Corrupt {
                        order_id: order_id.to_string(),
                        detail: format!("line {sku} in state {other:?}"),
                    });
                }
            }
        }
        if claimed.is_empty() {
            tx.commit().await?;
            let outcome = earlier.map_or(ReserveOutcome::Reserved, ReserveOutcome::Rejected);
            return Ok(answer(outcome, holding));
        }
        let rows = sqlx::query(
            "SELECT sku, stock, reserved FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
        )
        .bind(&claimed)
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
        let rejection = earlier.or_else(|| {
            claimed.iter().find_map(|sku| {
                let requested = owned.get(sku).copied().unwrap_or(0);
                line_rejection(sku, requested, levels.get(sku))
            })
        });
        if let Some(rejection) = rejection {
            sqlx::query(
                "UPDATE lines SET state = 'rejected', rejection = $3::jsonb, updated_at = now() \
                 WHERE order_id = $1 AND sku = ANY($2)",
            )
            .bind(order_id)
            .bind(&claimed)
            .bind(to_json(&rejection))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(answer(ReserveOutcome::Rejected(rejection), holding));
        }
        let claimed_quantities: Vec<i64> = claimed
            .iter()
            .map(|sku| i64::from(owned.get(sku).copied().unwrap_or(0)))
            .collect();
        sqlx::query(
            "UPDATE stock AS s SET reserved = s.reserved + w.q \
             FROM unnest($1::text[], $2::bigint[]) AS w(sku, q) WHERE s.sku = w.sku",
        )
        .bind(&claimed)
        .bind(&claimed_quantities)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE lines SET state = 'held', updated_at = now() \
             WHERE order_id = $1 AND sku = ANY($2)",
        )
        .bind(order_id)
        .bind(&claimed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        holding.extend(claimed);
        holding.sort();
        Ok(answer(ReserveOutcome::Reserved, holding))
    }

    /// Gives back what `order_id` holds here; `false` if it held nothing (the order is
    /// recorded as cancelled, so a late reservation is refused on every shard).
    pub async fn release(&self, order_id: &str) -> Result<bool> {
        timed(
            datastore_op!(Datastore::Postgres, "release"),
            self.settle(order_id, "released", "reserved = s.reserved - w.q"),
        )
        .await
    }

    /// Turns what `order_id` holds here into sold units; `false` if it held nothing.
    pub async fn commit(&self, order_id: &str) -> Result<bool> {
        timed(
            datastore_op!(Datastore::Postgres, "commit"),
            self.settle(
                order_id,
                "committed",
                "reserved = s.reserved - w.q, stock = s.stock - w.q",
            ),
        )
        .await
    }

    async fn settle(
        &self,
        order_id: &str,
        state: &'static str,
        assignment: &'static str,
    ) -> Result<bool> {
        let (mut tx, ring) = self.enter().await?;
        // The first settlement wins (a commit after a release, or the reverse, cannot
        // happen in the saga; a redelivery finds it recorded).
        sqlx::query(AssertSqlSafe(format!(
            r#"INSERT INTO "{}".settled (order_id, state) VALUES ($1, $2)
            ON CONFLICT (order_id) DO NOTHING"#,
            self.settled_schema()
        )))
        .bind(order_id)
        .bind(state)
        .execute(&mut *tx)
        .await?;
        let settled = settle_held(
            &mut tx,
            "",
            &[order_id.to_string()],
            state,
            assignment,
            |sku| self.owns(ring, sku),
        )
        .await?;
        tx.commit().await?;
        Ok(settled > 0)
    }
}

/// Settles the `held` lines of `orders` in `schema` (`""`: the search path) whose SKU `owned`
/// accepts, as `state`, applying `assignment` to their stock rows (locked in SKU order first,
/// as a reservation does). A schema can hold copies of keys it does not own yet (a
/// resharding's copy before its switch): those are never touched. Returns how many lines it
/// settled.
pub(crate) async fn settle_held(
    tx: &mut sqlx::PgConnection,
    schema: &str,
    orders: &[String],
    state: &str,
    assignment: &str,
    owned: impl Fn(&str) -> bool,
) -> Result<u64> {
    let q = |table: &str| {
        if schema.is_empty() {
            table.to_string()
        } else {
            format!(r#""{schema}".{table}"#)
        }
    };
    let (lines, stock) = (q("lines"), q("stock"));
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT sku, sum(quantity)::bigint AS q FROM {lines} \
         WHERE order_id = ANY($1) AND state = 'held' GROUP BY sku ORDER BY sku"
    )))
    .bind(orders)
    .fetch_all(&mut *tx)
    .await?;
    let mut skus = Vec::with_capacity(rows.len());
    let mut quantities = Vec::with_capacity(rows.len());
    for row in rows {
        let sku: String = row.try_get("sku")?;
        if owned(&sku) {
            skus.push(sku);
            quantities.push(row.try_get::<i64, _>("q")?);
        }
    }
    if skus.is_empty() {
        return Ok(0);
    }
    sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM {stock} WHERE sku = ANY($1) ORDER BY sku FOR UPDATE"
    )))
    .bind(&skus)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {stock} AS s SET {assignment} \
         FROM unnest($1::text[], $2::bigint[]) AS w(sku, q) WHERE s.sku = w.sku"
    )))
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    let settled = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {lines} SET state = $2, updated_at = now() \
         WHERE order_id = ANY($1) AND state = 'held' AND sku = ANY($3)"
    )))
    .bind(orders)
    .bind(state)
    .bind(&skus)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(settled)
}
