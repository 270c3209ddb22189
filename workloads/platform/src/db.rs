//! PostgreSQL plumbing every service's store shares: schema names safe to put in DDL, a pool
//! pinned to the service's (or shard's) own schema through `search_path`, and versioned
//! migrations per schema.
//!
//! Migrations are sqlx's ([`sqlx::migrate::Migrator`]): numbered, each applied once in its
//! own transaction and recorded with its checksum in `"<schema>"."<set>_migrations"`, under
//! sqlx's database-wide advisory lock so that every replica may run them at once. Ours are
//! built at run time rather than read from files (`sqlx::migrate!`) because their DDL names
//! the schema, which is per shop and per shard. A migration, once released, is never edited
//! (sqlx refuses to start on a changed checksum): a change of schema is a new version. The
//! first version of every service is the `CREATE … IF NOT EXISTS` list it ran before
//! versioning, so schemas made before adopt it without a change.

use std::str::FromStr;

use sqlx::{
    AssertSqlSafe, Connection, PgPool, SqlSafeStr,
    migrate::{MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A schema name that is not safe to interpolate into DDL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema name {0:?}: use 1-63 lower-case letters, digits or underscores")]
pub struct BadSchema(pub String);

/// The failures of a store that has no others: a query failed, or its schema name is not
/// usable. Stores with more to say (orders, inventory, payments) add their own variants
/// beside these two.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to query PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] BadSchema),
}

/// Only a failed query is the datastore's failure; a bad schema name is the caller's.
impl crate::datastore_metrics::DatastoreFailure for StoreError {
    fn is_datastore_failure(&self) -> bool {
        matches!(self, Self::Db(_))
    }
}

/// Checks a schema name so that it can be interpolated into DDL safely.
pub fn validate_schema(name: &str) -> Result<(), BadSchema> {
    // Always double-quoted where used, so a leading digit (a Storefront named `2shop`) is fine.
    let valid = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid && (1..=63).contains(&name.len()) {
        Ok(())
    } else {
        Err(BadSchema(name.to_string()))
    }
}

/// A pool whose connections use `schema` (already validated) as their `search_path`.
pub async fn schema_pool(
    url: &str,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    let options =
        PgConnectOptions::from_str(url)?.options([("search_path", format!("\"{schema}\""))]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
}

/// One version of a schema: its number, what it does, and its statements (run in one
/// transaction).
#[derive(Clone, Debug)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub statements: Vec<String>,
}

impl Migration {
    pub fn new(version: i64, description: &'static str, statements: Vec<String>) -> Self {
        Self {
            version,
            description,
            statements,
        }
    }
}

/// Brings the `set` of migrations (a service's tables, or a shared part such as inventory's
/// ring) in `schema` (created if missing) to the last of `migrations`, applying those it has
/// not recorded (in `"<schema>"."<set>_migrations"`), in version order. Fails without applying anything when a recorded version's
/// statements changed. Runs on a connection of its own, closed afterwards, so sqlx's
/// session lock can never stay behind in the pool after a failure.
pub async fn migrate(
    pool: &PgPool,
    schema: &str,
    set: &str,
    migrations: Vec<Migration>,
) -> Result<(), sqlx::Error> {
    let mut migrator = Migrator::with_migrations(
        migrations
            .into_iter()
            .map(|m| {
                sqlx::migrate::Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    AssertSqlSafe(m.statements.join(";\n")).into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
    migrator.dangerous_set_table_name(format!(r#""{schema}"."{set}_migrations""#));
    migrator.create_schema(format!(r#""{schema}""#));
    let mut conn = pool.acquire().await?.detach();
    let result = migrator.run_direct(None, &mut conn, false).await;
    conn.close().await.ok();
    result.map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_safe_for_ddl() {
        for good in ["inventory_3", "2shop_orders", "a"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "Shop", "x\"; DROP", "a-b", &"x".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }
}
