//! The catalog service: products and full-text search.
//!
//! - [`seed`]: a realistic catalog (≥ 10,000 products) generated deterministically from a
//!   seed number; `storefront-workloads seed` writes it.
//! - [`search`]: the embedded tantivy full-text index (words, category filter, pages).
//! - [`postgres`]: products in PostgreSQL (batched upserts; readable from a replica).
//! - [`grpc`]: `proto/catalog.proto` (product reads, search, prices).
//! - [`cache`]: the Redis product cache (read-through for product pages, write-through for
//!   writes; a slow or dead Redis is a miss, never an error).
//! - [`run`]: the `catalog` subcommand (index rebuilt from PostgreSQL at start).
//!
//! There is no product write API yet: the catalog is written at start (the generated demo
//! catalog) through [`grpc::Catalog::write`], which keeps PostgreSQL, cache and index in step.

pub mod cache;
pub mod grpc;
pub mod postgres;
pub mod run;
pub mod search;
pub mod seed;
