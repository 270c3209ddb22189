//! The gateway: the public HTTP/JSON API (DESIGN.md "Public API", shapes in [`storefront_contracts::api`])
//! over the services' gRPC, on the HTTP port next to `/healthz`, `/readyz` and `/metrics`.
//!
//! ```text
//!   shopper ──HTTP/JSON──▶ http: router from the route table ──▶ upstream: Gateway::call ──gRPC──▶ auth, catalog,
//!                            │ budgets (429), body limit, JSON,  │ admit (breaker) → attempt →       orders,
//!                            │ JWT (local verify), one handler   │ metrics → retry within budget     inventory[ring],
//!                            ▼ per route                         ▼ channels and pools per snapshot   recommendations
//!                     {"error": {code, message}}        routing: route table + rings (reloaded, last good kept)
//! ```
//!
//! The rooms:
//! - [`http`]: the HTTP edge, driven by one route table (router, OpenAPI document and
//!   rate-limit scopes built from it): [`http::handlers`] (one function per route),
//!   [`http::limits`] (budgets at the door, request metrics), [`http::openapi`].
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
//! - [`run`]: the `gateway` subcommand.
//! - [`test_client`]: a raw HTTP/1.1 client for tests (this crate's and the integration
//!   tests'), able to send malformed requests.
//!
//! User tokens are verified here with the auth key (no call to auth per request); orders
//! get the verified user id. Every failure is a JSON error body: input problems are 4xx
//! before any service is called, an unavailable upstream is a 503, nothing panics on input.

pub mod edge_health;
pub mod http;
pub mod ratelimit;
pub mod resilience;
pub mod routing;
pub mod run;
pub mod test_client;
pub mod upstream;

// The paths these had before the gateway was arranged in rooms (the binary crate, its
// integration tests and benches use them).
/// Moved to [`upstream::pool`] (and [`upstream::discovery`]).
pub mod balance {
    pub use crate::upstream::{
        discovery::{
            PodSource, Resolve, endpoint_slices, in_namespace, ready_pods, system_resolver,
        },
        pool::{Pool, SKIP_FAILED, Upstream},
    };
}
/// Moved to [`http::{json_body, method_not_allowed, SignedIn}`](http).
pub use http::{SignedIn, json_body, method_not_allowed};
/// Moved to [`routing::table`].
pub use routing::table;
/// Moved to [`upstream::channel`].
pub use upstream::channel;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use axum::{
    Router,
    http::{HeaderMap, header::AUTHORIZATION},
};
use tonic::Status;

use self::{
    ratelimit::cluster::ClusterLimiter,
    resilience::{
        guard::{Outcome, Refusal, UpstreamGuard},
        retry_budget::RetryBudgets,
    },
    routing::table::Snapshot,
    upstream::{Authed, Deadlines, Upstreams, discovery::PodSource, metrics},
};
use storefront_contracts::api::{ApiError, ErrorKind};
use storefront_platform::grpc::{ServiceTokenAttacher, VerifiedTokens, unix_now};
use storefront_platform::token::{Claims, TokenIssuer, TokenVerifier};

/// User tokens the gateway remembers as verified (about 10 MB when full).
const USER_TOKENS: usize = 16_384;

/// The gateway's shared state: current upstreams (swapped on reload), keys, the guard, the
/// retry budgets, the rate limiter and the metrics.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    upstreams: RwLock<Arc<Upstreams>>,
    issuer: Arc<TokenIssuer>,
    verifier: TokenVerifier,
    /// User tokens verified before (a shopper sends the same token on every request).
    users: VerifiedTokens,
    guard: Arc<dyn UpstreamGuard>,
    deadlines: Deadlines,
    retries: RetryBudgets,
    limiter: ClusterLimiter,
    /// One token attacher per upstream, so its token is reused across requests.
    attachers: Mutex<HashMap<&'static str, ServiceTokenAttacher>>,
    /// Every attempt of every upstream call, for the console's gateway → service edges.
    upstream_metrics: metrics::UpstreamMetrics,
    /// Public requests by route and status, once [`Gateway::router_with_metrics`] set it
    /// (recorded by the same middleware that enforces the rate limits: one layer, not two).
    request_metrics: std::sync::OnceLock<metrics::RequestMetrics>,
    /// Where pools find a service's pods, once [`Gateway::find_pods_with`] set it (cluster
    /// DNS until then).
    pods: std::sync::OnceLock<PodSource>,
}

impl Gateway {
    /// A gateway with no routes yet (every service answers 503 until [`Gateway::apply`]).
    /// `issuer` mints service tokens; its verifier checks user tokens.
    /// Rate limits are enforced by a local limiter (each replica alone); see
    /// [`Gateway::with_limiter`].
    pub fn new(
        issuer: Arc<TokenIssuer>,
        guard: Arc<dyn UpstreamGuard>,
        deadlines: Deadlines,
    ) -> Self {
        Self::with_limiter(issuer, guard, deadlines, ClusterLimiter::local(1))
    }

    /// [`Gateway::new`] with the rate limiter that enforces the route table's budgets.
    pub fn with_limiter(
        issuer: Arc<TokenIssuer>,
        guard: Arc<dyn UpstreamGuard>,
        deadlines: Deadlines,
        limiter: ClusterLimiter,
    ) -> Self {
        Self(Arc::new(Inner {
            upstreams: RwLock::new(Arc::new(Upstreams::default())),
            verifier: issuer.verifier(),
            users: VerifiedTokens::with_capacity(USER_TOKENS),
            issuer,
            guard,
            deadlines,
            retries: RetryBudgets::default(),
            limiter,
            attachers: Mutex::new(HashMap::new()),
            upstream_metrics: metrics::UpstreamMetrics::default(),
            request_metrics: std::sync::OnceLock::new(),
            pods: std::sync::OnceLock::new(),
        }))
    }

    /// Pools built from now on find their pods with `source` (set once, before the first
    /// route table; later calls are ignored).
    pub fn find_pods_with(&self, source: PodSource) {
        let _ = self.0.pods.set(source);
    }

    /// The token attacher for calls to `service` (shared, so tokens are reused).
    fn attacher(&self, service: &'static str) -> ServiceTokenAttacher {
        self.0
            .attachers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(service)
            .or_insert_with(|| {
                ServiceTokenAttacher::new(Arc::clone(&self.0.issuer), upstream::SERVICE, service)
            })
            .clone()
    }

    /// The current upstreams.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        Arc::clone(
            &self
                .0
                .upstreams
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &ClusterLimiter {
        &self.0.limiter
    }

    /// Switches to `snapshot` (channels and rate limits); on error (a bad address, a zero or
    /// absurd limit) the current table stays, whole.
    pub fn apply(&self, snapshot: Snapshot) -> Result<(), String> {
        let policies = http::limits::policies(&snapshot.table)?;
        let pods = self.0.pods.get().cloned().unwrap_or_default();
        let next = Upstreams::build(snapshot, &self.upstreams(), self.0.deadlines, &pods)?;
        self.0.limiter.configure(&policies)?;
        *self
            .0
            .upstreams
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }

    /// Whether a route table has been applied.
    pub fn has_routes(&self) -> bool {
        self.upstreams().snapshot.is_some()
    }

    /// The deadlines of upstream calls.
    pub fn deadlines(&self) -> Deadlines {
        self.0.deadlines
    }

    /// A client channel to an unsharded service, after the guard admits the call.
    pub fn client(&self, service: &'static str) -> Result<Authed, Refusal> {
        self.0.guard.admit(service)?;
        self.upstreams()
            .service(service, self.attacher(service))
            .ok_or_else(|| not_routed(service).into())
    }

    /// Whether `service` is in the route table.
    pub fn is_routed(&self, service: &str) -> bool {
        self.upstreams()
            .snapshot
            .as_ref()
            .is_some_and(|s| s.table.route(service).is_some())
    }

    /// A client channel to the shard of `service` that owns `key`, and the ring epoch.
    pub fn shard(&self, service: &'static str, key: &str) -> Result<(Authed, i64), Refusal> {
        self.0.guard.admit(service)?;
        let upstreams = self.upstreams();
        let sharded = upstreams
            .sharded(service)
            .ok_or_else(|| not_routed(service))?;
        let channel = sharded
            .channel_for(key)
            .ok_or_else(|| not_routed(service))?
            .clone();
        Ok((
            upstream::authed(channel, self.attacher(service)),
            sharded.ring.epoch(),
        ))
    }

    /// Records the outcome of a call for the guard and unwraps the answer.
    pub fn finish<T>(
        &self,
        service: &'static str,
        result: Result<tonic::Response<T>, Status>,
    ) -> Result<T, Status> {
        match result {
            Ok(r) => {
                self.0.guard.record(service, Outcome::Answered);
                Ok(r.into_inner())
            }
            Err(status) => {
                self.0.guard.record(service, upstream::outcome(&status));
                Err(status)
            }
        }
    }

    /// The verified user of a request's `Authorization: Bearer` token.
    pub fn user(&self, headers: &HeaderMap) -> Result<Arc<Claims>, ApiError> {
        let unauthenticated = |m: String| ApiError::new(ErrorKind::Unauthenticated, m);
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthenticated("missing Authorization: Bearer token".into()))?
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthenticated("the Authorization header must be `Bearer <token>`".into())
            })?;
        let now = unix_now();
        self.0.users.get_or_verify(token, now, || {
            self.0
                .verifier
                .verify_user(token, now)
                .map_err(|e| unauthenticated(format!("invalid token: {e}")))
        })
    }

    /// The router of the public API (no operations endpoints), from the route table
    /// ([`http::router`]).
    pub fn router(self) -> Router {
        http::router(self)
    }

    /// [`Gateway::router`] with request metrics recorded in `registry`.
    pub fn router_with_metrics(
        self,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Router {
        let metrics = metrics::RequestMetrics::register(registry, "gateway");
        let _ = self.0.request_metrics.set(metrics);
        self.0.retries.register(registry);
        self.0.limiter.register(registry);
        self.0.upstream_metrics.register(registry);
        self.router()
    }

    /// The public request metrics, when the router records them.
    pub fn request_metrics(&self) -> Option<&metrics::RequestMetrics> {
        self.0.request_metrics.get()
    }
}

fn not_routed(service: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the {service} service is not in the gateway's route table"),
    )
}

#[cfg(test)]
mod tests;
