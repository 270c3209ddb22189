//! Request metrics under the names every service uses, so one PromQL query covers the shop:
//! `storefront_requests_total{service,route,code}` and
//! `storefront_request_duration_seconds{service,route}`.
//!
//! The gateway records its HTTP routes (path templates) and status codes; the gRPC services
//! record their methods (`/storefront.orders.v1.Orders/CreateOrder`) with the gRPC status
//! mapped to its HTTP equivalent ([`http_code`]: `UNAVAILABLE` → 503, `RESOURCE_EXHAUSTED`
//! → 429, ...), so "errors are `code=~"5.."`" and "limited is `code="429"`" hold everywhere.
//!
//! A process runs one service: its `run` calls [`install`] once, and every tonic server built
//! with [`GrpcMetricsLayer::installed`] records into it (a no-op where nothing was installed,
//! as in tests that serve several services in one process).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock, PoisonError, RwLock},
    task::{Context, Poll},
    time::Instant,
};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

/// The request metrics of one service.
#[derive(Clone)]
pub struct RequestMetrics {
    service: &'static str,
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    /// The series of each route seen, so recording a request is a read lock and a lookup
    /// by the route's name, not a label set built and hashed twice.
    routes: Arc<RwLock<HashMap<Box<str>, RouteSeries>>>,
}

/// One route's series: its latency histogram and a counter per status code seen.
#[derive(Clone)]
struct RouteSeries {
    duration: Histogram,
    codes: Vec<(u16, Counter)>,
}

impl RequestMetrics {
    /// Creates the metrics of `service` and registers them in `registry`.
    pub fn register(registry: &mut Registry, service: &'static str) -> Self {
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
        Self {
            service,
            requests,
            duration,
            routes: Arc::default(),
        }
    }

    /// Records one request.
    pub fn record(&self, route: &str, code: u16, seconds: f64) {
        // Whether the latency was observed here (the route was known), and whether the
        // request was counted too (its code was known).
        let (observed, counted) = {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            match routes.get(route) {
                None => (false, false),
                Some(series) => {
                    series.duration.observe(seconds);
                    let counter = series.codes.iter().find(|(c, _)| *c == code);
                    if let Some((_, counter)) = counter {
                        counter.inc();
                    }
                    (true, counter.is_some())
                }
            }
        };
        if counted {
            return;
        }
        // A route or a code not seen before: create its series (once), then count.
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let series = routes.entry(route.into()).or_insert_with(|| RouteSeries {
            duration: self
                .duration
                .get_or_create(&vec![
                    ("service", self.service.to_string()),
                    ("route", route.to_string()),
                ])
                .clone(),
            codes: Vec::new(),
        });
        if !observed {
            series.duration.observe(seconds);
        }
        if let Some((_, counter)) = series.codes.iter().find(|(c, _)| *c == code) {
            counter.inc(); // another request created it meanwhile
            return;
        }
        let counter = self
            .requests
            .get_or_create(&vec![
                ("service", self.service.to_string()),
                ("route", route.to_string()),
                ("code", code.to_string()),
            ])
            .clone();
        counter.inc();
        series.codes.push((code, counter));
    }
}

static INSTALLED: OnceLock<RequestMetrics> = OnceLock::new();

/// Registers this process's request metrics for `service` (the first call wins), and its
/// datastore and broker client metrics ([`crate::datastore_metrics::install`]).
pub fn install(registry: &mut Registry, service: &'static str) {
    if INSTALLED.get().is_none() {
        let _ = INSTALLED.set(RequestMetrics::register(registry, service));
    }
    crate::datastore_metrics::install(registry, service);
    crate::grpc::install_refusal_metrics(registry);
}

/// The HTTP status that stands for a gRPC status code (as grpc-gateway maps them).
pub fn http_code(grpc: i32) -> u16 {
    match grpc {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// A tower layer for tonic servers that records every call (nothing when `None`).
#[derive(Clone)]
pub struct GrpcMetricsLayer(pub Option<RequestMetrics>);

impl GrpcMetricsLayer {
    /// Records into what [`install`] registered, if anything.
    pub fn installed() -> Self {
        Self(INSTALLED.get().cloned())
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a server.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Option<RequestMetrics>,
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let route = request.uri().path().to_string();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // Errors of unary calls come "trailers-only": the status is in the headers. A
            // response without it is a success whose status follows in the trailers.
            let grpc = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if let Some(m) = metrics {
                m.record(&route, http_code(grpc), started.elapsed().as_secs_f64());
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_service_route_and_code() {
        let mut registry = Registry::default();
        let metrics = RequestMetrics::register(&mut registry, "gateway");
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

        // Clones share the series; routes and codes first seen on several threads at once
        // are created once and every request counts.
        std::thread::scope(|s| {
            for t in 0..4u16 {
                let m = metrics.clone();
                s.spawn(move || {
                    for i in 0..1000u16 {
                        m.record("/api/v1/products", 200 + (i + t) % 3, 0.001);
                    }
                });
            }
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let count = |code: u16| {
            let line = format!(
                r#"storefront_requests_total{{service="gateway",route="/api/v1/products",code="{code}"}} "#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        assert_eq!(count(200) + count(201) + count(202), 4000, "{text}");
        assert!(count(200) > 0 && count(201) > 0 && count(202) > 0, "{text}");
        assert!(
            text.contains(r#"storefront_request_duration_seconds_count{service="gateway",route="/api/v1/products"} 4000"#),
            "{text}"
        );
    }

    /// Answers every call with a fixed gRPC status in the headers (or none: a success).
    struct Answer(Option<&'static str>);

    impl tower_service::Service<http::Request<()>> for Answer {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut r = http::Response::new(());
            if let Some(code) = self.0 {
                r.headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static(code));
            }
            std::future::ready(Ok(r))
        }
    }

    #[tokio::test]
    async fn the_grpc_layer_records_method_and_status() {
        use tower_layer::Layer;
        use tower_service::Service;
        let mut registry = Registry::default();
        let metrics = RequestMetrics::register(&mut registry, "orders");
        let layer = GrpcMetricsLayer(Some(metrics));
        let call = |status| {
            let mut svc = layer.layer(Answer(status));
            async move {
                let req = http::Request::builder()
                    .uri("/storefront.orders.v1.Orders/CreateOrder")
                    .body(())
                    .expect("request");
                svc.call(req).await.expect("answers");
            }
        };
        call(None).await;
        call(Some("14")).await;
        call(Some("0")).await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let route = r#"route="/storefront.orders.v1.Orders/CreateOrder""#;
        assert!(
            text.contains(&format!(
                r#"storefront_requests_total{{service="orders",{route},code="200"}} 2"#
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"storefront_requests_total{{service="orders",{route},code="503"}} 1"#
            )),
            "{text}"
        );
        // Nothing installed: a no-op layer.
        let mut quiet = GrpcMetricsLayer(None).layer(Answer(Some("14")));
        quiet.call(http::Request::new(())).await.expect("answers");
    }

    #[test]
    fn grpc_statuses_map_to_the_http_classes_the_rules_query() {
        assert_eq!(http_code(0), 200);
        assert_eq!(http_code(14), 503);
        assert_eq!(http_code(8), 429);
        assert_eq!(http_code(5), 404);
        assert_eq!(http_code(3), 400);
        assert_eq!(http_code(13), 500);
        assert_eq!(http_code(99), 500);
    }
}
