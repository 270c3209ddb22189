//! The inventory service: stock per SKU on one shard of the ring (`storefront_crds::ring`).
//!
//! - [`domain`]: reservations all-or-nothing per order, never oversold, idempotent per order
//!   id, released on cancel, committed on confirm.
//! - [`postgres`]: the same rules in SQL, one schema per shard (integration-tested against a
//!   real server: `tests/inventory_postgres.rs`).
//!
//! The NATS consumers of `OrderCreated` /
//! `OrderCancelled` / `OrderConfirmed` and the gRPC server of `proto/inventory.proto` are
//! adapters still to come (issue 6).

pub mod domain;
pub mod postgres;
