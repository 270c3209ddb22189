//! The orders service: event-sourced orders and the checkout saga.
//!
//! A hexagon: a pure domain, the port it needs, and adapters around them.
//!
//! - [`domain`]: events, the projection folded from them, the saga with compensation, and
//!   the saga's load → decide → append step over its port, [`domain::ports::OrderLog`] (the
//!   event log, implemented by [`postgres::PgOrders`]).
//! - [`idempotency`]: `Idempotency-Key` fingerprints and replay/conflict decisions.
//! - [`postgres`]: the event log, outbox and key records in PostgreSQL; the saga step with
//!   optimistic concurrency (integration-tested: `tests/datastores/orders_postgres.rs`).
//!
//! - [`grpc`]: `proto/orders.proto` (create idempotently, get for the owner, list).
//! - [`bus`]: the bus adapter: the outbox relay to NATS JetStream, the consumers of inventory's and
//!   payments' replies, and the timeout sweeper (integration-tested: `tests/datastores/checkout_saga.rs`).
//! - [`run`]: the `orders` subcommand.

pub mod args;
pub mod bus;
pub mod domain;
pub mod grpc;
pub mod idempotency;
pub mod postgres;
pub mod run;
