//! What a run records per endpoint (HDR latency histograms in microseconds, status classes,
//! transport errors, drops at the concurrency cap) and the summary it turns into: the table
//! printed at the end and the JSON of `--out`.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies up to an hour, 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // 1 µs .. 1 h at 3 significant digits cannot fail to build.
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).unwrap_or_else(|_| unreachable!()))
    }
}

impl Latency {
    /// Records one latency (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.0.saturating_record(micros);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The percentiles, in milliseconds (`None` when nothing was recorded).
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(LatencySummary {
            p50: ms(self.0.value_at_quantile(0.50)),
            p90: ms(self.0.value_at_quantile(0.90)),
            p99: ms(self.0.value_at_quantile(0.99)),
            max: ms(self.0.max()),
            mean: self.0.mean() / 1000.0,
        })
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status came back.
    Status(u16),
    /// No status: connection refused or reset, or the request timed out.
    Transport,
}

/// Everything recorded for one endpoint.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// Arrivals the schedule gave this endpoint (sent or dropped).
    pub offered: u64,
    /// Arrivals not sent because the concurrency cap was reached.
    pub dropped: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub limited: u64,
    pub server_errors: u64,
    pub other: u64,
    pub transport_errors: u64,
    /// Latency of every answered request, from its scheduled start.
    pub latency: Latency,
}

impl Endpoint {
    /// Records a finished request.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Status(200..=299) => self.ok += 1,
            Outcome::Status(429) => self.limited += 1,
            Outcome::Status(400..=499) => self.client_errors += 1,
            Outcome::Status(500..=599) => self.server_errors += 1,
            Outcome::Status(_) => self.other += 1,
            Outcome::Transport => {
                self.transport_errors += 1;
                return;
            }
        }
        self.latency.record(latency);
    }

    /// Requests that got an answer or failed (not the dropped, not the still in flight).
    pub fn finished(&self) -> u64 {
        self.ok
            + self.client_errors
            + self.limited
            + self.server_errors
            + self.other
            + self.transport_errors
    }

    /// This endpoint's row, over a run of `elapsed`.
    pub fn summarize(&self, name: &str, endpoint: &str, elapsed: Duration) -> EndpointSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        EndpointSummary {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            offered: self.offered,
            sent: self.offered - self.dropped,
            dropped: self.dropped,
            offered_rps: self.offered as f64 / secs,
            achieved_rps: self.ok as f64 / secs,
            status: StatusCounts {
                ok: self.ok,
                client_errors: self.client_errors,
                limited: self.limited,
                server_errors: self.server_errors,
                other: self.other,
            },
            transport_errors: self.transport_errors,
            unfinished: (self.offered - self.dropped).saturating_sub(self.finished()),
            latency_ms: self.latency.summary(),
        }
    }
}

/// Answers by class. `4xx` excludes 429, counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "2xx")]
    pub ok: u64,
    #[serde(rename = "4xx")]
    pub client_errors: u64,
    #[serde(rename = "429")]
    pub limited: u64,
    #[serde(rename = "5xx")]
    pub server_errors: u64,
    pub other: u64,
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSummary {
    pub name: String,
    pub endpoint: String,
    /// Arrivals scheduled for it.
    pub offered: u64,
    pub sent: u64,
    /// Not sent: the concurrency cap was reached.
    pub dropped: u64,
    /// Scheduled arrivals per second of the schedule.
    pub offered_rps: f64,
    /// 2xx answers per second of the schedule.
    pub achieved_rps: f64,
    pub status: StatusCounts,
    pub transport_errors: u64,
    /// Sent but neither answered nor failed when the run gave up waiting.
    pub unfinished: u64,
    /// From each request's scheduled start to its answer (2xx or not).
    pub latency_ms: Option<LatencySummary>,
}

/// The order → settled metric (`--settle`).
#[derive(Clone, Debug, Default)]
pub struct Settle {
    pub confirmed: u64,
    pub cancelled: u64,
    /// Still PENDING at the settle deadline, or the status could not be read.
    pub unsettled: u64,
    /// CANCELLED orders by the reason the shop gave (its text before the first `:`).
    pub cancelled_reasons: BTreeMap<String, u64>,
    /// From the order's scheduled start to the first poll that saw it settled.
    pub latency: Latency,
    pub confirmed_latency: Latency,
}

impl Settle {
    pub fn summarize(&self, elapsed: Duration) -> SettleSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        SettleSummary {
            confirmed: self.confirmed,
            cancelled: self.cancelled,
            unsettled: self.unsettled,
            cancelled_reasons: self.cancelled_reasons.clone(),
            confirmed_rps: self.confirmed as f64 / secs,
            settled_rps: (self.confirmed + self.cancelled) as f64 / secs,
            latency_ms: self.latency.summary(),
            confirmed_latency_ms: self.confirmed_latency.summary(),
        }
    }
}

/// The order → settled summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleSummary {
    pub confirmed: u64,
    pub cancelled: u64,
    pub unsettled: u64,
    /// CANCELLED orders by reason.
    pub cancelled_reasons: BTreeMap<String, u64>,
    /// CONFIRMED orders per second of the schedule.
    pub confirmed_rps: f64,
    /// CONFIRMED + CANCELLED per second of the schedule.
    pub settled_rps: f64,
    /// POST /orders (scheduled start) → CONFIRMED or CANCELLED seen.
    pub latency_ms: Option<LatencySummary>,
    /// The same, CONFIRMED only.
    pub confirmed_latency_ms: Option<LatencySummary>,
}

/// The whole run (`--out`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub target: String,
    /// `shoppers`, or `abusive` (one misbehaving client).
    pub mode: String,
    pub stages: Vec<String>,
    pub mix: String,
    pub seed: u64,
    pub users: usize,
    /// The shoppers' `X-Forwarded-For` range (`--forwarded-for`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for: Option<String>,
    /// Catalog requests carried the shopper's token (`--signed-in`).
    pub signed_in: bool,
    pub max_in_flight: usize,
    /// From the start until the schedule began (catalog learned, users signed up and in).
    pub setup_seconds: f64,
    /// When the schedule began, in milliseconds since the Unix epoch (it ends
    /// `durationSeconds` later): runs side by side can be checked to overlap.
    pub started_at_ms: u64,
    /// The schedule's length.
    pub duration_seconds: f64,
    /// Until the last answer (or the drain deadline).
    pub elapsed_seconds: f64,
    pub endpoints: Vec<EndpointSummary>,
    pub total: EndpointSummary,
    /// `--abusive`: the same requests by face (`anonymous`, `forged-token`, `signed-in`), the
    /// endpoint column saying what the gateway should count each against.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faces: Vec<EndpointSummary>,
    /// GET /api/v1/orders/{id} polls of `--settle` (not scheduled: one poller per order).
    pub settle_polls: Option<EndpointSummary>,
    pub settle: Option<SettleSummary>,
}

fn fmt_ms(l: Option<&LatencySummary>, f: impl Fn(&LatencySummary) -> f64) -> String {
    l.map_or_else(|| "-".to_string(), |l| format!("{:.1}", f(l)))
}

fn row(out: &mut String, e: &EndpointSummary) {
    let l = e.latency_ms.as_ref();
    let _ = writeln!(
        out,
        "{:<16} {:>9.1} {:>9.1} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
        e.name,
        e.offered_rps,
        e.achieved_rps,
        e.dropped,
        e.status.ok,
        e.status.client_errors,
        e.status.limited,
        e.status.server_errors,
        e.transport_errors,
        e.unfinished,
        fmt_ms(l, |l| l.p50),
        fmt_ms(l, |l| l.p90),
        fmt_ms(l, |l| l.p99),
        fmt_ms(l, |l| l.max),
    );
}

impl Summary {
    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut clients = self.mode.clone();
        if let Some(range) = &self.forwarded_for {
            let _ = write!(clients, ", forwarded for {range}");
        }
        if self.signed_in {
            clients.push_str(", signed in");
        }
        let _ = writeln!(
            out,
            "loadgen {} ({clients}) stages {} mix {} seed {} ({:.1} s set-up, {:.1} s scheduled, {:.1} s until the last answer)",
            self.target,
            self.stages.join(","),
            self.mix,
            self.seed,
            self.setup_seconds,
            self.duration_seconds,
            self.elapsed_seconds,
        );
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "endpoint",
            "offered/s",
            "2xx/s",
            "dropped",
            "2xx",
            "4xx",
            "429",
            "5xx",
            "transp",
            "unfinish",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
        );
        for e in &self.endpoints {
            row(&mut out, e);
        }
        row(&mut out, &self.total);
        if !self.faces.is_empty() {
            let _ = writeln!(out, "the abusive client by face:");
            for f in &self.faces {
                row(&mut out, f);
            }
        }
        if let Some(p) = &self.settle_polls {
            row(&mut out, p);
        }
        if let Some(s) = &self.settle {
            let l = s.latency_ms.as_ref();
            let c = s.confirmed_latency_ms.as_ref();
            let _ = writeln!(
                out,
                "order → settled: {} CONFIRMED ({:.2}/s), {} CANCELLED, {} unsettled; settled p50 {} p90 {} p99 {} max {} ms; CONFIRMED p50 {} p99 {} ms",
                s.confirmed,
                s.confirmed_rps,
                s.cancelled,
                s.unsettled,
                fmt_ms(l, |l| l.p50),
                fmt_ms(l, |l| l.p90),
                fmt_ms(l, |l| l.p99),
                fmt_ms(l, |l| l.max),
                fmt_ms(c, |l| l.p50),
                fmt_ms(c, |l| l.p99),
            );
            for (reason, n) in &s.cancelled_reasons {
                let _ = writeln!(out, "  CANCELLED {n}: {reason}");
            }
        }
        out
    }
}

/// Adds up rows (for the total).
pub fn total(endpoints: &[Endpoint]) -> Endpoint {
    let mut t = Endpoint::default();
    for e in endpoints {
        t.offered += e.offered;
        t.dropped += e.dropped;
        t.ok += e.ok;
        t.client_errors += e.client_errors;
        t.limited += e.limited;
        t.server_errors += e.server_errors;
        t.other += e.other;
        t.transport_errors += e.transport_errors;
        // Same bounds everywhere: adding cannot fail.
        let _ = t.latency.0.add(&e.latency.0);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::default();
        for i in 1..=1000 {
            l.record(ms(i));
        }
        let s = l.summary().expect("recorded");
        // 3 significant digits: within 0.1 %.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(s.p50, 500.0), "{s:?}");
        assert!(near(s.p90, 900.0), "{s:?}");
        assert!(near(s.p99, 990.0), "{s:?}");
        assert!(near(s.max, 1000.0), "{s:?}");
        assert!(near(s.mean, 500.5), "{s:?}");
        assert_eq!(Latency::default().summary(), None);
    }

    #[test]
    fn a_few_slow_requests_move_p99_not_p50() {
        let mut l = Latency::default();
        for _ in 0..985 {
            l.record(ms(2));
        }
        for _ in 0..15 {
            l.record(Duration::from_secs(3));
        }
        let s = l.summary().expect("recorded");
        assert!((s.p50 - 2.0).abs() < 0.01, "{s:?}");
        assert!((s.p90 - 2.0).abs() < 0.01, "{s:?}");
        assert!((s.p99 - 3000.0).abs() < 3.0, "{s:?}");
        // Out of range: clamped, never a panic.
        l.record(Duration::from_secs(10 * 3600));
        l.record(Duration::ZERO);
        assert_eq!(l.count(), 1002);
    }

    #[test]
    fn outcomes_are_classed_and_rates_use_the_schedule() {
        let mut e = Endpoint {
            offered: 12,
            dropped: 2,
            ..Endpoint::default()
        };
        for s in [200, 201, 202, 404, 422, 429, 500, 503] {
            e.record(Outcome::Status(s), ms(10));
        }
        e.record(Outcome::Transport, ms(10));
        let s = e.summarize("x", "GET /x", Duration::from_secs(2));
        assert_eq!(
            s.status,
            StatusCounts {
                ok: 3,
                client_errors: 2,
                limited: 1,
                server_errors: 2,
                other: 0
            }
        );
        assert_eq!((s.sent, s.dropped, s.transport_errors), (10, 2, 1));
        assert_eq!(s.unfinished, 1);
        assert_eq!(s.offered_rps, 6.0);
        assert_eq!(s.achieved_rps, 1.5);
        // Transport errors have no latency: 8 answered.
        assert_eq!(e.latency.count(), 8);
        let t = total(&[e.clone(), e]);
        assert_eq!((t.offered, t.ok, t.latency.count()), (24, 6, 16));
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["status"]["429"], 1);
        assert_eq!(json["offeredRps"], 6.0);
    }
}
