//! Payments' PostgreSQL ledger: one row per order, so one charge per order whatever the
//! redeliveries, across restarts and replicas.
//!
//! ```text
//!   charges  order_id PK, amount_cents, state (in_flight | succeeded | failed | refunded),
//!            charge_id, reason, updated_at
//! ```
//!
//! [`PgLedger::begin`] claims the order (`INSERT .. ON CONFLICT DO NOTHING`) before the
//! provider is called and [`PgLedger::finish`] records its answer, as [`super::domain::Ledger`]
//! does in memory. One addition: a claim left `in_flight` longer than the lease (the pod died
//! mid-charge) may be taken over. That is safe because the provider is always called with
//! the order id as its idempotency key, so a retaken charge returns the first answer instead
//! of charging again.

use std::time::Duration;

use sqlx::{PgPool, Row};
use thiserror::Error;

use super::domain::{Begin, ChargeResult, LedgerError};
use storefront_platform::datastore_metrics::{Datastore, DatastoreFailure, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration, validate_schema};

/// Failures of the ledger.
#[derive(Debug, Error)]
pub enum PgLedgerError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Schema(#[from] db::BadSchema),
    #[error("failed to read the charge of order {order_id}: {detail}")]
    Corrupt { order_id: String, detail: String },
}

type Result<T> = std::result::Result<T, PgLedgerError>;

/// Only a failed query is the datastore's failure; the rest are answers.
impl DatastoreFailure for PgLedgerError {
    fn is_datastore_failure(&self) -> bool {
        matches!(self, PgLedgerError::Db(_))
    }
}

/// One row of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRow {
    /// `in_flight`, `succeeded`, `failed` or `refunded`.
    pub state: String,
    pub amount_cents: i64,
    pub charge_id: Option<String>,
    pub reason: Option<String>,
}

/// The charges of one schema.
#[derive(Clone)]
pub struct PgLedger {
    pool: PgPool,
    schema: String,
    lease: Duration,
}

impl PgLedger {
    /// Connects a pool whose `search_path` is `schema`; `lease` is how long an in-flight
    /// charge is left alone before another delivery may take it over.
    pub async fn connect(
        url: &str,
        schema: &str,
        max_connections: u32,
        lease: Duration,
    ) -> Result<Self> {
        validate_schema(schema)?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
            lease,
        })
    }

    /// The pool (for health checks and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the schema to its last version ([`db::migrate`]; every replica may run it).
    pub async fn migrate(&self) -> Result<()> {
        let s = &self.schema;
        db::migrate(
            &self.pool,
            s,
            "payments",
            vec![Migration::new(
                1,
                "the payments tables",
                vec![
                    format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
                    format!(
                        r#"CREATE TABLE IF NOT EXISTS "{s}".charges (
                    order_id text PRIMARY KEY,
                    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
                    state text NOT NULL
                        CONSTRAINT charges_state_check
                        CHECK (state IN ('in_flight', 'succeeded', 'failed', 'refunded')),
                    charge_id text,
                    reason text,
                    updated_at timestamptz NOT NULL DEFAULT now())"#
                    ),
                ],
            )],
        )
        .await?;
        Ok(())
    }

    /// Claims the charge of `order_id`, unless it is claimed or done.
    pub async fn begin(&self, order_id: &str, amount_cents: i64) -> Result<Begin> {
        timed(datastore_op!(Datastore::Postgres, "begin"), async {
            if amount_cents <= 0 {
                return Err(LedgerError::BadAmount(amount_cents).into());
            }
            let claimed = sqlx::query(
                "INSERT INTO charges (order_id, amount_cents, state) VALUES ($1, $2, 'in_flight') \
                 ON CONFLICT (order_id) DO NOTHING RETURNING 1",
            )
            .bind(order_id)
            .bind(amount_cents)
            .fetch_optional(&self.pool)
            .await?;
            if claimed.is_some() {
                return Ok(Begin::Charge);
            }
            let row = sqlx::query(
                "SELECT amount_cents, state, charge_id, reason FROM charges WHERE order_id = $1",
            )
            .bind(order_id)
            .fetch_one(&self.pool)
            .await?;
            let existing: i64 = row.try_get("amount_cents")?;
            if existing != amount_cents {
                return Err(LedgerError::AmountMismatch {
                    order_id: order_id.to_string(),
                    existing,
                    requested: amount_cents,
                }
                .into());
            }
            let state: String = row.try_get("state")?;
            match state.as_str() {
                "succeeded" => Ok(Begin::Done(ChargeResult::Succeeded {
                    charge_id: row
                        .try_get::<Option<String>, _>("charge_id")?
                        .unwrap_or_default(),
                })),
                "failed" => Ok(Begin::Done(ChargeResult::Failed {
                    reason: row
                        .try_get::<Option<String>, _>("reason")?
                        .unwrap_or_default(),
                })),
                "in_flight" => {
                    let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
                    let retaken = sqlx::query(
                        "UPDATE charges SET updated_at = now() WHERE order_id = $1 AND state = 'in_flight' \
                         AND updated_at < now() - make_interval(secs => $2::double precision / 1000) \
                         RETURNING 1",
                    )
                    .bind(order_id)
                    .bind(lease_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(if retaken.is_some() {
                        Begin::Charge
                    } else {
                        Begin::InFlight
                    })
                }
                other => Err(PgLedgerError::Corrupt {
                    order_id: order_id.to_string(),
                    detail: format!("unexpected state {other:?}"),
                }),
            }
        })
        .await
    }

    /// Gives back a succeeded charge (an order cancelled before its payment came back).
    /// Returns whether it did; refunding twice, or an order never charged, is a no-op.
    pub async fn refund(&self, order_id: &str) -> Result<bool> {
        timed(datastore_op!(Datastore::Postgres, "refund"), async {
            let refunded = sqlx::query(
                "UPDATE charges SET state = 'refunded', updated_at = now() \
                 WHERE order_id = $1 AND state = 'succeeded'",
            )
            .bind(order_id)
            .execute(&self.pool)
            .await?;
            Ok(refunded.rows_affected() == 1)
        })
        .await
    }

    /// The charge of an order: `(state, amount, charge id, reason)`.
    pub async fn get(&self, order_id: &str) -> Result<Option<ChargeRow>> {
        timed(datastore_op!(Datastore::Postgres, "get_charge"), async {
            let row = sqlx::query(
                "SELECT state, amount_cents, charge_id, reason FROM charges WHERE order_id = $1",
            )
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| {
                Ok(ChargeRow {
                    state: r.try_get("state")?,
                    amount_cents: r.try_get("amount_cents")?,
                    charge_id: r.try_get("charge_id")?,
                    reason: r.try_get("reason")?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Records the provider's answer for a claimed charge.
    pub async fn finish(&self, order_id: &str, result: &ChargeResult) -> Result<()> {
        timed(datastore_op!(Datastore::Postgres, "finish"), async {
            let (state, charge_id, reason) = match result {
                ChargeResult::Succeeded { charge_id } => {
                    ("succeeded", Some(charge_id.as_str()), None)
                }
                ChargeResult::Failed { reason } => ("failed", None, Some(reason.as_str())),
            };
            let updated = sqlx::query(
                "UPDATE charges SET state = $2, charge_id = $3, reason = $4, updated_at = now() \
                 WHERE order_id = $1 AND state = 'in_flight'",
            )
            .bind(order_id)
            .bind(state)
            .bind(charge_id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
            if updated.rows_affected() == 1 {
                Ok(())
            } else {
                Err(LedgerError::NotInFlight(order_id.to_string()).into())
            }
        })
        .await
    }
}
