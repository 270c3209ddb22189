//! The auth service: users (sign-up, sign-in), password hashing, user and service JWTs.
//!
//! - [`domain`]: argon2id hashing, Ed25519 JWT issuing and verification (pure, unit-tested).
//! - [`service`]: sign-up and sign-in over a [`service::UserStore`]
//!   ([`postgres::PgUserStore`] in production, [`service::MemoryUserStore`] in tests), their
//!   hashes behind [`hash_gate`] (a cap on concurrent argon2id hashes, refusing past it).
//! - [`grpc`]: the tonic server of `proto/auth.proto`, behind the service-token check.
//! - [`run`]: the `auth` subcommand (settings, PostgreSQL, gRPC, `/readyz`, drain);
//!   [`args`]: its own flags (the gate's limits).

pub mod args;
pub mod domain;
pub mod grpc;
pub mod hash_gate;
pub mod postgres;
pub mod run;
pub mod service;
