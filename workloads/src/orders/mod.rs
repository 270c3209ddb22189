//! The orders service: event-sourced orders and the checkout saga.
//!
//! - [`domain`]: events, the projection folded from them, the saga with compensation.
//! - [`idempotency`]: `Idempotency-Key` fingerprints and replay/conflict decisions.
//! - [`postgres`]: the event log, outbox and key records in PostgreSQL; the saga step with
//!   optimistic concurrency (integration-tested: `tests/orders_postgres.rs`).
//!
//! The outbox relay to NATS JetStream, the consumers and the gRPC server are adapters still
//! to come (issue 6).

pub mod domain;
pub mod idempotency;
pub mod postgres;
