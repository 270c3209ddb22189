//! The payments service: charges for orders whose stock is reserved.
//!
//! - [`domain`]: the charge ledger (one charge per order, whatever the redeliveries) and the
//!   simulated payment provider (latency and failure rate from flags, seeded RNG).
//! - [`postgres`]: the same ledger in PostgreSQL, with a lease on in-flight charges
//!   (integration-tested: `tests/payments_postgres.rs`).
//!
//! The NATS consumer of `StockReserved` and the gRPC server of `proto/payments.proto` are
//! adapters still to come (issue 6).

pub mod domain;
pub mod postgres;
