//! The workloads' integration tests against real servers on loopback: PostgreSQL (primary and
//! a streaming read replica), Redis and NATS JetStream. One test binary for all of them, so
//! the workspace is linked once (`workloads/scripts/integration` starts the servers, exports
//! `DATABASE_URL`, `DATABASE_READ_URL`, `REDIS_URL` and `NATS_URL`, and runs
//! `cargo test -p storefront-workloads --test datastores`). The target has `test = false`:
//! a plain `cargo test`, with no servers, does not run it.

mod auth_flood;
mod auth_postgres;
mod auth_throttle;
mod catalog_cache;
mod catalog_grpc;
mod catalog_postgres;
mod checkout_saga;
mod client_limits;
mod error_bodies;
mod gateway_api;
mod gateway_bad_input;
mod gateway_support;
mod inventory_conformance;
mod inventory_handoff;
mod inventory_postgres;
mod migrations;
mod orders_grpc;
mod orders_postgres;
mod orders_sale_limits;
mod payments_postgres;
mod ratelimit_cluster;
mod ratelimit_redis;
mod signed_events;
