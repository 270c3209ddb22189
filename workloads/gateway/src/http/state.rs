//! The gateway's shared state, [`Gateway`]: the upstreams in force (swapped whole on each
//! route table), the user-token verifier and its cache, the upstream call pipeline
//! ([`Caller`]) and the rate limiter. The HTTP edge's handlers are given it as their state;
//! the lower rooms ([`crate::upstream`], [`crate::routing`]) never see it (routing applies
//! tables through [`Routed`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use axum::{
    Router,
    http::{HeaderMap, header::AUTHORIZATION},
};

use crate::{
    ratelimit::{client::ClientRules, cluster::ClusterLimiter},
    resilience::guard::{Refusal, UpstreamGuard},
    routing::{Routed, table::Snapshot},
    upstream::{self, Authed, Deadlines, Upstreams, call::Caller, discovery::PodSource, metrics},
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
    /// Every upstream call's pipeline: guard, retry budgets, per-attempt metrics.
    caller: Caller,
    deadlines: Deadlines,
    limiter: ClusterLimiter,
    /// One token attacher per upstream, so its token is reused across requests.
    attachers: Mutex<HashMap<&'static str, ServiceTokenAttacher>>,
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
            caller: Caller::new(guard, deadlines.call),
            deadlines,
            limiter,
            attachers: Mutex::new(HashMap::new()),
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
        let policies = super::limits::policies(&snapshot.table)?;
        let clients = snapshot
            .table
            .client_limits
            .as_ref()
            .map(ClientRules::from_table)
            .transpose()?;
        let pods = self.0.pods.get().cloned().unwrap_or_default();
        let next = Upstreams::build(snapshot, &self.upstreams(), self.0.deadlines, &pods)?;
        self.0.limiter.configure(&policies)?;
        self.0.limiter.configure_clients(clients);
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
        self.0.caller.admit(service)?;
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
        self.0.caller.admit(service)?;
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

    /// The pipeline every upstream call runs through ([`Caller::call`]).
    pub fn caller(&self) -> &Caller {
        &self.0.caller
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
    /// ([`super::router`]).
    pub fn router(self) -> Router {
        super::router(self)
    }

    /// [`Gateway::router`] with request metrics recorded in `registry` (which the operations
    /// port serves, never this router: [`crate::ops_port`]).
    pub fn router_with_metrics(
        self,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Router {
        let metrics = metrics::RequestMetrics::register(registry, "gateway");
        let _ = self.0.request_metrics.set(metrics);
        self.0.caller.register(registry);
        self.0.limiter.register(registry);
        self.router()
    }

    /// The public request metrics, when the router records them.
    pub fn request_metrics(&self) -> Option<&metrics::RequestMetrics> {
        self.0.request_metrics.get()
    }
}

impl Routed for Gateway {
    fn apply(&self, snapshot: Snapshot) -> Result<(), String> {
        Gateway::apply(self, snapshot)
    }

    fn in_force(&self) -> Option<Arc<Snapshot>> {
        self.upstreams().snapshot.clone()
    }
}

/// A service the route table does not have (yet): a 503 in the words of any unavailable
/// service; why is logged.
fn not_routed(service: &str) -> ApiError {
    tracing::warn!(
        request_id = storefront_platform::request_id::for_log(),
        service,
        "the {service} service is not in the gateway's route table"
    );
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the {service} service is unavailable; retry shortly"),
    )
}
