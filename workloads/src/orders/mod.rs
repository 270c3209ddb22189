//! The orders service: event-sourced orders and the checkout saga.
//!
//! - [`domain`]: events, the projection folded from them, the saga with compensation.
//! - [`idempotency`]: `Idempotency-Key` fingerprints and replay/conflict decisions.
//!
//! Storage (`order_events` and the outbox in PostgreSQL), the NATS JetStream publisher and
//! consumers, and the gRPC server are adapters still to come (issue 6).

pub mod domain;
pub mod idempotency;
