//! The gateway's request metrics ([`crate::metrics`]), under the names every service uses:
//! `storefront_requests_total{service,route,code}` and
//! `storefront_request_duration_seconds{service,route}` (route = the matched path template,
//! so SKUs and order ids do not multiply the series).

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

pub use crate::metrics::RequestMetrics;

/// Middleware (as a route layer, so the route template is known) that records each request.
pub async fn record(
    State(metrics): State<RequestMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
