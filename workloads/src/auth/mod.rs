//! The auth service: users (sign-up, sign-in), password hashing, user and service JWTs.
//!
//! - [`domain`]: argon2id hashing, Ed25519 JWT issuing and verification (pure, unit-tested).
//! - [`service`]: sign-up and sign-in over a [`service::UserStore`] (the PostgreSQL store is a
//!   later adapter; [`service::MemoryUserStore`] serves tests).
//! - [`grpc`]: the tonic server of `proto/auth.proto`, behind the service-token check.

pub mod domain;
pub mod grpc;
pub mod service;
