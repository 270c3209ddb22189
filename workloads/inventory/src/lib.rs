//! The inventory service: stock per SKU on one shard of the ring (`storefront_crds::ring`).
//!
//! A hexagon: a pure domain, the port its adapters are written against, and the adapters.
//!
//! - [`domain`]: reservations all-or-nothing per order, never oversold, idempotent per order
//!   id, released on cancel, committed on confirm; a shard's answer ([`domain::Held`]).
//! - [`ports`]: [`ports::StockStore`], what the gRPC server and the bus consumer need from a
//!   shard's stock, and the shard's place in the ring.
//! - [`memory`]: the domain model behind a lock as a store (tests, single-process runs).
//! - [`postgres`]: the same rules in SQL, one schema per shard, reservations kept per order
//!   line, and the ring in the database (integration-tested against a real server:
//!   `tests/datastores/inventory_postgres.rs`).
//! - [`handoff`]: resharding's data handoff: copy, verify, and the switch of owners in one
//!   transaction (`tests/datastores/inventory_handoff.rs`).
//! - [`grpc`]: the shard's gRPC server over any store, refusing SKUs it does not own. Its
//!   `Reserve`/`Release`/`Commit` RPCs have no caller in the shop (the saga holds, commits
//!   and releases over the bus); they stay because `proto/inventory.proto` is a published
//!   contract, and they are the way to settle an order by hand.
//! - [`reshard_cmd`]: the `reshard` subcommand, one handoff step per Job.
//! - [`run`]: the `inventory` subcommand (settings, PostgreSQL, gRPC, `/readyz`, drain).
//!
//! - [`bus`]: the bus adapter: the shard's consumer of the orders' events (hold on `OrderCreated` and
//!   `StockRequested`, commit on `OrderConfirmed`, release on `OrderCancelled`).

pub mod bus;
pub mod domain;
pub mod grpc;
pub mod handoff;
pub mod memory;
pub mod ports;
pub mod postgres;
pub mod reshard_cmd;
pub mod run;
