//! The auth service: users (sign-up, sign-in), password hashing, user and service JWTs.
//!
//! - [`domain`]: argon2id hashing, Ed25519 JWT issuing and verification (pure, unit-tested).
//! - [`service`]: sign-up and sign-in over a [`service::UserStore`]
//!   ([`postgres::PgUserStore`] in production, [`service::MemoryUserStore`] in tests).
//! - [`grpc`]: the tonic server of `proto/auth.proto`, behind the service-token check.
//! - [`run`]: the `auth` subcommand (settings, PostgreSQL, gRPC, `/readyz`, drain).

pub mod domain;
pub mod grpc;
pub mod postgres;
pub mod run;
pub mod service;
