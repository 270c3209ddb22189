//! The payments service: charges for orders whose stock is reserved.
//!
//! - [`domain`]: the charge ledger (one charge per order, whatever the redeliveries) and the
//!   simulated payment provider (latency and failure rate from flags, seeded RNG).
//! - [`postgres`]: the same ledger in PostgreSQL, with a lease on in-flight charges and
//!   refunds (integration-tested: `tests/datastores/payments_postgres.rs`).
//! - [`bus`]: the bus adapter: the consumer of `StockReserved` and `RefundRequested`.
//! - [`grpc`]: `proto/payments.proto` (read a charge).
//! - [`run`]: the `payments` subcommand, with its settings in [`args`].

pub mod args;
pub mod bus;
pub mod domain;
pub mod grpc;
pub mod postgres;
pub mod run;
