//! The gateway: the public HTTP/JSON API (DESIGN.md "Public API", shapes in [`storefront_contracts::api`])
//! over the services' gRPC, on the HTTP port next to `/healthz`, `/readyz` and `/metrics`.
//!
//! ```text
//!   shopper ──HTTP/JSON──▶ router (handlers) ──▶ Gateway::client / shard ──gRPC──▶ auth, catalog,
//!                            │  body limit, JSON   │ route table + rings             orders,
//!                            │  JWT (local verify) │ (reloaded, last good kept)      inventory[ring],
//!                            ▼                     ▼                                 recommendations
//!                     {"error": {code, message}}  UpstreamGuard (seam: limits, breakers, retries)
//! ```
//!
//! - [`table`]: the route table and rings the operator renders, and their reload.
//! - [`upstream`]: channels, deadlines, gRPC failure → public error, the guard seam;
//!   [`channel`]: one HTTP/2 connection per address; [`balance`]: calls spread over a
//!   service's pods.
//! - [`handlers`]: one function per route; [`metrics`]: request counts and latency; [`openapi`]: the route list and its OpenAPI
//!   document; [`run`]: the `gateway` subcommand.
//!
//! User tokens are verified here with the auth key (no call to auth per request); orders
//! get the verified user id. Every failure is a JSON error body: input problems are 4xx
//! before any service is called, an unavailable upstream is a 503, nothing panics on input.

pub mod balance;
pub mod call;
pub mod channel;
pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod reload;
pub mod report;
pub mod resilience;
pub mod run;
pub mod source;
pub mod table;
pub mod upstream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use tonic::Status;

use self::{
    table::Snapshot,
    upstream::{Authed, Deadlines, Refusal, UpstreamGuard, Upstreams},
};
use crate::ratelimit::cluster::ClusterLimiter;
use crate::resilience::retry_budget::RetryBudgets;
use storefront_contracts::api::{ApiError, ErrorBody, ErrorDetail, ErrorKind, MAX_BODY_BYTES};
use storefront_platform::grpc::{ServiceTokenAttacher, VerifiedTokens, unix_now};
use storefront_platform::token::{Claims, TokenIssuer, TokenVerifier};

/// User tokens the gateway remembers as verified (about 10 MB when full).
const USER_TOKENS: usize = 16_384;

/// The gateway's shared state: current upstreams (swapped on reload), keys, the guard.
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
    pods: std::sync::OnceLock<balance::PodSource>,
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
    pub fn find_pods_with(&self, source: balance::PodSource) {
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
        let policies = limits::policies(&snapshot.table)?;
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
                self.0.guard.record(service, upstream::Outcome::Answered);
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

    /// The router of the public API (no operations endpoints).
    pub fn router(self) -> Router {
        openapi::routes()
            .into_iter()
            .fold(Router::new(), |router, (path, method_router)| {
                router.route(path, method_router)
            })
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                limits::enforce,
            ))
            .fallback(no_route)
            .with_state(self)
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

/// The verified user of a request's `Authorization: Bearer` token ([`Gateway::user`]), as
/// an extractor: it reads the header in place (axum's `HeaderMap` extractor copies them all).
pub struct SignedIn(pub Arc<Claims>);

impl axum::extract::FromRequestParts<Gateway> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        gateway: &Gateway,
    ) -> Result<Self, ApiError> {
        gateway.user(&parts.headers).map(SignedIn)
    }
}

fn not_routed(service: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the {service} service is not in the gateway's route table"),
    )
}

/// Reads a JSON body: over [`MAX_BODY_BYTES`] → 413, not all there within `within` → 408,
/// unreadable → 400, not JSON or another shape (missing or unknown fields) → 400.
pub async fn json_body<T: DeserializeOwned>(body: Body, within: Duration) -> Result<T, ApiError> {
    let read = tokio::time::timeout(within, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorKind::RequestTimeout,
                format!("the body did not arrive within {} ms", within.as_millis()),
            )
        })?;
    let bytes = read.map_err(|e| {
        // axum reports the limit as http-body-util's `LengthLimitError` in the source
        // chain; its text is the stable way to tell it apart without that crate.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        let mut too_large = false;
        while let Some(s) = source {
            too_large |= s.to_string().contains("length limit exceeded");
            source = s.source();
        }
        if too_large {
            ApiError::new(
                ErrorKind::TooLarge,
                format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                ErrorKind::Malformed,
                format!("failed to read the body: {e}"),
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Malformed,
            "the body is empty; a JSON object is expected",
        ));
    }
    ApiError::parse_body(&bytes)
}

async fn no_route(method: Method, uri: Uri) -> Response {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route {method} {}", uri.path()),
    )
    .into_response()
}

/// The answer to a known path with a method it does not have (every route's fallback).
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "method_not_allowed".into(),
            message: format!("{method} is not allowed on {}", uri.path()),
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests;
