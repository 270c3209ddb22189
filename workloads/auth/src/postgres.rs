//! Auth's PostgreSQL user store, in the service's own schema: `users` with a unique email.
//! Each lookup and insert is counted and timed as a `postgres` request
//! ([`storefront_platform::datastore_metrics`]; an email already taken is an answer, not an error).

use sqlx::{PgPool, Row};

use super::service::{StoreError, User, UserStore};
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
            vec![Migration::new(
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
            )],
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

impl PgUserStore {}
