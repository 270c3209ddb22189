//! The gateway's side of the services: channels and pools built from a route table
//! [`Snapshot`] (one per unsharded service, one per shard of a ring), the call pipeline
//! every handler goes through, deadlines, and the mapping of gRPC failures to public errors.
//!
//! - [`channel`]: one HTTP/2 connection per address (and why not tonic's `Channel`);
//!   [`discovery`]: where a service's pods are found; [`pool`]: calls spread over them.
//! - [`call`]: the one call pipeline, [`call::Caller::call`]:
//!
//! ```text
//!  handler ─▶ Gateway::client / shard ─▶ guard.admit(service)?     admit: breaker (503 + Retry-After)
//!          ─▶ gw.caller().call(service, retry, rpc)
//!               loop { rpc within what is left of the deadline     attempt
//!                      metrics.record(service, code, latency)      per-attempt metrics
//!                      guard.record(service, outcome)              the breaker sees every attempt
//!                      retry? safe (Retry) ∧ in time ∧ guard.admit ∧ retry budget }
//! ```
//!
//!   The route budgets (429) are checked before the handler runs ([`crate::http::limits`]);
//!   the guard's types (`UpstreamGuard`, `Refusal`, `Outcome`) live in
//!   [`crate::resilience::guard`].
//! - [`metrics`]: every attempt of every upstream call, for the console's edges.
//!
//! Channels connect lazily, so the gateway starts (and answers 503 for a service) while an
//! upstream is still down; a reload reuses the channel of an address that did not change.
//!
//! A service that sheds load answers `RESOURCE_EXHAUSTED` with a retry hint
//! ([`storefront_contracts::overload`]); [`refusal`] turns it into a 503 with `Retry-After`
//! (the hint, or 1 s without one), for any upstream.
//!
//! A failure's public words are the gateway's own ([`error`]): a 4xx carries the service's
//! message (written for the client: "unknown SKU", "no order"), a 5xx only names the service
//! and what to do. The service's message (a driver's error, a shard's epoch) is logged with
//! the request id ([`storefront_platform::request_id`]), which every call carries as
//! `x-request-id` metadata ([`Authed`]).

pub mod call;
pub mod channel;
pub mod discovery;
pub mod metrics;
pub mod pool;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use storefront_crds::ring::Ring;
use tonic::{Code, Status, service::interceptor::InterceptedService};

use self::{
    channel::H2Channel as Channel,
    discovery::PodSource,
    pool::{Pool, Upstream},
};
// The guard's types, at the path they had before `resilience` owned them.
use crate::resilience::guard::{Outcome, Refusal};
use crate::routing::table::Snapshot;
use axum::http::{HeaderMap, HeaderValue, header::RETRY_AFTER};
use storefront_contracts::api::{ApiError, ErrorKind};
use storefront_contracts::overload;
use storefront_platform::{grpc::ServiceTokenAttacher, request_id::WithRequestId};

/// The services the gateway calls: the route table's upstreams, and the scopes of their
/// rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Auth,
    Catalog,
    Inventory,
    Orders,
    Recommendations,
}

impl Service {
    /// The service's name: its route's `service` in the route table, its budget's scope,
    /// its label in metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Orders => "orders",
            Self::Recommendations => "recommendations",
        }
    }
}

/// A channel that attaches a fresh service token and the request's id to every call.
pub type Authed = InterceptedService<Upstream, WithRequestId<ServiceTokenAttacher>>;

/// The name the gateway signs its service tokens with.
pub const SERVICE: &str = "gateway";

/// Deadlines of upstream calls.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Per call, retries included ([`call::Caller::call`]).
    pub call: Duration,
    /// To establish a connection.
    pub connect: Duration,
    /// Per call to a supporting service (recommendations): shorter, it is optional.
    pub supporting: Duration,
    /// For a client to send its whole request body (a slow sender holds no task longer).
    pub body: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(2),
            connect: Duration::from_millis(500),
            supporting: Duration::from_millis(300),
            body: Duration::from_secs(10),
        }
    }
}

/// A sharded service: its ring and an upstream per shard ordinal (a pool over the shard's
/// pods when the ring names their headless Service, else one channel to its address).
#[derive(Clone, Debug)]
pub struct Sharded {
    pub ring: Ring,
    channels: Vec<Upstream>,
}

impl Sharded {
    /// The upstream of the shard that owns `key`.
    pub fn channel_for(&self, key: &str) -> Option<&Upstream> {
        self.channels
            .get(usize::try_from(self.ring.ordinal(key)).unwrap_or(usize::MAX))
    }
}

/// Channels for one snapshot of the route table.
#[derive(Clone, Debug, Default)]
pub struct Upstreams {
    services: BTreeMap<String, Upstream>,
    sharded: BTreeMap<String, Sharded>,
    /// Every channel by address, to reuse on the next reload.
    by_address: BTreeMap<String, Channel>,
    /// Every pool by its endpoints and upstream, to reuse on the next reload.
    pools: BTreeMap<(String, String), Pool>,
    /// The snapshot these were built from (rate limits for the guard live in its table).
    pub snapshot: Option<Arc<Snapshot>>,
}

fn endpoint(address: &str, deadlines: Deadlines) -> Result<Channel, String> {
    let tls = storefront_platform::grpc::client_rustls().transpose()?;
    Channel::lazy(address, tls, deadlines.connect)
}

impl Upstreams {
    /// Channels for `snapshot`, reusing `previous`'s for unchanged addresses; pools find
    /// their pods from `pods`.
    pub fn build(
        snapshot: Snapshot,
        previous: &Upstreams,
        deadlines: Deadlines,
        pods: &PodSource,
    ) -> Result<Self, String> {
        let mut by_address = BTreeMap::new();
        let mut channel = |address: &str| -> Result<Channel, String> {
            if let Some(c) = by_address.get(address) {
                return Ok(Channel::clone(c));
            }
            let c = match previous.by_address.get(address) {
                Some(c) => c.clone(),
                None => endpoint(address, deadlines)?,
            };
            by_address.insert(address.to_string(), c.clone());
            Ok(c)
        };
        let mut pools = BTreeMap::new();
        let mut services = BTreeMap::new();
        let mut sharded = BTreeMap::new();
        for route in &snapshot.table.routes {
            if let (Some(address), Some(endpoints)) = (&route.upstream, &route.endpoints) {
                let key = (endpoints.clone(), address.clone());
                let pool = match previous.pools.get(&key) {
                    Some(p) => p.clone(),
                    None => Pool::new(
                        endpoints,
                        address,
                        storefront_platform::grpc::client_rustls().transpose()?,
                        deadlines.connect,
                        pods.clone(),
                    )?,
                };
                pools.insert(key, pool.clone());
                services.insert(route.service.clone(), Upstream::Pool(pool));
            } else if let Some(address) = &route.upstream {
                services.insert(route.service.clone(), Upstream::One(channel(address)?));
            } else if let Some(ring) = snapshot.rings.get(&route.service) {
                let mut channels = Vec::with_capacity(ring.shards().len());
                for s in ring.shards() {
                    let upstream = match &s.endpoints {
                        Some(endpoints) => {
                            let key = (endpoints.clone(), s.address.clone());
                            let pool = match previous.pools.get(&key) {
                                Some(p) => p.clone(),
                                None => Pool::new(
                                    endpoints,
                                    &s.address,
                                    storefront_platform::grpc::client_rustls().transpose()?,
                                    deadlines.connect,
                                    pods.clone(),
                                )?,
                            };
                            pools.insert(key, pool.clone());
                            Upstream::Pool(pool)
                        }
                        None => Upstream::One(channel(&s.address)?),
                    };
                    channels.push(upstream);
                }
                sharded.insert(
                    route.service.clone(),
                    Sharded {
                        ring: ring.clone(),
                        channels,
                    },
                );
            }
        }
        Ok(Self {
            services,
            sharded,
            by_address,
            pools,
            snapshot: Some(Arc::new(snapshot)),
        })
    }

    /// The channel of an unsharded service, with service tokens attached.
    pub fn service(&self, service: &'static str, tokens: ServiceTokenAttacher) -> Option<Authed> {
        let channel = self.services.get(service)?.clone();
        Some(authed(channel, tokens))
    }

    /// A sharded service.
    pub fn sharded(&self, service: &str) -> Option<&Sharded> {
        self.sharded.get(service)
    }
}

/// `channel` with the service tokens of `tokens` (the gateway's, for one upstream) and the
/// current request's id.
pub fn authed(channel: impl Into<Upstream>, tokens: ServiceTokenAttacher) -> Authed {
    InterceptedService::new(channel.into(), WithRequestId(tokens))
}

/// The retry hint of an overloaded upstream's answer, in seconds: its own, else 1 s.
fn overload_retry_after(status: &Status) -> u64 {
    overload::retry_after(status).unwrap_or(1)
}

/// [`error`] with the headers that go with it: an overloaded upstream's 503 and a throttled
/// client's 429 carry `Retry-After` (the upstream's hint, else 1 s). Handlers answer a
/// call's failure with this.
pub fn refusal(service: &str, status: &Status) -> Refusal {
    let error = error(service, status);
    if status.code() != Code::ResourceExhausted {
        return error.into();
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&overload_retry_after(status).to_string()) {
        headers.insert(RETRY_AFTER, v);
    }
    Refusal {
        error,
        headers: Some(Box::new(headers)),
    }
}

/// The public error for a failed call to `service` whose specific codes the caller did not
/// handle: a refusal of the input → 422, not found → 404, a conflict → 409, each with the
/// service's message (written for the client); unavailable, overloaded, out of time,
/// resharding or refusing the gateway → 503, a failure of the service → 500, each in the
/// gateway's own words (the service, what to do) with the service's logged
/// ([`log_failure`]).
pub fn error(service: &str, status: &Status) -> ApiError {
    let message = status.message();
    let public = |kind, message: String| {
        log_failure(service, status);
        ApiError::new(kind, message)
    };
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => ApiError::invalid(message),
        Code::NotFound => ApiError::new(ErrorKind::NotFound, message),
        Code::AlreadyExists | Code::Aborted => ApiError::new(ErrorKind::Conflict, message),
        Code::DeadlineExceeded => public(
            ErrorKind::Unavailable,
            format!("the {service} service did not answer in time; retry shortly"),
        ),
        // The client is over an upstream's allowance (auth's sign-in and sign-up throttles):
        // the client's doing, so a 429, without saying which allowance.
        Code::ResourceExhausted if overload::is_throttled(status) => ApiError::new(
            ErrorKind::RateLimited,
            format!(
                "too many attempts; retry in {} s",
                overload_retry_after(status)
            ),
        ),
        Code::ResourceExhausted => public(
            ErrorKind::Unavailable,
            format!(
                "the {service} service is busy; retry in {} s",
                overload_retry_after(status)
            ),
        ),
        Code::FailedPrecondition => public(
            ErrorKind::Unavailable,
            format!("the {service} service is being resharded; retry shortly"),
        ),
        Code::Internal | Code::DataLoss | Code::Unimplemented => public(
            ErrorKind::Internal,
            format!("the {service} service failed; if it persists, report the request id"),
        ),
        // Unavailable, Unknown, Cancelled, and a refusal of the gateway's own credentials
        // (Unauthenticated, PermissionDenied): nothing the client did.
        _ => public(
            ErrorKind::Unavailable,
            format!("the {service} service is unavailable; retry shortly"),
        ),
    }
}

/// Logs a call to `service` that failed with `status` (its own words, which the public
/// answer leaves out) with the request's id: at error when the gateway or the service is
/// broken (a bug, a refused service token), at debug when it sheds load (expected in a flood,
/// and counted in the call metrics), else at warn.
pub fn log_failure(service: &str, status: &Status) {
    let request_id = storefront_platform::request_id::for_log();
    let code = status.code();
    let message = status.message();
    match code {
        Code::ResourceExhausted => tracing::debug!(
            request_id,
            service,
            ?code,
            "the {service} service shed a call: {message}"
        ),
        Code::Internal
        | Code::DataLoss
        | Code::Unimplemented
        | Code::Unauthenticated
        | Code::PermissionDenied => tracing::error!(
            request_id,
            service,
            ?code,
            "a call to the {service} service failed: {message}"
        ),
        _ => tracing::warn!(
            request_id,
            service,
            ?code,
            "a call to the {service} service failed: {message}"
        ),
    }
}

/// Whether a status means the service, not the request, failed (for the guard).
///
/// `RESOURCE_EXHAUSTED` is the service shedding or throttling one request (auth's hash gate,
/// a sign-in throttle): the service is healthy and protecting itself, so it does not count.
/// Counted, a flood at one account would open the breaker and refuse every shopper's sign-in.
pub fn outcome(status: &Status) -> Outcome {
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled
        | Code::Internal => Outcome::Failed(status.code()),
        _ => Outcome::Answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::table::{RouteTable, Snapshot};
    use storefront_platform::token::TokenIssuer;

    fn snapshot(auth: &str, shards: &[&str]) -> Snapshot {
        let table = RouteTable::parse(&format!(
            r#"{{"storefront": "acme", "routes": [
                {{"service": "auth", "upstream": "{auth}"}},
                {{"service": "inventory", "ring": "acme-inventory-ring"}}]}}"#
        ))
        .expect("table");
        let shards: Vec<String> = shards
            .iter()
            .enumerate()
            .map(|(i, a)| format!(r#"{{"index": {i}, "name": "s{i}", "address": "{a}"}}"#))
            .collect();
        let ring = Ring::parse(&format!(
            r#"{{"service": "inventory", "epoch": 1, "algorithm": "jump", "shards": [{}]}}"#,
            shards.join(",")
        ))
        .expect("ring");
        Snapshot {
            table,
            rings: [("inventory".to_string(), ring)].into(),
        }
    }

    #[tokio::test]
    async fn a_shard_with_endpoints_is_a_pool_over_its_pods_and_one_without_a_channel() {
        let mut snap = snapshot("127.0.0.1:1", &["127.0.0.1:2"]);
        let ring = Ring::parse(
            r#"{"service": "inventory", "epoch": 2, "algorithm": "jump", "shards": [
                {"index": 0, "name": "s0", "address": "127.0.0.1:2", "endpoints": "s0-pods:50051"},
                {"index": 1, "name": "s1", "address": "127.0.0.1:3"}]}"#,
        )
        .expect("ring");
        snap.rings.insert("inventory".to_string(), ring);
        let up = Upstreams::build(
            snap,
            &Upstreams::default(),
            Deadlines::default(),
            &PodSource::default(),
        )
        .expect("builds");
        let inv = up.sharded("inventory").expect("sharded");
        let kinds: Vec<&str> = inv
            .channels
            .iter()
            .map(|u| match u {
                Upstream::Pool(_) => "pool",
                Upstream::One(_) => "one",
            })
            .collect();
        assert_eq!(kinds, ["pool", "one"]);
        assert_eq!(up.pools.len(), 1, "the pool is kept for the next reload");
    }

    #[tokio::test]
    async fn builds_channels_and_routes_by_the_ring() {
        let up = Upstreams::build(
            snapshot("127.0.0.1:1", &["127.0.0.1:2", "127.0.0.1:3"]),
            &Upstreams::default(),
            Deadlines::default(),
            &PodSource::default(),
        )
        .expect("builds");
        let issuer = Arc::new(TokenIssuer::new(
            storefront_platform::token::SigningKeys::from_seed([1; 32]).expect("key"),
            "acme",
            60,
            60,
        ));
        let tokens = |to| ServiceTokenAttacher::new(Arc::clone(&issuer), SERVICE, to);
        assert!(up.service("auth", tokens("auth")).is_some());
        assert!(up.service("orders", tokens("orders")).is_none());
        let inv = up.sharded("inventory").expect("sharded");
        assert_eq!(inv.ring.shard_count(), 2);
        for sku in ["SKU-1", "SKU-2", "SKU-3"] {
            assert!(inv.channel_for(sku).is_some());
        }
        assert_eq!(up.by_address.len(), 3);
        let again = Upstreams::build(
            snapshot("127.0.0.1:1", &["127.0.0.1:2"]),
            &up,
            Deadlines::default(),
            &PodSource::default(),
        )
        .expect("rebuilds");
        assert_eq!(
            again.by_address.len(),
            2,
            "the dropped shard's channel goes"
        );
        assert!(
            Upstreams::build(
                snapshot("bad address ::", &["a:1"]),
                &up,
                Deadlines::default(),
                &PodSource::default(),
            )
            .is_err()
        );
    }

    #[test]
    fn statuses_map_to_public_errors() {
        let cases = [
            (Status::invalid_argument("x"), 422),
            (Status::not_found("x"), 404),
            (Status::already_exists("x"), 409),
            (Status::unavailable("x"), 503),
            (Status::deadline_exceeded("x"), 503),
            (Status::unauthenticated("x"), 503),
            (Status::failed_precondition("x"), 503),
            (Status::resource_exhausted("x"), 503),
            (Status::internal("x"), 500),
        ];
        for (status, code) in cases {
            assert_eq!(
                error("catalog", &status).kind.status().as_u16(),
                code,
                "{status:?}"
            );
        }
        let busy = refusal("auth", &overload::overloaded("all slots busy", 4));
        assert_eq!(
            (busy.error.kind, busy.error.message.as_str()),
            (
                ErrorKind::Unavailable,
                "the auth service is busy; retry in 4 s"
            )
        );
        let headers = busy.headers.expect("headers");
        assert_eq!(
            headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"4"[..])
        );
        let unhinted = refusal("catalog", &Status::resource_exhausted("x"));
        assert_eq!(
            unhinted.headers.and_then(|h| h.get(RETRY_AFTER).cloned()),
            Some(HeaderValue::from_static("1"))
        );
        assert!(refusal("auth", &Status::unavailable("x")).headers.is_none());
        assert_eq!(outcome(&Status::not_found("x")), Outcome::Answered);
        assert_eq!(
            outcome(&Status::unavailable("x")),
            Outcome::Failed(Code::Unavailable)
        );
        // Shedding or throttling is a healthy service protecting itself: not a failure.
        assert_eq!(
            outcome(&Status::resource_exhausted("busy")),
            Outcome::Answered
        );
    }
}
