//! The catalog's PostgreSQL store: products in the catalog's own schema. Writes go to the
//! primary; the reads of product pages can go to a read replica (`postgresReadReplica`) by
//! connecting a second store to it. Loading a seeded catalog is one batched upsert per
//! thousand products. Every method is counted and timed as a `postgres` (or
//! `postgres-replica`, [`PgCatalog::replica`]) request ([`storefront_platform::datastore_metrics`]).

use sqlx::{AssertSqlSafe, PgPool, Row, postgres::PgRow};

use super::seed::Product;
use storefront_platform::datastore_metrics::{Datastore, timed};
use storefront_platform::datastore_op;
use storefront_platform::db::{self, Migration, validate_schema};

/// Catalog store failures.
pub type PgCatalogError = db::StoreError;

type Result<T> = std::result::Result<T, PgCatalogError>;

/// Products in PostgreSQL.
#[derive(Clone)]
pub struct PgCatalog {
    pool: PgPool,
    schema: String,
    datastore: Datastore,
}

const COLUMNS: &str = "sku, name, category, brand, description, price_cents, currency, stock";

fn product(row: &PgRow) -> std::result::Result<Product, sqlx::Error> {
    Ok(Product {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        category: row.try_get("category")?,
        brand: row.try_get("brand")?,
        description: row.try_get("description")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        stock: row.try_get("stock")?,
    })
}

impl PgCatalog {
    /// Connects a pool whose `search_path` is `schema`.
    pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        validate_schema(schema)?;
        let pool = db::schema_pool(url, schema, max_connections).await?;
        Ok(Self {
            pool,
            schema: schema.to_string(),
            datastore: Datastore::Postgres,
        })
    }

    /// This store as a read replica: its calls count as `postgres-replica`.
    pub fn replica(self) -> Self {
        Self {
            datastore: Datastore::PostgresReplica,
            ..self
        }
    }

    /// What this store's calls count as.
    pub fn datastore(&self) -> Datastore {
        self.datastore
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
            "catalog",
            vec![Migration::new(1, "the catalog tables", vec![
            format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#),
            format!(
                r#"CREATE TABLE IF NOT EXISTS "{s}".products (
                    sku text PRIMARY KEY,
                    name text NOT NULL,
                    category text NOT NULL,
                    brand text NOT NULL,
                    description text NOT NULL,
                    price_cents bigint NOT NULL CHECK (price_cents > 0),
                    currency text NOT NULL,
                    -- The seeded starting stock; live stock is inventory's.
                    stock bigint NOT NULL CHECK (stock >= 0),
                    updated_at timestamptz NOT NULL DEFAULT now())"#
            ),
            format!(
                r#"CREATE INDEX IF NOT EXISTS products_by_category ON "{s}".products (category, sku)"#
            ),
        ])],
        ).await?;
        Ok(())
    }

    /// How many products there are.
    pub async fn count(&self) -> Result<i64> {
        timed(datastore_op!(self.datastore, "count_products"), async {
            Ok(sqlx::query_scalar("SELECT count(*) FROM products")
                .fetch_one(&self.pool)
                .await?)
        })
        .await
    }

    /// Inserts or replaces products, a thousand per statement.
    pub async fn upsert(&self, products: &[Product]) -> Result<()> {
        timed(
            datastore_op!(self.datastore, "upsert_products"),
            self.upsert_chunks(products),
        )
        .await
    }

    async fn upsert_chunks(&self, products: &[Product]) -> Result<()> {
        for chunk in products.chunks(1_000) {
            let col = |f: fn(&Product) -> String| chunk.iter().map(f).collect::<Vec<String>>();
            sqlx::query(
                "INSERT INTO products (sku, name, category, brand, description, price_cents, currency, stock) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                      $6::bigint[], $7::text[], $8::bigint[]) \
                 ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category, \
                   brand = EXCLUDED.brand, description = EXCLUDED.description, \
                   price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency, \
                   stock = EXCLUDED.stock, updated_at = now()",
            )
            .bind(col(|p| p.sku.clone()))
            .bind(col(|p| p.name.clone()))
            .bind(col(|p| p.category.clone()))
            .bind(col(|p| p.brand.clone()))
            .bind(col(|p| p.description.clone()))
            .bind(chunk.iter().map(|p| p.price_cents).collect::<Vec<i64>>())
            .bind(col(|p| p.currency.clone()))
            .bind(chunk.iter().map(|p| p.stock).collect::<Vec<i64>>())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// One product.
    pub async fn get(&self, sku: &str) -> Result<Option<Product>> {
        timed(datastore_op!(self.datastore, "get_product"), async {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM products WHERE sku = $1"
            )))
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(product).transpose()?)
        })
        .await
    }

    /// The products of `skus` that exist (for pricing an order).
    pub async fn get_many(&self, skus: &[String]) -> Result<Vec<Product>> {
        timed(datastore_op!(self.datastore, "get_prices"), async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM products WHERE sku = ANY($1) ORDER BY sku"
            )))
            .bind(skus)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(product)
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    /// Every product (to rebuild the search index at start).
    pub async fn all(&self) -> Result<Vec<Product>> {
        timed(datastore_op!(self.datastore, "all_products"), async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM products ORDER BY sku"
            )))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(product)
                .collect::<std::result::Result<_, _>>()?)
        })
        .await
    }
}
