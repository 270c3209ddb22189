//! What every service of the shop runs on, and nothing about any one service:
//!
//! - [`config`]: the settings every subcommand shares (flags or the environment the operator
//!   renders), with one error that names the flag and the variable;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, the SIGTERM drain, background workers;
//! - [`grpc`]: serving and calling gRPC behind service tokens (cached), mutual TLS when asked;
//! - [`token`]: Ed25519 keys and JWTs (user and service tokens);
//! - [`db`]: PostgreSQL pools (primary and read replica);
//! - [`events`]: the NATS JetStream bus (one stream per shop, de-duplicated publishing,
//!   durable consumers);
//! - [`metrics`] and [`datastore_metrics`]: request and datastore-client metrics;
//! - [`request_id`]: the public request's id on every call and log line, and [`request_id::hidden`]
//!   (a failure's cause in the logs, short words in the `Status`).

pub mod config;
pub mod datastore_metrics;
pub mod db;
pub mod events;
pub mod grpc;
pub mod metrics;
pub mod ops;
pub mod request_id;
pub mod token;
