//! PostgreSQL plumbing every service's store shares: schema names safe to put in DDL, a pool
//! pinned to the service's (or shard's) own schema through `search_path`, and migrations that
//! every replica may run at once (an advisory lock per service and schema serializes the DDL).

use std::str::FromStr;

use sqlx::{
    AssertSqlSafe, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A schema name that is not safe to interpolate into DDL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema name {0:?}: use 1-63 lower-case letters, digits or underscores")]
pub struct BadSchema(pub String);

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

/// Runs `ddl` in one transaction under an advisory lock on `service` + `schema`, so replicas
/// starting together do not race on `CREATE ... IF NOT EXISTS`.
pub async fn migrate(
    pool: &PgPool,
    service: &str,
    schema: &str,
    ddl: &[String],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
        .bind(format!("storefront-{service}"))
        .bind(schema)
        .execute(&mut *tx)
        .await?;
    for statement in ddl {
        sqlx::query(AssertSqlSafe(statement.clone()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
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
