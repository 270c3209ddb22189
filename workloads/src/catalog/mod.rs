//! The catalog service: products and full-text search.
//!
//! - [`seed`]: a realistic catalog (≥ 10,000 products) generated deterministically from a
//!   seed number; `storefront-workloads seed` writes it.
//! - [`search`]: the embedded tantivy full-text index (words, category filter, pages).
//! - [`postgres`]: products in PostgreSQL (batched upserts; readable from a replica).
//! - [`grpc`]: `proto/catalog.proto` (product reads, search, prices).
//! - [`run`]: the `catalog` subcommand (index rebuilt from PostgreSQL at start).
//!
//! The Redis read-through cache and index updates on product writes (there is no product
//! write API yet) are still to come (issue 6).

pub mod grpc;
pub mod postgres;
pub mod run;
pub mod search;
pub mod seed;
