//! The recommendations service (supporting tier): "bought together" from confirmed orders.
//!
//! - [`domain`]: the co-purchase pairs of an order (pure, unit-tested).
//! - [`postgres`]: pending orders' SKUs and pair counts in PostgreSQL; counting is
//!   idempotent per order (integration-tested: `tests/datastores/checkout_saga.rs`).
//! - [`bus`]: the bus adapter: the consumer of `OrderCreated` / `OrderConfirmed` / `OrderCancelled`.
//! - [`grpc`]: `proto/recommendations.proto` (`BoughtTogether`).
//! - [`run`]: the `recommendations` subcommand.
//!
//! When this service is down the gateway answers product pages with an empty list and
//! `Storefront-Degraded: recommendations`; nothing on the checkout path calls it.

pub mod bus;
pub mod domain;
pub mod grpc;
pub mod postgres;
pub mod run;
