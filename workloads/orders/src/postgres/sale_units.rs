//! How many units of some SKUs a user's orders hold since an instant: the count behind the
//! flash sales' per-customer caps ([`crate::domain::sale_limits`]).
//!
//! The lines of an order are those of its `OrderCreated` event (`order_events` seq 1, JSONB
//! `lines[].sku/quantity`); its creation time is `order_index.created_at` (unix seconds, the
//! index `order_index_by_user` finds a user's orders since an instant). An order with an
//! `OrderCancelled` event holds nothing. Run inside the create transaction, after the user's
//! advisory lock, so no order of the same user can commit between the count and the insert.

use std::collections::BTreeMap;

use sqlx::{Postgres, Row, Transaction};

use super::Result;

/// Units per SKU among `skus` in `user_id`'s orders created at or after `since` (unix
/// seconds) and not cancelled; an SKU with none is absent.
pub(super) async fn units_since(
    tx: &mut Transaction<'_, Postgres>,
    user_id: &str,
    since: i64,
    skus: &[&str],
) -> Result<BTreeMap<String, i64>> {
    if skus.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = sqlx::query(
        "SELECT l.sku, sum(l.quantity)::bigint AS units \
         FROM order_index i \
         JOIN order_events e ON e.order_id = i.order_id AND e.seq = 1 \
         CROSS JOIN LATERAL jsonb_to_recordset(e.payload->'lines') AS l(sku text, quantity bigint) \
         WHERE i.user_id = $1 AND i.created_at >= $2 AND l.sku = ANY($3) \
           AND NOT EXISTS (SELECT 1 FROM order_events c \
                           WHERE c.order_id = i.order_id AND c.type = 'OrderCancelled') \
         GROUP BY l.sku",
    )
    .bind(user_id)
    .bind(since)
    .bind(skus)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("sku")?, r.try_get("units")?)))
        .collect()
}
