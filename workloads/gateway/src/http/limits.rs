//! Rate limits at the gateway's door: every public route is checked first against its
//! client's budgets (`clientLimits` of the route table: the signed-in user's, else the
//! address's, then the route's own per-client limit; [`crate::ratelimit::client`]), so one
//! client — or a flood of bad tokens from one address — is refused before it spends what
//! everyone shares; then against the shop-wide budget (`gatewayRateLimit`, scope `gateway`)
//! and the budget of the service it serves (the route's `rateLimit`), by the cluster-wide
//! limiter ([`crate::ratelimit::cluster`]). A refusal is a 429 JSON error with `Retry-After`; every
//! answer carries the IETF `RateLimit-Policy` (each budget: `q` requests per `w` seconds) and
//! `RateLimit` (the tightest budget: `r` left, `t` seconds to wait or to full) headers, and,
//! while Redis is unreachable, `Storefront-RateLimit: fallback; replicas=N` (each replica
//! enforces its share).
//!
//! A request refused by the service budget has already spent a token of the shop-wide one
//! (the order of the checks); that only ever makes the gateway stricter.

use std::fmt::Write as _;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{
        HeaderMap, HeaderValue,
        header::{AUTHORIZATION, RETRY_AFTER},
    },
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::Gateway;
use crate::{
    ratelimit::{
        client::{ClientKey, ClientRules, Rule},
        cluster::{Policy, Verdict},
        gcra::Rate,
    },
    routing::table::RouteTable,
    upstream::Service,
};
use storefront_contracts::api::{ApiError, ErrorKind};
use storefront_platform::token::Claims;

/// The scope of the shop-wide budget.
pub const GATEWAY_SCOPE: &str = "gateway";
/// The header that says the limiter runs on its local fallback.
pub const MODE_HEADER: &str = "storefront-ratelimit";

/// The scope of the budget a request to `path` (a route's template) spends after the
/// shop-wide one: its row's upstream in the route table ([`super::ROUTES`]; every method of a
/// path has the same one, so a 405 spends it too). `None` for the API document (not
/// limited) and for paths not in the table.
pub fn scope_of(path: &str) -> Option<&'static str> {
    super::ROUTES
        .iter()
        .find(|r| r.path == path)
        .and_then(|r| r.upstream)
        .map(Service::name)
}

/// The budgets of a route table; an invalid one (0 or absurd) is an error naming it.
pub fn policies(table: &RouteTable) -> Result<Vec<Policy>, String> {
    let gateway = table
        .gateway_rate_limit
        .map(|l| (GATEWAY_SCOPE.to_string(), l));
    let services = table
        .routes
        .iter()
        .filter_map(|r| r.rate_limit.map(|l| (r.service.clone(), l)));
    gateway
        .into_iter()
        .chain(services)
        .map(|(scope, l)| {
            Rate::per_minute(u64::from(l.requests_per_minute), u64::from(l.burst))
                .map_err(|e| format!("the rate limit of {scope} is invalid: {e}"))?;
            Ok(Policy {
                scope,
                requests_per_minute: l.requests_per_minute,
                burst: l.burst,
            })
        })
        .collect()
}

/// A header value that takes `s`'s buffer (no copy).
fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// The headers for the verdicts of one request (in check order).
pub fn headers(verdicts: &[Verdict], replicas: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if verdicts.is_empty() {
        return headers;
    }
    let mut policy = String::with_capacity(32 * verdicts.len());
    for (i, v) in verdicts.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(
            policy,
            "{sep}\"{}\";q={};w=60",
            v.scope, v.requests_per_minute
        );
    }
    if let Some(v) = value(policy) {
        headers.insert("ratelimit-policy", v);
    }
    // The refusing budget, else the one closest to running out.
    let tightest = verdicts
        .iter()
        .find(|v| !v.allowed)
        .or_else(|| verdicts.iter().min_by_key(|v| v.remaining));
    if let Some(t) = tightest {
        let (r, wait) = if t.allowed {
            (t.remaining, t.reset_s)
        } else {
            (0, t.retry_after_s)
        };
        if let Some(v) = value(format!("\"{}\";r={r};t={wait}", t.scope)) {
            headers.insert("ratelimit", v);
        }
        if !t.allowed
            && let Some(v) = value(t.retry_after_s.to_string())
        {
            headers.insert(RETRY_AFTER, v);
        }
    }
    if verdicts.iter().any(|v| v.fallback)
        && let Some(v) = value(format!("fallback; replicas={replicas}"))
    {
        headers.insert(MODE_HEADER, v);
    }
    headers
}

/// The middleware of every public route: checks the budgets, answers 429 or runs the
/// route, adds the headers, and records the request's metrics (route, status, latency).
pub async fn enforce(
    State(gw): State<Gateway>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let mut request = request;
    let limiter = gw.limiter();
    let service = matched.as_ref().and_then(|m| scope_of(m.as_str()));
    let mut verdicts = Vec::with_capacity(3);
    if let (Some(_), Some(path), Some(rules)) = (service, &matched, limiter.client_rules()) {
        client_verdicts(&gw, &rules, path.as_str(), &mut request, &mut verdicts);
    }
    if service.is_some() && verdicts.iter().all(|v| v.allowed) {
        for scope in [Some(GATEWAY_SCOPE), service].into_iter().flatten() {
            if let Some(v) = limiter.check(scope).await {
                let refused = !v.allowed;
                verdicts.push(v);
                if refused {
                    break;
                }
            }
        }
    }
    let extra = headers(&verdicts, limiter.replicas());
    let mut response = match verdicts.iter().find(|v| !v.allowed) {
        Some(v) => {
            let budget = match &*v.scope {
                GATEWAY_SCOPE => "the shop's request budget".to_string(),
                "user" => "your request budget (per signed-in user)".to_string(),
                "address" => "your request budget (per address, without a valid token)".to_string(),
                scope => match scope.strip_prefix("route:") {
                    Some(route) => format!("your request budget for {route}"),
                    None => format!("the {scope} service's request budget"),
                },
            };
            ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "{budget} ({} per minute) is spent; retry in {} s",
                    v.requests_per_minute, v.retry_after_s
                ),
            )
            .into_response()
        }
        None => next.run(request).await,
    };
    response.headers_mut().extend(extra);
    if let Some(metrics) = gw.request_metrics() {
        metrics.record(
            matched.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

/// The per-client checks of one request ([`crate::ratelimit::client`]): the user's budget
/// when its token verifies (the claims are kept in the request for [`super::SignedIn`]),
/// else its address's (none without a known address), then the route's own; they stop at
/// the first refusal. The client's address, resolved through trusted proxies, is kept in
/// the request for [`super::client_address::ClientAddress`].
fn client_verdicts(
    gw: &Gateway,
    rules: &ClientRules,
    path: &str,
    request: &mut Request,
    verdicts: &mut Vec<Verdict>,
) {
    let limiter = gw.limiter();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
    let address = peer.map(|peer| {
        rules.client_address(
            peer,
            request
                .headers()
                .get_all(FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    });
    if let Some(address) = address {
        request.extensions_mut().insert(ResolvedAddress(address));
    }
    let user = request
        .headers()
        .contains_key(AUTHORIZATION)
        .then(|| gw.user(request.headers()).ok())
        .flatten();
    let client = match (&user, address) {
        (Some(claims), _) => (Rule::PerUser, ClientKey::user(&claims.sub)),
        (None, Some(address)) => (Rule::PerAddress, ClientKey::address(address)),
        (None, None) => return,
    };
    if let Some(claims) = user {
        request.extensions_mut().insert(VerifiedUser(claims));
    }
    let route = rules.route_rule(request.method(), path);
    for rule in [Some(client.0), route].into_iter().flatten() {
        if let Some(v) = limiter.check_client(rules, rule, &client.1) {
            let refused = !v.allowed;
            verdicts.push(v);
            if refused {
                return;
            }
        }
    }
}

/// The user whose token the per-client check verified, for [`super::SignedIn`].
#[derive(Clone, Debug)]
pub struct VerifiedUser(pub Arc<Claims>);

/// The client's address as the per-client check resolved it (through trusted proxies), for
/// [`super::client_address::ClientAddress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedAddress(pub IpAddr);

/// `X-Forwarded-For`.
const FORWARDED_FOR: &str = "x-forwarded-for";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn verdict(scope: &str, allowed: bool, remaining: u64, fallback: bool) -> Verdict {
        Verdict {
            allowed,
            scope: Arc::from(scope),
            requests_per_minute: 5000,
            remaining,
            reset_s: 4,
            retry_after_s: if allowed { 0 } else { 2 },
            fallback,
        }
    }

    #[test]
    fn every_public_route_has_a_scope_and_the_document_none() {
        for route in super::super::ROUTES {
            let expected = !route.path.ends_with("openapi.json");
            assert_eq!(scope_of(route.path).is_some(), expected, "{}", route.path);
            // Every method of a path spends the same budget (the lookup is by path).
            assert_eq!(
                scope_of(route.path),
                route.upstream.map(Service::name),
                "{}",
                route.path
            );
        }
        assert_eq!(scope_of("/api/v1/nothing"), None);
    }

    #[test]
    fn headers_name_every_budget_and_the_tightest_state() {
        let h = headers(
            &[
                verdict("gateway", true, 400, false),
                verdict("catalog", true, 12, false),
            ],
            3,
        );
        assert_eq!(
            h["ratelimit-policy"],
            r#""gateway";q=5000;w=60, "catalog";q=5000;w=60"#
        );
        assert_eq!(h["ratelimit"], r#""catalog";r=12;t=4"#);
        assert!(h.get(RETRY_AFTER).is_none());
        assert!(h.get(MODE_HEADER).is_none());

        let h = headers(&[verdict("gateway", false, 0, true)], 3);
        assert_eq!(h["ratelimit"], r#""gateway";r=0;t=2"#);
        assert_eq!(h[RETRY_AFTER], "2");
        assert_eq!(h[MODE_HEADER], "fallback; replicas=3");
        assert!(headers(&[], 1).is_empty());
    }

    #[test]
    fn policies_come_from_the_table_and_bad_limits_are_named() {
        let table = RouteTable::parse(
            r#"{"storefront": "s", "gatewayRateLimit": {"requestsPerMinute": 5000, "burst": 500},
                "routes": [{"service": "catalog", "upstream": "c:1",
                            "rateLimit": {"requestsPerMinute": 100, "burst": 10}},
                           {"service": "orders", "upstream": "o:1"}]}"#,
        )
        .expect("table");
        let p = policies(&table).expect("valid");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].scope.as_str(), p[0].requests_per_minute),
            ("gateway", 5000)
        );
        assert_eq!((p[1].scope.as_str(), p[1].burst), ("catalog", 10));
        // The table's own parse refuses a zero; the limiter's bound (one per µs) is
        // checked here, whatever a table let through.
        let mut absurd = table.clone();
        absurd.routes[0].rate_limit = Some(crate::routing::table::RateLimit {
            requests_per_minute: 70_000_000,
            burst: 1,
        });
        let err = policies(&absurd).expect_err("absurd");
        assert!(err.contains("catalog"), "{err}");
    }
}
