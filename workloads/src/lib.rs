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
//! Issue 7 in progress: [`ratelimit`] (GCRA and the Redis lease authority, not yet wired to
//! the gateway) and [`resilience`] (breakers per upstream, wired as the gateway's guard; the
//! retry budget, not yet used by the handlers). Mutual TLS is a switch (`GRPC_TLS_DIR`).
//!
//! Shared: [`api`] (the public JSON shapes and error body), [`grpc`] (service-token
//! interceptors, cached), [`events`] (the JetStream bus), [`ops`] (`/healthz`, `/readyz`,
//! `/metrics`, SIGTERM drain, background workers), [`config`]
//! (flags and environment), [`proto`] (generated code), and the ring in
//! `storefront_crds::ring`. `workloads/README.md` says how to run and test it all.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod datastore_metrics;
pub mod db;
pub mod events;
pub mod gateway;
pub mod grpc;
pub mod inventory;
pub mod loadgen;
pub mod metrics;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod proto;
pub mod ratelimit;
pub mod recommendations;
pub mod resilience;
