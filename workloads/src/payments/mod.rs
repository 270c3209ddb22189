//! The payments service: charges for orders whose stock is reserved.
//!
//! - [`domain`]: the charge ledger (one charge per order, whatever the redeliveries) and the
//!   simulated payment provider (latency and failure rate from flags, seeded RNG).
//!
//! The NATS consumer of `StockReserved`, the PostgreSQL ledger and the gRPC server of
//! `proto/payments.proto` are adapters still to come (issue 6).

pub mod domain;
