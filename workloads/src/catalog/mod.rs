//! The catalog service: products and full-text search.
//!
//! - [`seed`]: a realistic catalog (≥ 10,000 products) generated deterministically from a
//!   seed number; `storefront-workloads seed` writes it.
//! - [`search`]: the embedded tantivy full-text index (words, category filter, pages).
//! - [`postgres`]: products in PostgreSQL (batched upserts; readable from a replica).
//!
//! The Redis read-through cache and the gRPC server
//! of `proto/catalog.proto` are adapters still to come (issue 6).

pub mod postgres;
pub mod search;
pub mod seed;
