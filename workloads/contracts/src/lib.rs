//! What the shop's services agree on, in one crate every service depends on and nothing else:
//!
//! - [`proto`]: the gRPC services and messages (`proto/*.proto`, compiled by `build.rs` with
//!   protox, so no `protoc` is needed);
//! - [`api`]: the gateway's public HTTP/JSON API (DESIGN.md "Public API") as serde types, with
//!   their validation and the one error body;
//! - [`order_lines`]: the rules an order's lines must meet, checked at the edge and by orders;
//! - [`email`]: the one rule for an email as an identity (NFKC, no invisible characters, one
//!   canonical form), checked at the edge and stored by auth;
//! - [`overload`]: a service's "too busy, retry in N s" over gRPC, which the gateway answers
//!   as 503 with `Retry-After`, and "too many attempts, retry in N s", answered as 429;
//! - [`client_address`]: the client's address, from the gateway to the services it calls;
//! - [`messages`]: the event bus's messages ([`messages::OrderEvent`]), with their kinds and
//!   message ids.

pub mod api;
pub mod client_address;
pub mod email;
pub mod messages;
pub mod order_lines;
pub mod overload;
pub mod proto;
