//! Versioned migrations (`storefront_platform::db::migrate`, sqlx's Migrator) on a real
//! PostgreSQL: each version is applied once, a new version is applied on top, and a changed
//! released version is refused without touching the schema. Needs `DATABASE_URL` (run by
//! `workloads/scripts/integration`).

use std::sync::atomic::{AtomicU32, Ordering};

use storefront_workloads::db::{self, Migration};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

fn v1(s: &str) -> Migration {
    Migration::new(
        1,
        "a table",
        vec![format!(
            r#"CREATE TABLE "{s}".things (id bigint PRIMARY KEY)"#
        )],
    )
}

fn v2(s: &str) -> Migration {
    Migration::new(
        2,
        "a column",
        vec![format!(r#"ALTER TABLE "{s}".things ADD COLUMN name text"#)],
    )
}

#[tokio::test]
async fn versions_apply_once_in_order_and_a_changed_release_is_refused() {
    let schema = format!(
        "it_migrate_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let pool = db::schema_pool(&url(), &schema, 2).await.expect("connects");
    let s = schema.as_str();

    // A plain CREATE TABLE fails if run twice: the second run must skip version 1.
    db::migrate(&pool, s, "things", vec![v1(s)])
        .await
        .expect("v1");
    db::migrate(&pool, s, "things", vec![v1(s)])
        .await
        .expect("v1 again is a no-op");
    db::migrate(&pool, s, "things", vec![v1(s), v2(s)])
        .await
        .expect("v2 on top");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"INSERT INTO "{s}".things (id, name) VALUES (1, 'x')"#
    )))
    .execute(&pool)
    .await
    .expect("the column of v2 exists");
    let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        r#"SELECT version FROM "{s}".things_migrations ORDER BY version"#
    )))
    .fetch_all(&pool)
    .await
    .expect("recorded");
    assert_eq!(versions, [1, 2]);

    // Version 1 edited after its release: refused, nothing applied.
    let edited = Migration::new(
        1,
        "a table",
        vec![format!(
            r#"CREATE TABLE "{s}".things (id text PRIMARY KEY)"#
        )],
    );
    let v3 = Migration::new(
        3,
        "another table",
        vec![format!(r#"CREATE TABLE "{s}".more (id bigint)"#)],
    );
    let refused = db::migrate(&pool, s, "things", vec![edited, v2(s), v3])
        .await
        .expect_err("a changed version is refused");
    assert!(refused.to_string().contains('1'), "{refused}");
    let more: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT to_regclass('\"{s}\".more')::text"
    )))
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(more, None, "nothing after the refused version ran");

    // The connection that ran the refused migration is gone with its session lock: another
    // set migrates at once.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        db::migrate(&pool, s, "other", vec![v2_other(s)]),
    )
    .await
    .expect("not blocked by a lock left behind")
    .expect("migrates");
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"DROP SCHEMA "{s}" CASCADE"#)))
        .execute(&pool)
        .await
        .expect("drops");
}

fn v2_other(s: &str) -> Migration {
    Migration::new(
        1,
        "an unrelated table",
        vec![format!(r#"CREATE TABLE "{s}".other (id bigint)"#)],
    )
}
