//! The gateway: the public HTTP/JSON API (DESIGN.md "Public API", shapes in [`storefront_contracts::api`])
//! over the services' gRPC on the HTTP port (8080); `/healthz`, `/readyz`, `/metrics` and
//! `/routes` on a port of their own that the gateway's Service does not expose ([`ops_port`]).
//!
//! ```text
//!   shopper ──HTTP/JSON──▶ http: router from the route table ──▶ upstream: Caller::call  ──gRPC──▶ auth, catalog,
//!                            │ budgets (429), body limit, JSON,  │ admit (breaker) → attempt →       orders,
//!                            │ JWT (local verify), one handler   │ metrics → retry within budget     inventory[ring],
//!                            ▼ per route                         ▼ channels and pools per snapshot   recommendations
//!              {"error": {code, message, requestId}}    routing: route table + rings (reloaded, last good kept)
//! ```
//!
//! The rooms:
//! - [`http`]: the HTTP edge, driven by one route table (router, OpenAPI document and
//!   rate-limit scopes built from it): [`http::handlers`] (one function per route),
//!   [`http::limits`] (budgets at the door, request metrics), [`http::openapi`],
//!   [`http::request_id`] (`X-Request-Id` on every answer, `requestId` in error bodies, the
//!   id passed to the services as `x-request-id` and logged with every failure).
//! - [`upstream`]: the call pipeline ([`upstream::call`]: admit → attempt within the
//!   deadline → per-attempt metrics ([`upstream::metrics`]) → retry within the budget),
//!   [`upstream::channel`] (one HTTP/2 connection per address), [`upstream::discovery`] and
//!   [`upstream::pool`] (calls spread over a service's pods), gRPC failure → public error.
//! - [`routing`]: the route table and rings ([`routing::table`]), the table from the API
//!   server ([`routing::source`]), the reload loop ([`routing::reload`]) and the one
//!   [`routing::apply`] of a poll.
//! - [`edge_health`]: open breakers of core routes and the limiter's degraded state, as
//!   conditions on the gateway's pod.
//! - [`ratelimit`]: the cluster-wide rate limiter (GCRA, Redis leases, fair shares).
//! - [`resilience`]: the guard every upstream call passes ([`resilience::guard`]), a
//!   breaker per upstream ([`resilience::BreakerGuard`]) and the retry budget.
//! - [`run`]: the `gateway` subcommand; [`ops_port`]: its two listeners (public API, and the
//!   operations endpoints on `OPS_ADDR`).
//! - [`test_client`]: a raw HTTP/1.1 client for tests (this crate's and the integration
//!   tests'), able to send malformed requests.
//!
//! User tokens are verified here with the auth key (no call to auth per request); orders
//! get the verified user id. Every failure is a JSON error body: input problems are 4xx
//! before any service is called, an unavailable upstream is a 503, nothing panics on input.

pub mod edge_health;
pub mod http;
pub mod ops_port;
pub mod ratelimit;
pub mod resilience;
pub mod routing;
pub mod run;
pub mod test_client;
pub mod upstream;

/// The gateway's state ([`http::state`]).
pub use http::state::Gateway;

#[cfg(test)]
mod tests;
