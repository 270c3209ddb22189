//! The inventory service: stock per SKU on one shard of the ring (`storefront_crds::ring`).
//!
//! - [`domain`]: reservations all-or-nothing per order, never oversold, idempotent per order
//!   id, released on cancel, committed on confirm.
//! - [`postgres`]: the same rules in SQL, one schema per shard (integration-tested against a
//!   real server: `tests/inventory_postgres.rs`).
//! - [`grpc`]: the shard's gRPC server over any store, refusing SKUs it does not own.
//! - [`run`]: the `inventory` subcommand (settings, PostgreSQL, gRPC, `/readyz`, drain).
//!
//! The NATS consumers of `OrderCreated` /
//! `OrderCancelled` / `OrderConfirmed` are adapters still to come (issue 6).

pub mod domain;
pub mod grpc;
pub mod postgres;
pub mod run;
