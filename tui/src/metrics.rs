//! What Prometheus told us, and how old it is.
//!
//! * [`queries`]: the PromQL the console runs (the recording rules under
//!   `manifests/monitoring/` precompute the same expressions).
//! * [`PromSnapshot`]: one poll's answers, per service and for the operator.
//! * [`CounterRate`]: a rate from successive readings of a counter, resets included — used
//!   for the operator's counters, which the console reads raw.
//! * [`Freshness`] and [`fmt_age`]: staleness of last-known values. A value the console does
//!   not have is shown as `–`, never as zero.

use std::collections::{BTreeMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

/// The console's PromQL. Per-service series are grouped by `namespace`, `storefront` (the
/// `app.kubernetes.io/instance` label, relabelled by the scrape config) and `service`.
pub mod queries {
    /// Requests per second a service served. A service whose pods are scraped (`up`) but have
    /// counted no request yet (payments: called over the broker only) reads 0, not `–`: it is
    /// known to serve nothing.
    pub const RPS: &str = "sum by (namespace, storefront, service) (rate(storefront_requests_total[1m])) or 0 * sum by (namespace, storefront, service) (label_replace(up{job=\"storefront-workloads\"} == 1, \"service\", \"$1\", \"component\", \"(.+)\"))";
    /// 5xx over all requests; 0 (not absent) where requests flow and none failed (no 5xx
    /// series exists until the first one); NaN, so absent, without traffic.
    pub const ERROR_RATIO: &str = "(sum by (namespace, storefront, service) (rate(storefront_requests_total{code=~\"5..\"}[1m])) or 0 * sum by (namespace, storefront, service) (rate(storefront_requests_total[1m]))) / sum by (namespace, storefront, service) (rate(storefront_requests_total[1m]))";
    /// 429s per second; 0 where requests flow and none was refused.
    pub const THROTTLED: &str = "sum by (namespace, storefront, service) (rate(storefront_requests_total{code=\"429\"}[1m])) or 0 * sum by (namespace, storefront, service) (rate(storefront_requests_total[1m]))";
    pub const P99: &str = "histogram_quantile(0.99, sum by (namespace, storefront, service, le) (rate(storefront_request_duration_seconds_bucket[1m])))";
    /// Requests the gateway's rate limiter allowed per second, per budget: `scope` is the
    /// service whose budget it is (`gateway`: the shop-wide one). Over the budget in the
    /// Storefront (or an active FlashSale) this is the rate-limit use.
    pub const ADMITTED: &str = "sum by (namespace, storefront, service) (label_replace(rate(storefront_ratelimit_decisions_total{decision=\"allowed\"}[1m]), \"service\", \"$1\", \"scope\", \"(.+)\"))";
    pub const CIRCUIT: &str = "max by (namespace, storefront, service) (storefront_circuit_state)";
    /// The gateway's calls to each upstream service, client side (`upstream` is the service;
    /// every attempt, retries included): what the gateway → service edges carry. Older
    /// gateways do not export them; the console then falls back to the served rate.
    pub const UPSTREAM_RPS: &str =
        "sum by (namespace, storefront, upstream) (rate(storefront_upstream_requests_total[1m]))";
    /// Calls the upstream refused with `ResourceExhausted` (gRPC's 429) per second.
    pub const UPSTREAM_THROTTLED: &str = "sum by (namespace, storefront, upstream) (rate(storefront_upstream_requests_total{code=\"ResourceExhausted\"}[1m])) or 0 * sum by (namespace, storefront, upstream) (rate(storefront_upstream_requests_total[1m]))";
    pub const UPSTREAM_P99: &str = "histogram_quantile(0.99, sum by (namespace, storefront, upstream, le) (rate(storefront_upstream_request_duration_seconds_bucket[1m])))";
    /// Each service's calls to each datastore (`postgres`, `postgres-replica`, `redis`,
    /// `nats`), client side: the service → datastore edges.
    pub const DATASTORE_RPS: &str = "sum by (namespace, storefront, service, datastore) (rate(storefront_datastore_requests_total[1m]))";
    /// Failed datastore calls over all; 0 where calls flow and none failed.
    pub const DATASTORE_ERROR_RATIO: &str = "(sum by (namespace, storefront, service, datastore) (rate(storefront_datastore_requests_total{outcome=\"error\"}[1m])) or 0 * sum by (namespace, storefront, service, datastore) (rate(storefront_datastore_requests_total[1m]))) / sum by (namespace, storefront, service, datastore) (rate(storefront_datastore_requests_total[1m]))";
    pub const DATASTORE_P99: &str = "histogram_quantile(0.99, sum by (namespace, storefront, service, datastore, le) (rate(storefront_datastore_request_duration_seconds_bucket[1m])))";
    /// Broker messages a service's consumers received per second (payments is fed this way).
    pub const CONSUMED: &str = "sum by (namespace, storefront, service) (rate(storefront_datastore_requests_total{datastore=\"nats\",operation=\"deliver\"}[1m]))";

    /// The edge queries with the names of their recording rules, in the order
    /// [`crate::sources::prometheus::snapshot`] reads them.
    pub const EDGES: [(&str, &str); 7] = [
        ("storefront:upstream_requests:rate1m", UPSTREAM_RPS),
        ("storefront:upstream_throttled:rate1m", UPSTREAM_THROTTLED),
        ("storefront:upstream_latency_seconds:p99_1m", UPSTREAM_P99),
        ("storefront:datastore_requests:rate1m", DATASTORE_RPS),
        ("storefront:datastore_errors:ratio1m", DATASTORE_ERROR_RATIO),
        ("storefront:datastore_latency_seconds:p99_1m", DATASTORE_P99),
        ("storefront:service_consumed:rate1m", CONSUMED),
    ];

    /// Requests the gateway's rate limiter refused per second, per budget (`scope`, as in
    /// [`ADMITTED`]: `gateway` is the shop-wide one). With per-client refusals
    /// ([`CLIENT_DECISIONS`]) it tells "one client is limited" from "the budget is spent".
    pub const LIMITED: &str = "sum by (namespace, storefront, service) (label_replace(rate(storefront_ratelimit_decisions_total{decision=\"limited\"}[1m]), \"service\", \"$1\", \"scope\", \"(.+)\"))";
    /// The gateway's per-client decisions per second, by `budget` (`user`, `address`,
    /// `route:<METHOD path>`) and `decision` (`allowed`, `limited`). prometheus-client
    /// exports the counter `storefront_ratelimit_client_decisions` with `_total`.
    pub const CLIENT_DECISIONS: &str = "sum by (namespace, storefront, budget, decision) (rate(storefront_ratelimit_client_decisions_total[1m]))";
    /// Clients the gateway's pods keep a per-client budget for, summed over its pods (a
    /// client served by two pods counts twice).
    pub const CLIENTS_TRACKED: &str =
        "sum by (namespace, storefront) (storefront_ratelimit_clients)";
    /// Gateway pods reporting [`CLIENTS_TRACKED`].
    pub const CLIENT_PODS: &str = "count by (namespace, storefront) (storefront_ratelimit_clients)";

    /// The rate-limit queries (no recording rules: raw), in the order
    /// [`crate::sources::prometheus::add_limits`] reads them.
    pub const LIMITS: [&str; 4] = [LIMITED, CLIENT_DECISIONS, CLIENTS_TRACKED, CLIENT_PODS];

    /// The operator's raw counters (rates from successive readings: [`super::CounterRate`]).
    pub const OPERATOR_RECONCILES: &str = "sum(storefront_operator_reconciles_total)";
    pub const OPERATOR_ERRORS: &str = "sum(storefront_operator_reconcile_errors_total)";
    pub const OPERATOR_WRITES: &str = "sum(storefront_operator_writes_total)";
    pub const OPERATOR_P99: &str = "histogram_quantile(0.99, sum by (le) (rate(storefront_operator_reconcile_duration_seconds_bucket[5m])))";
    /// The operator's rates as Prometheus has them (recorded, else raw), so that one poll
    /// (`--once`) has them; an operator that is scraped but never failed reads 0 errors/s.
    pub const OPERATOR_RECONCILES_RATE: &str = "sum(storefront:operator_reconciles:rate1m) or sum(rate(storefront_operator_reconciles_total[1m]))";
    pub const OPERATOR_ERRORS_RATE: &str = "sum(storefront:operator_reconcile_errors:rate1m) or sum(rate(storefront_operator_reconcile_errors_total[1m])) or 0 * sum(up{job=\"storefront-operator\"} == 1)";
    pub const OPERATOR_WRITES_RATE: &str = "sum(storefront:operator_writes:rate1m) or sum(rate(storefront_operator_writes_total[1m])) or 0 * sum(up{job=\"storefront-operator\"} == 1)";

    /// The operator queries, in the order [`crate::sources::prometheus::snapshot`] reads them.
    pub const OPERATOR: [&str; 7] = [
        OPERATOR_RECONCILES,
        OPERATOR_ERRORS,
        OPERATOR_WRITES,
        OPERATOR_P99,
        OPERATOR_RECONCILES_RATE,
        OPERATOR_ERRORS_RATE,
        OPERATOR_WRITES_RATE,
    ];

    /// The recorded series where the recording rules run, the raw expression where they do not
    /// (`or` keeps the recorded series and adds raw ones only for label sets it lacks).
    pub fn recorded_or_raw(record: &str, expr: &str) -> String {
        format!("{record} or ({expr})")
    }

    /// Every per-service query with the name of its recording rule.
    pub const RECORDED: [(&str, &str); 6] = [
        ("storefront:service_requests:rate1m", RPS),
        ("storefront:service_errors:ratio1m", ERROR_RATIO),
        ("storefront:service_throttled:rate1m", THROTTLED),
        ("storefront:service_latency_seconds:p99_1m", P99),
        ("storefront:service_ratelimit_admitted:rate1m", ADMITTED),
        ("storefront:service_circuit_state:max", CIRCUIT),
    ];
}

/// Which service a per-service series is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    /// Missing when the scrape config does not add the `storefront` label.
    pub storefront: Option<String>,
    pub service: String,
}

/// Circuit breaker state as `storefront_circuit_state` encodes it (0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    HalfOpen,
    Open,
}

impl Circuit {
    pub fn from_value(v: f64) -> Self {
        if v >= 1.5 {
            Circuit::Open
        } else if v >= 0.5 {
            Circuit::HalfOpen
        } else {
            Circuit::Closed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::HalfOpen => "half",
            Circuit::Open => "OPEN",
        }
    }
}

/// Live numbers of one service; `None` where Prometheus has no series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceMetrics {
    pub rps: Option<f64>,
    pub error_ratio: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub throttled_rps: Option<f64>,
    /// Requests/s the gateway's rate limiter allowed against this service's budget.
    pub admitted_rps: Option<f64>,
    /// Admitted rate over the budget, 0..1 (filled by the views, which know the budget).
    pub ratelimit_use: Option<f64>,
    /// Requests/s the gateway's rate limiter refused against this service's budget (the
    /// gateway's: the shop-wide budget).
    pub limited_rps: Option<f64>,
    /// The gateway's per-client limits at work (the gateway's metrics only).
    pub clients: Option<ClientTraffic>,
    pub circuit: Option<Circuit>,
    /// The gateway's calls into this service (client side), when the gateway exports them.
    pub upstream: Option<EdgeTraffic>,
    /// Broker messages this service's consumers received per second.
    pub consumed_rps: Option<f64>,
    /// This service's calls to each datastore, by `datastore` label (`postgres`,
    /// `postgres-replica`, `redis`, `nats`).
    pub stores: BTreeMap<String, StoreTraffic>,
}

/// The gateway's per-client limits at work: decisions per budget and the clients it tracks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientTraffic {
    /// Decisions per second by budget: `user`, `address`, `route:<METHOD path>`.
    pub budgets: BTreeMap<String, Decisions>,
    /// Clients with a budget, summed over the gateway's pods.
    pub tracked: Option<f64>,
    /// Gateway pods reporting `tracked`.
    pub pods: Option<f64>,
}

impl ClientTraffic {
    /// Per-client refusals per second over every budget; `None` when no budget reports one.
    pub fn limited_rps(&self) -> Option<f64> {
        self.budgets
            .values()
            .filter_map(|d| d.limited)
            .reduce(|a, b| a + b)
    }
}

/// Allowed and limited decisions per second of one budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decisions {
    pub allowed: Option<f64>,
    pub limited: Option<f64>,
}

/// The gateway's calls to one upstream, as the gateway saw them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeTraffic {
    pub rps: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub throttled_rps: Option<f64>,
}

/// One service's calls to one datastore.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreTraffic {
    pub rps: Option<f64>,
    pub error_ratio: Option<f64>,
    pub p99_seconds: Option<f64>,
}

/// The operator's own numbers: raw counters (turned into rates by [`CounterRate`]), p99, and
/// the rates Prometheus computed (preferred when present: one poll has them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperatorMetrics {
    pub reconciles: Option<f64>,
    pub errors: Option<f64>,
    pub writes: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub reconciles_rate: Option<f64>,
    pub errors_rate: Option<f64>,
    pub writes_rate: Option<f64>,
}

/// One successful poll of Prometheus.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSnapshot {
    pub at: Timestamp,
    pub services: BTreeMap<ServiceKey, ServiceMetrics>,
    pub operator: OperatorMetrics,
}

impl PromSnapshot {
    pub fn empty(at: Timestamp) -> Self {
        PromSnapshot {
            at,
            services: BTreeMap::new(),
            operator: OperatorMetrics::default(),
        }
    }

    /// Numbers of `service` of `storefront` in `namespace`. Series without a `storefront`
    /// label match any Storefront of the namespace.
    pub fn service(
        &self,
        namespace: &str,
        storefront: &str,
        service: &str,
    ) -> Option<&ServiceMetrics> {
        let exact = ServiceKey {
            namespace: namespace.to_string(),
            storefront: Some(storefront.to_string()),
            service: service.to_string(),
        };
        self.services.get(&exact).or_else(|| {
            self.services.get(&ServiceKey {
                storefront: None,
                ..exact
            })
        })
    }
}

/// The Prometheus side of the app: last successful poll, last error, operator rates.
#[derive(Clone, Debug)]
pub struct PromState {
    /// Whether a Prometheus URL is configured at all (no URL: metrics are simply absent).
    pub configured: bool,
    pub last: Option<PromSnapshot>,
    /// Error of the latest poll, cleared by the next success.
    pub error: Option<String>,
    pub reconciles: CounterRate,
    pub reconcile_errors: CounterRate,
    pub writes: CounterRate,
}

impl Default for PromState {
    fn default() -> Self {
        let w = SignedDuration::from_secs(120);
        PromState {
            configured: false,
            last: None,
            error: None,
            reconciles: CounterRate::new(w),
            reconcile_errors: CounterRate::new(w),
            writes: CounterRate::new(w),
        }
    }
}

impl PromState {
    /// Records a poll's outcome: a success replaces the snapshot and feeds the counter rates;
    /// a failure keeps the last-known snapshot and notes the error.
    pub fn record(&mut self, result: Result<PromSnapshot, String>) {
        match result {
            Ok(snap) => {
                let op = &snap.operator;
                for (rate, v) in [
                    (&mut self.reconciles, op.reconciles),
                    (&mut self.reconcile_errors, op.errors),
                    (&mut self.writes, op.writes),
                ] {
                    if let Some(v) = v {
                        rate.push(snap.at, v);
                    }
                }
                self.last = Some(snap);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// The operator's reconciles, errors and writes per second: Prometheus's rates of the last
    /// snapshot where it has them, else the console's own from successive counter readings.
    pub fn operator_rates(&self) -> [Option<f64>; 3] {
        let op = self.last.as_ref().map(|s| &s.operator);
        [
            (op.and_then(|o| o.reconciles_rate), &self.reconciles),
            (op.and_then(|o| o.errors_rate), &self.reconcile_errors),
            (op.and_then(|o| o.writes_rate), &self.writes),
        ]
        .map(|(prom, counter)| prom.or_else(|| counter.per_second()))
    }

    /// Numbers of one service from the last-known snapshot.
    pub fn service(
        &self,
        namespace: &str,
        storefront: &str,
        service: &str,
    ) -> Option<&ServiceMetrics> {
        self.last.as_ref()?.service(namespace, storefront, service)
    }
}

/// Rate of a counter from readings taken over a sliding window, tolerant of resets (a
/// restarted process starts its counter at zero again: the new value counts as the increase).
#[derive(Clone, Debug)]
pub struct CounterRate {
    window: SignedDuration,
    readings: VecDeque<(Timestamp, f64)>,
}

impl CounterRate {
    pub fn new(window: SignedDuration) -> Self {
        CounterRate {
            window,
            readings: VecDeque::new(),
        }
    }

    /// Adds a reading; readings older than the window (relative to this one) are dropped, but
    /// at least two are kept so a rate exists after a gap.
    pub fn push(&mut self, at: Timestamp, value: f64) {
        if self.readings.back().is_some_and(|(t, _)| *t >= at) {
            return;
        }
        self.readings.push_back((at, value));
        while self.readings.len() > 2
            && self
                .readings
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > self.window)
        {
            self.readings.pop_front();
        }
    }

    /// Increase per second over the readings, `None` with fewer than two.
    pub fn per_second(&self) -> Option<f64> {
        let (first, _) = *self.readings.front()?;
        let (last, _) = *self.readings.back()?;
        let secs = last.duration_since(first).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let mut increase = 0.0;
        let mut prev: Option<f64> = None;
        for (_, v) in &self.readings {
            if let Some(p) = prev {
                increase += if *v >= p { v - p } else { *v };
            }
            prev = Some(*v);
        }
        Some(increase / secs)
    }
}

/// How old a last-known value is allowed to be before it is called stale.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(30);

/// Whether a value observed at some time is still current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Older than [`STALE_AFTER`], with its age.
    Stale(SignedDuration),
    /// Never observed.
    Missing,
}

impl Freshness {
    pub fn of(observed: Option<Timestamp>, now: Timestamp) -> Self {
        match observed {
            None => Freshness::Missing,
            Some(at) => {
                let age = now.duration_since(at);
                if age > STALE_AFTER {
                    Freshness::Stale(age)
                } else {
                    Freshness::Fresh
                }
            }
        }
    }
}

/// A compact age: `4s`, `2m05s`, `3h10m`, `2d4h`. Negative ages (clock skew) read `0s`.
pub fn fmt_age(age: SignedDuration) -> String {
    let s = age.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Requests per second: `–` when unknown, `0` for a true zero, otherwise 3 significant digits.
pub fn fmt_rate(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(0.0) => "0".into(),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) if v < 10_000.0 => format!("{v:.0}"),
        Some(v) => format!("{:.1}k", v / 1000.0),
    }
}

/// A latency in seconds as `850µs`, `45ms`, `1.2s`; `–` when unknown (or NaN: no traffic).
pub fn fmt_latency(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v < 0.001 {
                format!("{:.0}µs", v * 1e6)
            } else if v < 1.0 {
                format!("{:.0}ms", v * 1e3)
            } else {
                format!("{v:.1}s")
            }
        }
        _ => "–".into(),
    }
}

/// A ratio 0..1 as a percentage, `–` when unknown.
pub fn fmt_percent(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "–".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn rate_from_counters_spans_the_window() {
        let mut r = CounterRate::new(SignedDuration::from_secs(60));
        assert_eq!(r.per_second(), None);
        r.push(t(0), 100.0);
        assert_eq!(r.per_second(), None);
        r.push(t(10), 150.0);
        r.push(t(20), 300.0);
        assert_eq!(r.per_second(), Some(10.0));
    }

    #[test]
    fn a_counter_reset_counts_the_new_value_as_increase() {
        let mut r = CounterRate::new(SignedDuration::from_secs(60));
        r.push(t(0), 1000.0);
        r.push(t(10), 1100.0);
        // the process restarted: 1100 -> 0 -> 40
        r.push(t(20), 40.0);
        assert_eq!(r.per_second(), Some(140.0 / 20.0));
    }

    #[test]
    fn old_readings_leave_the_window_but_two_stay() {
        let mut r = CounterRate::new(SignedDuration::from_secs(30));
        r.push(t(0), 0.0);
        r.push(t(100), 100.0);
        assert_eq!(
            r.per_second(),
            Some(1.0),
            "a gap keeps the last two readings"
        );
        r.push(t(110), 300.0);
        r.push(t(120), 500.0);
        assert_eq!(r.per_second(), Some(20.0));
        // out-of-order readings are ignored
        r.push(t(115), 0.0);
        assert_eq!(r.per_second(), Some(20.0));
    }

    #[test]
    fn staleness_and_ages() {
        assert_eq!(Freshness::of(None, t(0)), Freshness::Missing);
        assert_eq!(Freshness::of(Some(t(0)), t(30)), Freshness::Fresh);
        assert_eq!(
            Freshness::of(Some(t(0)), t(31)),
            Freshness::Stale(SignedDuration::from_secs(31))
        );
        let ages: Vec<_> = [0, 59, 60, 125, 3600 + 600, 86400 * 2 + 3600 * 4]
            .into_iter()
            .map(|s| fmt_age(SignedDuration::from_secs(s)))
            .collect();
        assert_eq!(ages, ["0s", "59s", "1m00s", "2m05s", "1h10m", "2d4h"]);
        assert_eq!(fmt_age(SignedDuration::from_secs(-5)), "0s");
    }

    #[test]
    fn unknown_values_never_read_as_zero() {
        assert_eq!(fmt_rate(None), "–");
        assert_eq!(fmt_rate(Some(0.0)), "0");
        assert_eq!(fmt_rate(Some(1.234)), "1.23");
        assert_eq!(fmt_rate(Some(12345.0)), "12.3k");
        assert_eq!(fmt_latency(Some(f64::NAN)), "–");
        assert_eq!(fmt_latency(Some(0.045)), "45ms");
        assert_eq!(fmt_percent(None), "–");
        assert_eq!(fmt_percent(Some(0.125)), "12.5%");
    }

    #[test]
    fn every_console_query_has_its_recording_rule_verbatim() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/monitoring/recording-rules.yaml"
        );
        let rules: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let recorded: Vec<(String, String)> = rules["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap())
            .map(|r| {
                (
                    r["record"].as_str().unwrap().to_string(),
                    r["expr"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (record, expr) in queries::RECORDED.into_iter().chain(queries::EDGES) {
            assert!(
                recorded.contains(&(record.to_string(), expr.to_string())),
                "{record} = {expr} is missing from {path}"
            );
        }
        assert_eq!(queries::recorded_or_raw("a:b", "sum(x)"), "a:b or (sum(x))");
    }

    #[test]
    fn operator_rates_from_prometheus_win_over_counter_readings() {
        let mut p = PromState::default();
        let mut a = PromSnapshot::empty(t(0));
        a.operator.reconciles = Some(100.0);
        a.operator.writes = Some(10.0);
        p.record(Ok(a.clone()));
        assert_eq!(
            p.operator_rates(),
            [None, None, None],
            "one reading, no rate"
        );
        a.at = t(10);
        a.operator.reconciles = Some(150.0);
        a.operator.writes = Some(12.0);
        a.operator.writes_rate = Some(0.5);
        a.operator.errors_rate = Some(0.0);
        p.record(Ok(a));
        assert_eq!(p.operator_rates(), [Some(5.0), Some(0.0), Some(0.5)]);
    }

    #[test]
    fn series_without_a_storefront_label_match_any_storefront() {
        let mut s = PromSnapshot::empty(t(0));
        let m = ServiceMetrics {
            rps: Some(5.0),
            ..ServiceMetrics::default()
        };
        s.services.insert(
            ServiceKey {
                namespace: "shop".into(),
                storefront: None,
                service: "gateway".into(),
            },
            m.clone(),
        );
        assert_eq!(s.service("shop", "acme", "gateway"), Some(&m));
        assert_eq!(s.service("other", "acme", "gateway"), None);
        assert_eq!(Circuit::from_value(2.0), Circuit::Open);
        assert_eq!(Circuit::from_value(0.0), Circuit::Closed);
    }
}
