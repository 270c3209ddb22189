//! The commerce services of a Storefront: one binary (`storefront-workloads`) with a
//! subcommand per service, gRPC (tonic) between services, HTTP/JSON only at the gateway.
//!
//! Each service is a module whose domain logic has no server and no storage (so it is
//! unit-tested), with its gRPC, HTTP, PostgreSQL and NATS adapters beside it:
//!
//! | module              | domain                                             | adapters so far |
//! |---------------------|----------------------------------------------------|-----------------|
//! | [`auth`]            | argon2id, Ed25519 JWTs (user + service tokens)     | gRPC server     |
//! | [`orders`]          | events, projection, saga, Idempotency-Key          | —               |
//! | [`inventory`]       | reservations: all-or-nothing, never oversold       | PostgreSQL, gRPC, `inventory` + `migrate` commands |
//! | [`payments`]        | one charge per order, simulated provider           | —               |
//! | [`catalog`]         | deterministic seed catalog                         | `seed` command  |
//!
//! Shared: [`api`] (the public JSON shapes and error body), [`grpc`] (service-token
//! interceptors), [`ops`] (`/healthz`, `/readyz`, `/metrics`, SIGTERM), [`config`] (flags and environment), [`proto`] (generated code), and the
//! ring in `storefront_crds::ring`.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod inventory;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod proto;
