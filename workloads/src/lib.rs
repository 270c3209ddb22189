//! The commerce services of a Storefront: one binary (`storefront-workloads`) with a
//! subcommand per service, gRPC (tonic) between services, HTTP/JSON only at the gateway.
//!
//! Each service is a module whose domain logic has no server and no storage (so it is
//! unit-tested), with its gRPC, HTTP, PostgreSQL and NATS adapters beside it:
//!
//! | module              | domain                                        | adapters                                          |
//! |---------------------|-----------------------------------------------|---------------------------------------------------|
//! | [`auth`]            | argon2id, Ed25519 JWTs (user + service)       | PostgreSQL users, gRPC                            |
//! | [`catalog`]         | deterministic seed catalog, tantivy search    | PostgreSQL (+ replica reads), gRPC                |
//! | [`inventory`]       | reservations: all-or-nothing, never oversold  | PostgreSQL per shard, gRPC (ring checks), bus     |
//! | [`orders`]          | events, projection, saga, Idempotency-Key     | PostgreSQL event log + outbox, gRPC, bus relay    |
//! | [`payments`]        | one charge per order, simulated provider      | PostgreSQL ledger, gRPC, bus                      |
//! | [`recommendations`] | bought-together pairs                         | PostgreSQL counts, gRPC, bus                      |
//! | [`gateway`]         | public API checks, routes + rings, reload     | axum HTTP/JSON, gRPC clients, OpenAPI             |
//!
//! The checkout saga runs over NATS JetStream ([`events`]): orders → every inventory shard →
//! orders → payments → orders → inventory (commit or release), each step idempotent.
//!
//! The gateway owns its cluster-wide rate limiter ([`gateway::ratelimit`]) and its breakers
//! and retry budget ([`gateway::resilience`]). Mutual TLS is a switch (`GRPC_TLS_DIR`).
//!
//! What every service shares is in its own crates, re-exported here under the names the
//! services use: `storefront-contracts` ([`proto`], the generated gRPC code, and [`api`], the
//! public JSON shapes and error body) and `storefront-platform` ([`config`], [`ops`]
//! (`/healthz`, `/readyz`, `/metrics`, SIGTERM drain, background workers), [`grpc`]
//! (service-token interceptors, cached), [`events`] (the JetStream bus), [`db`], [`metrics`],
//! [`datastore_metrics`]); the ring is `storefront_crds::ring`. `workloads/README.md` says how
//! to run and test it all.

pub mod cli;

pub use storefront_auth as auth;
pub use storefront_catalog as catalog;
pub use storefront_contracts::{api, proto};
pub use storefront_gateway as gateway;
pub use storefront_inventory as inventory;
pub use storefront_loadgen as loadgen;
pub use storefront_orders as orders;
pub use storefront_payments as payments;
pub use storefront_platform::{
    config, datastore_metrics, datastore_op, db, events, grpc, metrics, ops, token,
};
pub use storefront_recommendations as recommendations;
