//! Auth's PostgreSQL user store, in the service's own schema: `users` with a unique email,
//! and (version 2) `attempts`, the throttle's counters ([`AttemptStore`]): one row per
//! scope and subject (a canonical email or a client address) with the attempts counted, the
//! last one's instant and the instant a block ends, in unix milliseconds of the replicas'
//! clocks (NTP keeps them within milliseconds of each other; the blocks are seconds).
//! Each lookup and insert is counted and timed as a `postgres` request
//! ([`storefront_platform::datastore_metrics`]; an email already taken is an answer, not an error).
//!
//! An admission reads the row first without a lock: a blocked key (every request of a
//! flood but a few) is refused on that read, with no write. Otherwise, in one transaction,
//! an upsert creates or locks the row and returns it, the policy decides in Rust (the one
//! copy of the rule, [`crate::domain::throttle`]) and the new state is written: concurrent
//! admissions of one key, from any replica, queue on the row lock and each sees the
//! others' counts.

use sqlx::{PgPool, Row, postgres::PgRow};

use super::{
    domain::throttle::{Admission, AttemptKey, Attempts, Policy, UnixMillis},
    ports::{AttemptStore, StoreFuture},
    service::{StoreError, User, UserStore},
};
use storefront_platform::datastore_metrics::{Datastore, DatastoreFailure, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration, validate_schema};

impl DatastoreFailure for StoreError {
    fn is_datastore_failure(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Users in PostgreSQL.
#[derive(Clone)]
pub struct PgUserStore {
    pool: PgPool,
    schema: String,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl PgUserStore {
    /// Connects a pool whose `search_path` is `schema`.
    pub async fn connect(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        validate_schema(schema).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pool = db::schema_pool(url, schema, max_connections)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
        })
    }

    /// The pool (for health checks and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the schema to its last version ([`db::migrate`]; every replica may run it).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let s = &self.schema;
        db::migrate(
            &self.pool,
            s,
            "auth",
            vec![
                Migration::new(
                    1,
                    "the auth tables",
                    vec![
                        format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
                        format!(
                            r#"CREATE TABLE IF NOT EXISTS "{s}".users (
                    id text PRIMARY KEY,
                    email text NOT NULL UNIQUE,
                    name text,
                    password_hash text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now())"#
                        ),
                    ],
                ),
                Migration::new(
                    2,
                    "the sign-in and sign-up throttle's counters",
                    vec![
                        format!(
                            r#"CREATE TABLE "{s}".attempts (
                    scope text NOT NULL,
                    subject text NOT NULL,
                    attempts bigint NOT NULL DEFAULT 0,
                    last_attempt_ms bigint NOT NULL DEFAULT 0,
                    blocked_until_ms bigint NOT NULL DEFAULT 0,
                    PRIMARY KEY (scope, subject))"#
                        ),
                        format!(
                            r#"CREATE INDEX attempts_by_last_attempt ON "{s}".attempts (last_attempt_ms)"#
                        ),
                    ],
                ),
            ],
        )
        .await
        .map_err(unavailable)
    }
}

impl UserStore for PgUserStore {
    async fn insert(&self, user: User) -> Result<(), StoreError> {
        timed(datastore_op!(Datastore::Postgres, "insert_user"), async {
            let inserted = sqlx::query(
                "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING RETURNING 1",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
            match inserted {
                Some(_) => Ok(()),
                None => Err(StoreError::EmailTaken(user.email)),
            }
        })
        .await
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        timed(datastore_op!(Datastore::Postgres, "user_by_email"), async {
            let row =
                sqlx::query("SELECT id, email, name, password_hash FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
            row.map(|r| {
                Ok(User {
                    id: r.try_get("id").map_err(unavailable)?,
                    email: r.try_get("email").map_err(unavailable)?,
                    name: r.try_get("name").map_err(unavailable)?,
                    password_hash: r.try_get("password_hash").map_err(unavailable)?,
                })
            })
            .transpose()
        })
        .await
    }
}

fn attempts(row: &PgRow) -> Result<Attempts, StoreError> {
    let count: i64 = row.try_get("attempts").map_err(unavailable)?;
    Ok(Attempts {
        count: u64::try_from(count).unwrap_or(0),
        last: row.try_get("last_attempt_ms").map_err(unavailable)?,
        blocked_until: row.try_get("blocked_until_ms").map_err(unavailable)?,
    })
}

impl PgUserStore {
    async fn admit_attempt(
        &self,
        key: &AttemptKey,
        policy: &Policy,
        now: UnixMillis,
    ) -> Result<Admission, StoreError> {
        let scope = key.scope.as_str();
        // Refused on a plain read while blocked: a flood at one key writes nothing.
        let seen = sqlx::query(
            "SELECT attempts, last_attempt_ms, blocked_until_ms FROM attempts \
             WHERE scope = $1 AND subject = $2",
        )
        .bind(scope)
        .bind(&key.subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if let Some(row) = seen
            && let refused @ Admission::Refused(_) = policy.admit(attempts(&row)?, now)
        {
            return Ok(refused);
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Creates the row or locks it (the no-op update), and returns it as it is.
        let row = sqlx::query(
            "INSERT INTO attempts (scope, subject) VALUES ($1, $2) \
             ON CONFLICT (scope, subject) DO UPDATE SET attempts = attempts.attempts \
             RETURNING attempts, last_attempt_ms, blocked_until_ms",
        )
        .bind(scope)
        .bind(&key.subject)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let admission = policy.admit(attempts(&row)?, now);
        if let Admission::Admitted(next) = admission {
            write_attempts(&mut tx, key, next).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(admission)
    }

    async fn refund_attempt(&self, key: &AttemptKey, policy: &Policy) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row = sqlx::query(
            "SELECT attempts, last_attempt_ms, blocked_until_ms FROM attempts \
             WHERE scope = $1 AND subject = $2 FOR UPDATE",
        )
        .bind(key.scope.as_str())
        .bind(&key.subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(row) = row {
            let next = policy.refund(attempts(&row)?);
            write_attempts(&mut tx, key, next).await?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

/// Writes `state` as `key`'s row (which exists, locked by the caller's transaction).
async fn write_attempts(
    tx: &mut sqlx::PgConnection,
    key: &AttemptKey,
    state: Attempts,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE attempts SET attempts = $3, last_attempt_ms = $4, blocked_until_ms = $5 \
         WHERE scope = $1 AND subject = $2",
    )
    .bind(key.scope.as_str())
    .bind(&key.subject)
    .bind(i64::try_from(state.count).unwrap_or(i64::MAX))
    .bind(state.last)
    .bind(state.blocked_until)
    .execute(tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

impl AttemptStore for PgUserStore {
    fn admit<'a>(
        &'a self,
        key: &'a AttemptKey,
        policy: &'a Policy,
        now: UnixMillis,
    ) -> StoreFuture<'a, Admission> {
        Box::pin(timed(
            datastore_op!(Datastore::Postgres, "admit_attempt"),
            self.admit_attempt(key, policy, now),
        ))
    }

    fn refund<'a>(&'a self, key: &'a AttemptKey, policy: &'a Policy) -> StoreFuture<'a, ()> {
        Box::pin(timed(
            datastore_op!(Datastore::Postgres, "refund_attempt"),
            self.refund_attempt(key, policy),
        ))
    }

    fn clear<'a>(&'a self, key: &'a AttemptKey) -> StoreFuture<'a, ()> {
        Box::pin(timed(
            datastore_op!(Datastore::Postgres, "clear_attempts"),
            async move {
                sqlx::query("DELETE FROM attempts WHERE scope = $1 AND subject = $2")
                    .bind(key.scope.as_str())
                    .bind(&key.subject)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
        ))
    }

    fn sweep(&self, before: UnixMillis) -> StoreFuture<'_, u64> {
        Box::pin(timed(
            datastore_op!(Datastore::Postgres, "sweep_attempts"),
            async move {
                let done = sqlx::query("DELETE FROM attempts WHERE last_attempt_ms < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected())
            },
        ))
    }
}
