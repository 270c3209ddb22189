//! The commerce services of a Storefront: one binary (`storefront-workloads`) with a
//! subcommand per service, gRPC (tonic) between services, HTTP/JSON only at the gateway.
//!
//! Each service is a module whose domain logic has no server and no storage (so it is
//! unit-tested), with its gRPC, HTTP, PostgreSQL and NATS adapters beside it:
//!
//! | module        | domain                                        | adapters so far                          | runs |
//! |---------------|-----------------------------------------------|------------------------------------------|------|
//! | [`auth`]      | argon2id, Ed25519 JWTs (user + service)       | PostgreSQL users, gRPC                   | yes  |
//! | [`catalog`]   | deterministic seed catalog, tantivy search    | PostgreSQL (+ replica reads), gRPC       | yes  |
//! | [`inventory`] | reservations: all-or-nothing, never oversold  | PostgreSQL per shard, gRPC (ring checks) | yes  |
//! | [`orders`]    | events, projection, saga, Idempotency-Key     | PostgreSQL event log + outbox, gRPC      | no   |
//! | [`payments`]  | one charge per order, simulated provider      | PostgreSQL ledger                        | no   |
//! | [`gateway`]   | public API checks, routes + rings, reload     | axum HTTP/JSON, gRPC clients, OpenAPI    | yes  |
//!
//! Not built yet: the gateway's rate limiter, circuit breakers and retry budget (the
//! [`gateway::upstream::UpstreamGuard`] seam), recommendations, the NATS JetStream relay and consumers, the
//! payments server, the Redis cache (issue 6). Their subcommands exit non-zero
//! with "not implemented yet".
//!
//! Shared: [`api`] (the public JSON shapes and error body), [`grpc`] (service-token
//! interceptors), [`ops`] (`/healthz`, `/readyz`, `/metrics`, SIGTERM drain), [`config`]
//! (flags and environment), [`proto`] (generated code), and the ring in
//! `storefront_crds::ring`. `workloads/README.md` says how to run and test it all.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod gateway;
pub mod grpc;
pub mod inventory;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod proto;
