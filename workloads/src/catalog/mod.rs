//! The catalog service: products and full-text search.
//!
//! - [`seed`]: a realistic catalog (≥ 10,000 products) generated deterministically from a
//!   seed number; `storefront-workloads seed` writes it.
//!
//! The PostgreSQL store, the tantivy index, the Redis read-through cache and the gRPC server
//! of `proto/catalog.proto` are adapters still to come (issue 6).

pub mod seed;
