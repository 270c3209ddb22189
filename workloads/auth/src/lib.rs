//! The auth service: users (sign-up, sign-in), password hashing, user and service JWTs.
//!
//! - [`domain`]: argon2id hashing, Ed25519 JWT issuing and verification, the throttle's
//!   policy (pure, unit-tested).
//! - [`ports`]: what the use cases need besides the user store: the throttle's counters.
//! - [`service`]: sign-up and sign-in over a [`service::UserStore`]
//!   ([`postgres::PgUserStore`] in production, [`service::MemoryUserStore`] in tests), their
//!   hashes behind [`hash_gate`] (a cap on concurrent argon2id hashes, refusing past it), their
//!   attempts behind [`throttle`] (per account and per client address, 429 at the gateway).
//! - [`grpc`]: the tonic server of `proto/auth.proto`, behind the service-token check.
//! - [`run`]: the `auth` subcommand (settings, PostgreSQL, gRPC, `/readyz`, drain);
//!   [`args`]: its own flags (the gate's limits, the throttles' policies).

pub mod args;
pub mod domain;
pub mod grpc;
pub mod hash_gate;
pub mod ports;
pub mod postgres;
pub mod run;
pub mod service;
pub mod throttle;
