//! The gateway's request metrics ([`storefront_platform::metrics`]), under the names every service uses:
//! `storefront_requests_total{service,route,code}` and
//! `storefront_request_duration_seconds{service,route}` (route = the matched path template,
//! so SKUs and order ids do not multiply the series; recorded by [`crate::http::limits::enforce`],
//! the one middleware of every public route); and its calls to each upstream,
//! [`UpstreamMetrics`].

use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;

pub use storefront_platform::metrics::RequestMetrics;

/// The gateway's calls to its upstreams, as the upstream sees them (one per attempt, retries
/// included): `storefront_upstream_requests_total{service="gateway",upstream,code}` (code =
/// the gRPC status name, `Ok`, `Unavailable`, ...) and
/// `storefront_upstream_request_duration_seconds{service="gateway",upstream}`. The console's
/// gateway → service edges read these, not the service's own served rate (which also counts
/// service-to-service calls). Labels are `&'static str`: recording allocates nothing, and
/// once an upstream and code were seen it is a read lock and a short scan (no label set
/// hashed per call).
#[derive(Clone)]
pub struct UpstreamMetrics {
    requests: Family<[(&'static str, &'static str); 3], Counter>,
    duration: Family<[(&'static str, &'static str); 2], Histogram>,
    /// The series of each upstream seen (a handful): handles into the families above.
    seen: Arc<RwLock<Vec<UpstreamSeries>>>,
}

/// One upstream's series: its latency histogram and a counter per code seen.
struct UpstreamSeries {
    upstream: &'static str,
    duration: Histogram,
    codes: Vec<(Code, Counter)>,
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
            }),
            seen: Arc::default(),
        }
    }
}

impl UpstreamMetrics {
    /// Registers the families in `registry` (recording works before too).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "storefront_upstream_requests",
            "Calls from the gateway to each upstream service (every attempt), by gRPC code",
            self.requests.clone(),
        );
        registry.register(
            "storefront_upstream_request_duration_seconds",
            "Latency of the gateway's calls to each upstream service (every attempt)",
            self.duration.clone(),
        );
    }

    /// Records one attempt of a call to `upstream` that ended with `code` after `seconds`.
    pub fn record(&self, upstream: &'static str, code: Code, seconds: f64) {
        {
            let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = seen.iter().find(|s| s.upstream == upstream)
                && let Some((_, counter)) = series.codes.iter().find(|(c, _)| *c == code)
            {
                series.duration.observe(seconds);
                counter.inc();
                return;
            }
        }
        // First time for this upstream or code: record through the families, then keep
        // their handles (clones share the series, so a call recorded here on another
        // thread at the same moment is counted too).
        let counter = self
            .requests
            .get_or_create(&[
                ("service", "gateway"),
                ("upstream", upstream),
                ("code", code_name(code)),
            ])
            .clone();
        let duration = self
            .duration
            .get_or_create(&[("service", "gateway"), ("upstream", upstream)])
            .clone();
        counter.inc();
        duration.observe(seconds);
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        let i = match seen.iter().position(|s| s.upstream == upstream) {
            Some(i) => i,
            None => {
                seen.push(UpstreamSeries {
                    upstream,
                    duration,
                    codes: Vec::new(),
                });
                seen.len() - 1
            }
        };
        let series = &mut seen[i];
        if !series.codes.iter().any(|(c, _)| *c == code) {
            series.codes.push((code, counter));
        }
    }
}

/// The name of a gRPC status code as tonic spells it (`Ok`, `DeadlineExceeded`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers `metrics` (recording works before too) and checks its exposition has `lines`.
    fn assert_exposes(metrics: &UpstreamMetrics, lines: &[&str]) {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in lines {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn upstream_calls_are_counted_per_upstream_and_code() {
        let metrics = UpstreamMetrics::default();
        metrics.record("orders", Code::Ok, 0.002);
        metrics.record("orders", Code::Ok, 0.003);
        metrics.record("orders", Code::Unavailable, 0.001);
        metrics.record("catalog", Code::DeadlineExceeded, 2.0);
        metrics.record("orders", Code::Ok, 0.004);
        assert_exposes(
            &metrics,
            &[
                r#"storefront_upstream_requests_total{service="gateway",upstream="orders",code="Ok"} 3"#,
                r#"storefront_upstream_requests_total{service="gateway",upstream="orders",code="Unavailable"} 1"#,
                r#"storefront_upstream_requests_total{service="gateway",upstream="catalog",code="DeadlineExceeded"} 1"#,
                r#"storefront_upstream_request_duration_seconds_count{service="gateway",upstream="orders"} 4"#,
            ],
        );
    }

    #[test]
    fn calls_recorded_from_many_threads_at_once_are_all_counted() {
        let metrics = UpstreamMetrics::default();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let metrics = &metrics;
                scope.spawn(move || {
                    for i in 0..1_000 {
                        let upstream = if (i + t) % 2 == 0 {
                            "orders"
                        } else {
                            "catalog"
                        };
                        let code = if i % 10 == 0 {
                            Code::Unavailable
                        } else {
                            Code::Ok
                        };
                        metrics.record(upstream, code, 0.001);
                    }
                });
            }
        });
        assert_exposes(
            &metrics,
            &[
                r#"storefront_upstream_requests_total{service="gateway",upstream="orders",code="Ok"} 1800"#,
                r#"storefront_upstream_requests_total{service="gateway",upstream="orders",code="Unavailable"} 200"#,
                r#"storefront_upstream_requests_total{service="gateway",upstream="catalog",code="Ok"} 1800"#,
                r#"storefront_upstream_request_duration_seconds_count{service="gateway",upstream="orders"} 2000"#,
                r#"storefront_upstream_request_duration_seconds_count{service="gateway",upstream="catalog"} 2000"#,
            ],
        );
    }
}
