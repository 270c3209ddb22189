//! Orders' PostgreSQL store: the append-only event log, the transactional outbox and the
//! `Idempotency-Key` records, in the service's (or shard's) own schema.
//!
//! ```text
//!   order_events (order_id, seq) PK, type, payload   ← the only source of an order's state
//!   order_index  order_id PK, user_id, created_at    ← "my orders, newest first" (immutable)
//!   idempotency  (user_id, key) PK, fingerprint, order_id
//!   outbox       id, message_id UNIQUE, subject, payload, published_at
//!   open_orders  order_id PK, created_at, user_id       ← pending orders (timeouts, the cap)
//! ```
//!
//! - Creating an order writes its key record, `OrderCreated`, the index row and the outbox
//!   row in one transaction: a retry after a crash finds all or nothing. With a pending cap
//!   ([`PgOrders::with_pending_cap`]) or flash sales' per-customer caps
//!   ([`PgOrders::create_under`], counted by [`sale_units`]) the transaction first takes a
//!   per-user advisory lock and counts the user's open orders and units, so two concurrent
//!   orders cannot both pass a cap.
//! - Appending is optimistic: events go in at `version + 1..`; the primary key refuses a
//!   second writer that decided from the same version ([`PgOrdersError::Concurrent`]), which
//!   then reloads and decides again ([`PgOrders::apply`]).
//! - Events others must hear (`OrderCreated`, `StockReserved`, `OrderConfirmed`,
//!   `OrderCancelled`, `RefundRequested`) get an
//!   outbox row in the same transaction; a relay publishes them to JetStream with the
//!   event's message id (broker de-duplication) and marks them published.
//! - Every public method is counted and timed as a `postgres` request
//!   ([`storefront_platform::datastore_metrics`]); one that calls another (`list` loads each order) counts
//!   both.

use sqlx::{PgPool, Postgres, Row, Transaction};
use thiserror::Error;

use super::{
    domain::{
        BusMessage, Decision, Order, OrderEvent, ProjectionError, SagaInput, Step,
        ports::{Appended, OrderLog},
        sale_limits::{self, OverSaleLimit, SaleLimit},
        step,
    },
    idempotency::{Fingerprint, IdempotencyDecision, IdempotencyRecord, check},
};
use storefront_platform::datastore_metrics::{Datastore, DatastoreFailure, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration, validate_schema};

/// Failures of the orders store.
#[derive(Debug, Error)]
pub enum PgOrdersError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] db::BadSchema),
    #[error("order {0} changed meanwhile; reload and decide again")]
    Concurrent(String),
    #[error("failed to fold the history of order {order_id}: {source}")]
    Projection {
        order_id: String,
        source: ProjectionError,
    },
    #[error("failed to read a stored event: {0}")]
    Corrupt(String),
    #[error("the first event of a new order must be OrderCreated")]
    NotCreated,
}

mod sale_units;

type Result<T> = std::result::Result<T, PgOrdersError>;

/// Only a failed query is the datastore's failure; the rest are answers.
impl DatastoreFailure for PgOrdersError {
    fn is_datastore_failure(&self) -> bool {
        matches!(self, PgOrdersError::Db(_))
    }
}

/// The answer to a create request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new order.
    New(Order),
    /// The key was used with the same body: the order made then.
    Replay(Order),
    /// The key was used with another body.
    Conflict,
    /// The user already has `pending` orders waiting for stock or payment, the most the shop
    /// allows at once (`cap`): nothing was written, the key is still free.
    TooManyPending { pending: i64, cap: u32 },
    /// The order would take the user past a flash sale's per-customer cap on a SKU: nothing
    /// was written, the key is still free.
    OverSaleLimit(OverSaleLimit),
}

/// The PostgreSQL notification channel that says "the outbox of schema <payload> has rows".
pub const OUTBOX_CHANNEL: &str = "storefront_outbox";

/// An outbox row waiting to be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub message_id: String,
    pub subject: String,
    pub payload: String,
}

/// Whether other services must hear of this event (and its NATS subject).
pub fn published_subject(event: &OrderEvent) -> Option<String> {
    match event {
        OrderEvent::OrderCreated { .. }
        | OrderEvent::StockRequested { .. }
        | OrderEvent::StockReserved { .. }
        | OrderEvent::OrderConfirmed { .. }
        | OrderEvent::OrderCancelled { .. }
        | OrderEvent::RefundRequested { .. } => Some(format!("orders.{}", event.kind())),
        _ => None,
    }
}

fn to_json(event: &OrderEvent) -> String {
    // Events are plain data and always serialize.
    serde_json::to_string(event).unwrap_or_else(|_| "null".into())
}

/// The orders store of one schema.
#[derive(Clone)]
pub struct PgOrders {
    pool: PgPool,
    schema: String,
    /// The most pending orders one user may have at once (none: no cap).
    pending_cap: Option<u32>,
}

impl PgOrders {
    /// Connects a pool whose `search_path` is `schema`.
    pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        validate_schema(schema)?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
            pending_cap: None,
        })
    }

    /// This store refusing a user's order while `cap` of theirs are pending (a stock hoard:
    /// a pending order holds its stock until it is confirmed, cancelled or timed out).
    pub fn with_pending_cap(mut self, cap: u32) -> Self {
        self.pending_cap = Some(cap);
        self
    }

    /// The pool (for health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema this store writes.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Brings the schema to its last version ([`db::migrate`]; every replica may run it).
    pub async fn migrate(&self) -> Result<()> {
        let s = &self.schema;
        db::migrate(
            &self.pool,
            s,
            "orders",
            vec![
                Migration::new(
                    1,
                    "the orders tables",
                    vec![
                        format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".order_events (
                    order_id text NOT NULL,
                    seq bigint NOT NULL CHECK (seq >= 1),
                    type text NOT NULL,
                    payload jsonb NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (order_id, seq))"#
                        ),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".order_index (
                    order_id text PRIMARY KEY,
                    user_id text NOT NULL,
                    created_at bigint NOT NULL)"#
                        ),
                        format!(
                            r#"CREATE INDEX IF NOT EXISTS order_index_by_user
                    ON "{s}".order_index (user_id, created_at DESC, order_id DESC)"#
                        ),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".idempotency (
                    user_id text NOT NULL,
                    key text NOT NULL,
                    fingerprint text NOT NULL,
                    order_id text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (user_id, key))"#
                        ),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".outbox (
                    id bigserial PRIMARY KEY,
                    message_id text NOT NULL UNIQUE,
                    subject text NOT NULL,
                    payload jsonb NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    published_at timestamptz)"#
                        ),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".open_orders (
                    order_id text PRIMARY KEY,
                    created_at bigint NOT NULL)"#
                        ),
                        format!(
                            r#"CREATE INDEX IF NOT EXISTS open_orders_by_age
                    ON "{s}".open_orders (created_at)"#
                        ),
                        format!(
                            r#"CREATE INDEX IF NOT EXISTS outbox_unpublished
                    ON "{s}".outbox (id) WHERE published_at IS NULL"#
                        ),
                    ],
                ),
                Migration::new(
                    2,
                    "pending orders by user (the pending-order cap)",
                    vec![
                        format!(
                            r#"ALTER TABLE "{s}".open_orders ADD COLUMN IF NOT EXISTS user_id text"#
                        ),
                        format!(
                            r#"UPDATE "{s}".open_orders o SET user_id = i.user_id
                    FROM "{s}".order_index i WHERE i.order_id = o.order_id AND o.user_id IS NULL"#
                        ),
                        format!(
                            r#"CREATE INDEX IF NOT EXISTS open_orders_by_user
                    ON "{s}".open_orders (user_id)"#
                        ),
                    ],
                ),
            ],
        )
        .await?;
        Ok(())
    }

    /// Creates the order of `created` (an `OrderCreated`) under `(user, key)`, or answers
    /// what the key already stands for.
    pub async fn create(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        created: OrderEvent,
    ) -> Result<Created> {
        self.create_under(key, fingerprint, created, &[]).await
    }

    /// [`PgOrders::create`] within the per-customer caps of the flash sales in force
    /// (`limits`): a new order that would take the user past one is refused
    /// ([`Created::OverSaleLimit`]). A key already used answers as before, caps or not.
    pub async fn create_under(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        created: OrderEvent,
        limits: &[SaleLimit],
    ) -> Result<Created> {
        timed(datastore_op!(Datastore::Postgres, "create_order"), async {
            let OrderEvent::OrderCreated {
                order_id,
                user_id,
                created_at,
                lines,
                ..
            } = &created
            else {
                return Err(PgOrdersError::NotCreated);
            };
            let mut tx = self.pool.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO idempotency (user_id, key, fingerprint, order_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, key) DO NOTHING RETURNING 1",
            )
            .bind(user_id)
            .bind(key)
            .bind(&fingerprint.0)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_none() {
                let row = sqlx::query(
                    "SELECT fingerprint, order_id FROM idempotency WHERE user_id = $1 AND key = $2",
                )
                .bind(user_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
                let record = IdempotencyRecord {
                    user_id: user_id.clone(),
                    key: key.to_string(),
                    fingerprint: Fingerprint(row.try_get("fingerprint")?),
                    order_id: row.try_get("order_id")?,
                };
                tx.commit().await?;
                return match check(Some(&record), fingerprint) {
                    IdempotencyDecision::Replay { order_id } => match self.load(&order_id).await? {
                        Some(order) => Ok(Created::Replay(order)),
                        None => Err(PgOrdersError::Corrupt(format!(
                            "order {order_id} of key {key} has no events"
                        ))),
                    },
                    IdempotencyDecision::Conflict => Ok(Created::Conflict),
                    IdempotencyDecision::Proceed => {
                        Err(PgOrdersError::Corrupt("key record vanished".into()))
                    }
                };
            }
            // Caps that cover no line of this order cost nothing, not even the lock.
            let capped = limits.iter().any(|l| !l.covered(lines).is_empty());
            if self.pending_cap.is_some() || capped {
                // One creation per user at a time (the counts and the insert must not race).
                // The key names "pending" for the pods that take it for the pending cap only.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("{}:pending:{user_id}", self.schema))
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(cap) = self.pending_cap {
                let pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM open_orders WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if pending >= i64::from(cap) {
                    tx.rollback().await?;
                    return Ok(Created::TooManyPending { pending, cap });
                }
            }
            let mut held = Vec::with_capacity(limits.len());
            for limit in limits {
                // No query for a cap that covers no line.
                let skus = limit.covered(lines);
                held.push(sale_units::units_since(&mut tx, user_id, limit.since, &skus).await?);
            }
            if let Some(over) = sale_limits::check(limits, &held, lines) {
                tx.rollback().await?;
                return Ok(Created::OverSaleLimit(over));
            }
            sqlx::query("INSERT INTO order_index (order_id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(order_id)
                .bind(user_id)
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO open_orders (order_id, created_at, user_id) VALUES ($1, $2, $3)")
                .bind(order_id)
                .bind(created_at)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let order = Order::fold(std::slice::from_ref(&created)).map_err(|source| {
                PgOrdersError::Projection {
                    order_id: order_id.clone(),
                    source,
                }
            })?;
            insert_events(&mut tx, order_id, 0, std::slice::from_ref(&created)).await?;
            tx.commit().await?;
            Ok(Created::New(order))
        })
        .await
    }

    /// An order folded from its events.
    pub async fn load(&self, order_id: &str) -> Result<Option<Order>> {
        timed(datastore_op!(Datastore::Postgres, "load_order"), async {
            let rows = sqlx::query(
                "SELECT payload::text AS payload FROM order_events WHERE order_id = $1 ORDER BY seq",
            )
            .bind(order_id)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            let events = rows
                .iter()
                .map(|row| {
                    let text: String = row.try_get("payload")?;
                    serde_json::from_str::<OrderEvent>(&text)
                        .map_err(|e| PgOrdersError::Corrupt(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            Order::fold(&events)
                .map(Some)
                .map_err(|source| PgOrdersError::Projection {
                    order_id: order_id.to_string(),
                    source,
                })
        })
        .await
    }

    /// A user's orders, newest first.
    pub async fn list(&self, user_id: &str, limit: i64) -> Result<Vec<Order>> {
        timed(datastore_op!(Datastore::Postgres, "list_orders"), async {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT order_id FROM order_index WHERE user_id = $1 \
                 ORDER BY created_at DESC, order_id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.pool)
            .await?;
            let mut orders = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(order) = self.load(&id).await? {
                    orders.push(order);
                }
            }
            Ok(orders)
        })
        .await
    }

    /// Appends `events` after `expected_version`; [`PgOrdersError::Concurrent`] if another
    /// writer got there first.
    pub async fn append(
        &self,
        order_id: &str,
        expected_version: u64,
        events: &[OrderEvent],
    ) -> Result<()> {
        timed(datastore_op!(Datastore::Postgres, "append"), async {
            if events.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            insert_events(&mut tx, order_id, expected_version, events).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The saga step for one input ([`crate::domain::step`]): load, decide, append; reloads
    /// and decides again when another writer appended meanwhile. `None` if the order does
    /// not exist (yet); [`PgOrdersError::Concurrent`] if every attempt lost.
    pub async fn apply(&self, order_id: &str, input: &SagaInput) -> Result<Option<Decision>> {
        match step(self, order_id, input).await? {
            Step::Applied(decision) => Ok(Some(decision)),
            Step::NoOrder => Ok(None),
            Step::Contended => Err(PgOrdersError::Concurrent(order_id.to_string())),
        }
    }

    /// Up to `limit` unpublished outbox rows, oldest first, locked for this relay until its
    /// transaction ends (other relays skip them).
    pub async fn claim_outbox(
        &self,
        limit: i64,
    ) -> Result<(Transaction<'static, Postgres>, Vec<OutboxMessage>)> {
        timed(datastore_op!(Datastore::Postgres, "claim_outbox"), async {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(
                "SELECT id, message_id, subject, payload::text AS payload FROM outbox \
                 WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(limit.clamp(1, 1000))
            .fetch_all(&mut *tx)
            .await?;
            let messages = rows
                .iter()
                .map(|r| {
                    Ok(OutboxMessage {
                        id: r.try_get("id")?,
                        message_id: r.try_get("message_id")?,
                        subject: r.try_get("subject")?,
                        payload: r.try_get("payload")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((tx, messages))
        })
        .await
    }

    /// Pending orders created at or before `created_before` (unix seconds), oldest first.
    pub async fn overdue(&self, created_before: i64, limit: i64) -> Result<Vec<String>> {
        timed(datastore_op!(Datastore::Postgres, "overdue"), async {
            let rows = sqlx::query(
                "SELECT order_id FROM open_orders WHERE created_at <= $1 ORDER BY created_at LIMIT $2",
            )
            .bind(created_before)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| r.try_get("order_id").map_err(PgOrdersError::from))
                .collect()
        })
        .await
    }

    /// Marks claimed rows published and commits the relay's transaction.
    pub async fn mark_published(mut tx: Transaction<'static, Postgres>, ids: &[i64]) -> Result<()> {
        timed(
            datastore_op!(Datastore::Postgres, "mark_published"),
            async {
                sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            },
        )
        .await
    }
}

/// The event log port of the domain's saga step.
impl OrderLog for PgOrders {
    type Error = PgOrdersError;

    async fn load(&self, order_id: &str) -> Result<Option<Order>> {
        PgOrders::load(self, order_id).await
    }

    async fn append(
        &self,
        order_id: &str,
        expected_version: u64,
        events: &[OrderEvent],
    ) -> Result<Appended> {
        match PgOrders::append(self, order_id, expected_version, events).await {
            Ok(()) => Ok(Appended::Done),
            Err(PgOrdersError::Concurrent(_)) => Ok(Appended::Conflict),
            Err(e) => Err(e),
        }
    }
}

/// Inserts events at `after + 1..` with their outbox rows.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    order_id: &str,
    after: u64,
    events: &[OrderEvent],
) -> Result<()> {
    for (i, event) in events.iter().enumerate() {
        let seq = i64::try_from(after)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::try_from(i).unwrap_or(0) + 1);
        let inserted = sqlx::query(
            "INSERT INTO order_events (order_id, seq, type, payload) VALUES ($1, $2, $3, $4::jsonb) \
             ON CONFLICT (order_id, seq) DO NOTHING RETURNING 1",
        )
        .bind(order_id)
        .bind(seq)
        .bind(event.kind())
        .bind(to_json(event))
        .fetch_optional(&mut **tx)
        .await?;
        if inserted.is_none() {
            return Err(PgOrdersError::Concurrent(order_id.to_string()));
        }
        if matches!(
            event,
            OrderEvent::OrderConfirmed { .. } | OrderEvent::OrderCancelled { .. }
        ) {
            sqlx::query("DELETE FROM open_orders WHERE order_id = $1")
                .bind(order_id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(subject) = published_subject(event) {
            sqlx::query(
                "INSERT INTO outbox (message_id, subject, payload) VALUES ($1, $2, $3::jsonb) \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(event.message_id())
            .bind(subject)
            .bind(to_json(event))
            .execute(&mut **tx)
            .await?;
            // Wakes the relays (delivered at commit; the payload names the schema).
            sqlx::query("SELECT pg_notify($1, current_schema())")
                .bind(OUTBOX_CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ShardHeld;

    #[test]
    fn what_the_saga_publishes_and_what_stays_in_the_history() {
        let id = || "o1".to_string();
        let published = [
            OrderEvent::StockRequested {
                order_id: id(),
                lines: vec![],
                attempt: 1,
            },
            OrderEvent::StockReserved {
                order_id: id(),
                total_cents: 1,
            },
            OrderEvent::OrderConfirmed { order_id: id() },
        ];
        for e in &published {
            assert_eq!(
                published_subject(e),
                Some(format!("orders.{}", e.kind())),
                "{e:?}"
            );
        }
        // Replies are recorded, never re-published.
        let reply = OrderEvent::StockHeld(ShardHeld::by_place(id(), 0, 1));
        assert_eq!(published_subject(&reply), None);
    }
}
