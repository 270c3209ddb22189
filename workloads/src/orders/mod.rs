//! The orders service: event-sourced orders and the checkout saga.
//!
//! - [`domain`]: events, the projection folded from them, the saga with compensation.
//! - [`idempotency`]: `Idempotency-Key` fingerprints and replay/conflict decisions.
//! - [`postgres`]: the event log, outbox and key records in PostgreSQL; the saga step with
//!   optimistic concurrency (integration-tested: `tests/orders_postgres.rs`).
//!
//! - [`grpc`]: `proto/orders.proto` (create idempotently, get for the owner, list).
//!
//! The outbox relay to NATS JetStream and the saga's consumers are still to come (issue 6);
//! until then the `orders` subcommand does not start.

pub mod domain;
pub mod grpc;
pub mod idempotency;
pub mod postgres;
