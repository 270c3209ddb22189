//! Auth's domain: password hashing (argon2id) and JWTs (EdDSA / Ed25519), with no server and
//! no storage, so every rule here is unit-tested.
//!
//! Two kinds of token, both signed by the Storefront's key (the Secret named by
//! `spec.security.jwtSecretName`, a PKCS#8 PEM Ed25519 private key):
//!
//! | kind      | `sub`          | `aud`                    | lifetime            |
//! |-----------|----------------|--------------------------|---------------------|
//! | `user`    | user id        | [`USER_AUDIENCE`]        | `--user-token-ttl`  |
//! | `service` | calling service| the one service it calls | `--service-token-ttl` (short) |
//!
//! A service token for `inventory` is refused by `orders`: each gRPC server checks that the
//! audience is itself ([`TokenVerifier::verify_service`]). Expiry is checked against a `now`
//! that the caller passes (no clock in here), and every refusal is a typed [`TokenError`].
//!
//! [`throttle`] is the sign-in and sign-up throttle's policy (exponential blocks after free
//! attempts, capped, forgotten after a quiet window). [`password`] holds the hashing; the keys and JWTs are [`storefront_platform::token`] (every
//! service verifies tokens, only auth issues user tokens); both are re-exported here.

pub mod password;
pub mod throttle;

pub use password::*;
pub use storefront_platform::token::{self, *};
