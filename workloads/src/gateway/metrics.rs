//! The gateway's request metrics, under the names every service uses:
//! `storefront_requests_total{service,route,code}` and
//! `storefront_request_duration_seconds{service,route}` (route = the matched path template,
//! so SKUs and order ids do not multiply the series).

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

/// The request metrics of the public API.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
}

impl RequestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<Labels, Counter>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        registry.register(
            "storefront_requests",
            "Requests by service, route and status code",
            requests.clone(),
        );
        registry.register(
            "storefront_request_duration_seconds",
            "Request latency by service and route",
            duration.clone(),
        );
        Self { requests, duration }
    }

    fn record(&self, route: &str, code: u16, seconds: f64) {
        let route = route.to_string();
        self.requests
            .get_or_create(&vec![
                ("service", "gateway".to_string()),
                ("route", route.clone()),
                ("code", code.to_string()),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![("service", "gateway".to_string()), ("route", route)])
            .observe(seconds);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_code() {
        let mut registry = Registry::default();
        let metrics = RequestMetrics::register(&mut registry);
        metrics.record("/api/v1/orders", 202, 0.01);
        metrics.record("/api/v1/orders", 202, 0.02);
        metrics.record("/api/v1/orders", 401, 0.001);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(
                r#"storefront_requests_total{service="gateway",route="/api/v1/orders",code="202"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"code="401"} 1"#), "{text}");
        assert!(
            text.contains(r#"storefront_request_duration_seconds_count{service="gateway",route="/api/v1/orders"} 3"#),
            "{text}"
        );
    }
}
