//! The gateway's edge health as conditions on its own Pod, where the operator reads them
//! into the Storefront's `failurePoints` (`RateLimiterDegraded`, `CircuitOpen`).
//!
//! ```text
//!  check() every `every` ─▶ [EdgeProblem] ─▶ conditions() ─▶ changed? ─▶ PATCH pods/<self>/status
//!   ├ breaker_check: an open (or half-open) breaker of a core route → CircuitOpen "orders: open"
//!   └ limiter hook:  Option<LimiterCheck> → RateLimiterDegraded "<why>"
//! ```
//!
//! Two condition types, each always present once the reporter ran, so that a problem's
//! end is written too:
//!
//! | type | healthy | problem |
//! |---|---|---|
//! | `storefront.dev/RateLimiterHealthy` | `True`, `Healthy` | `False`, `RateLimiterDegraded`, the limiter's message |
//! | `storefront.dev/CircuitsClosed` | `True`, `AllClosed` | `False`, `CircuitOpen`, `"<service>: <state>"` per breaker, joined by `"; "` |
//! | `storefront.dev/RingsApplied` | `True`, `Applied`, `"<service>@<epoch>"` per ring routed by, joined by `"; "` | (never) |
//!
//! The operator parses the `CircuitOpen` message by that format (service before `": "`,
//! entries split on `"; "`). Writes are a strategic-merge patch of `pods/status` (merged by
//! condition type, so the kubelet's conditions are untouched), only when a condition
//! changed; `lastTransitionTime` moves when its status flips. A failed write is logged once
//! per distinct error and tried again at the next check. The Role the operator renders for
//! the gateway allows `patch` on `pods/status`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::{Pod, PodCondition},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use crate::{
    http::Gateway,
    resilience::{BreakerGuard, breaker::State},
    routing::source::Once,
};

/// Condition type of the rate limiter's health.
pub const RATE_LIMITER_CONDITION: &str = "storefront.dev/RateLimiterHealthy";
/// Condition type of the breakers of core services.
pub const CIRCUITS_CONDITION: &str = "storefront.dev/CircuitsClosed";
/// Condition type of the rings the gateway routes by (always `True`, reason `Applied`, the
/// message `<service>@<epoch>` per ring joined by `"; "`): resharding waits for every gateway
/// to route by the new epoch before it retires shards.
pub const RINGS_CONDITION: &str = "storefront.dev/RingsApplied";
/// Reason: the limiter cannot reach Redis and limits with its local share.
pub const RATE_LIMITER_DEGRADED: &str = "RateLimiterDegraded";
/// Reason: a core service's breaker is not closed.
pub const CIRCUIT_OPEN: &str = "CircuitOpen";

/// Something wrong at the edge right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeProblem {
    /// [`RATE_LIMITER_DEGRADED`] or [`CIRCUIT_OPEN`].
    pub reason: &'static str,
    pub message: String,
}

impl EdgeProblem {
    /// The limiter is degraded, for `message` (e.g. "redis unreachable: connection refused;
    /// limiting to budget / 2 replicas").
    pub fn rate_limiter_degraded(message: impl Into<String>) -> Self {
        Self {
            reason: RATE_LIMITER_DEGRADED,
            message: message.into(),
        }
    }

    /// `service`'s breaker is in `state` (`open`, `half-open`).
    pub fn circuit_open(service: &str, state: &str) -> Self {
        Self {
            reason: CIRCUIT_OPEN,
            message: format!("{service}: {state}"),
        }
    }
}

/// Everything wrong now (the reporter's input).
pub type Check = Arc<dyn Fn() -> Vec<EdgeProblem> + Send + Sync>;
/// The rate limiter's part: `Some` while it is degraded.
pub type LimiterCheck = Arc<dyn Fn() -> Option<EdgeProblem> + Send + Sync>;

/// The breakers of the core routes in the table now: every one that is not closed is a
/// problem. Half-open counts too: the service has not answered since the breaker opened
/// (without traffic a breaker stays half-open, and so does the problem, until a call
/// succeeds).
pub fn breaker_check(
    guard: Arc<BreakerGuard>,
    gateway: Gateway,
) -> impl Fn() -> Vec<EdgeProblem> + Send + Sync + 'static {
    move || {
        let upstreams = gateway.upstreams();
        let Some(snapshot) = upstreams.snapshot.as_ref() else {
            return Vec::new();
        };
        snapshot
            .table
            .routes
            .iter()
            .filter(|r| r.tier == "core")
            .filter_map(|r| match guard.state(&r.service) {
                State::Closed => None,
                s => Some(EdgeProblem::circuit_open(&r.service, s.as_str())),
            })
            .collect()
    }
}

/// The edge check of the gateway: the breakers of core routes, and the limiter's hook
/// (`None` until the limiter reports its state).
pub fn edge_check(
    guard: Arc<BreakerGuard>,
    gateway: Gateway,
    limiter: Option<LimiterCheck>,
) -> Check {
    let breakers = breaker_check(guard, gateway);
    Arc::new(move || {
        let mut problems: Vec<EdgeProblem> = limiter.iter().filter_map(|l| l()).collect();
        problems.extend(breakers());
        problems
    })
}

/// The rings the gateway routes by now, as the [`RINGS_CONDITION`] message.
pub type RingsCheck = Arc<dyn Fn() -> String + Send + Sync>;

/// [`RingsCheck`] of `gateway`: `inventory@2` (sorted by service; empty without rings).
pub fn rings_check(gateway: Gateway) -> RingsCheck {
    Arc::new(move || {
        let upstreams = gateway.upstreams();
        upstreams
            .snapshot
            .as_ref()
            .map(|s| {
                s.rings
                    .iter()
                    .map(|(service, ring)| format!("{service}@{}", ring.epoch()))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    })
}

/// The [`RINGS_CONDITION`] for `message`.
pub fn rings_condition(message: String) -> EdgeCondition {
    EdgeCondition {
        type_: RINGS_CONDITION,
        healthy: true,
        reason: "Applied".to_string(),
        message,
    }
}

/// One condition the reporter owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeCondition {
    pub type_: &'static str,
    pub healthy: bool,
    pub reason: String,
    pub message: String,
}

/// The conditions for `problems` (both types, in a fixed order). Pure.
pub fn conditions(problems: &[EdgeProblem]) -> Vec<EdgeCondition> {
    let of = |reason: &str| -> Vec<&str> {
        let mut m: Vec<&str> = problems
            .iter()
            .filter(|p| p.reason == reason)
            .map(|p| p.message.as_str())
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    let condition = |type_, problem: &str, ok: &str, ok_message: &str| {
        let messages = of(problem);
        if messages.is_empty() {
            EdgeCondition {
                type_,
                healthy: true,
                reason: ok.to_string(),
                message: ok_message.to_string(),
            }
        } else {
            EdgeCondition {
                type_,
                healthy: false,
                reason: problem.to_string(),
                message: messages.join("; "),
            }
        }
    };
    vec![
        condition(
            RATE_LIMITER_CONDITION,
            RATE_LIMITER_DEGRADED,
            "Healthy",
            "the rate limiter reaches its shared budget",
        ),
        condition(
            CIRCUITS_CONDITION,
            CIRCUIT_OPEN,
            "AllClosed",
            "every core service's breaker is closed",
        ),
    ]
}

/// What the reporter wrote last: each condition and when its status last flipped.
#[derive(Debug, Default)]
pub struct Written(BTreeMap<&'static str, (EdgeCondition, Timestamp)>);

impl Written {
    /// The pod conditions to patch for `next` at `now` (only those that changed; empty when
    /// nothing did), recording them as written. Pure.
    pub fn diff(&mut self, next: Vec<EdgeCondition>, now: Timestamp) -> Vec<PodCondition> {
        let mut out = Vec::new();
        for c in next {
            let since = match self.0.get(c.type_) {
                Some((old, _)) if *old == c => continue,
                Some((old, since)) if old.healthy == c.healthy => *since,
                _ => now,
            };
            out.push(PodCondition {
                type_: c.type_.to_string(),
                status: if c.healthy { "True" } else { "False" }.to_string(),
                reason: Some(c.reason.clone()),
                message: Some(c.message.clone()),
                last_transition_time: Some(Time(since)),
                last_probe_time: None,
                observed_generation: None,
            });
            self.0.insert(c.type_, (c, since));
        }
        out
    }

    /// Forgets `types` (their write failed: write them again next time).
    pub fn forget(&mut self, types: &[PodCondition]) {
        for c in types {
            self.0.retain(|t, _| *t != c.type_);
        }
    }
}

/// Writes the edge conditions of `pod` (in `namespace`) every `every`, when they change.
pub fn spawn_reporter(
    client: Client,
    namespace: String,
    pod: String,
    check: Check,
    rings: RingsCheck,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let mut written = Written::default();
        let mut errors = Once::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(%pod, "reporting edge health as pod conditions");
        loop {
            tick.tick().await;
            let mut next = conditions(&check());
            next.push(rings_condition(rings()));
            let changed = written.diff(next, Timestamp::now());
            if changed.is_empty() {
                continue;
            }
            let body = serde_json::json!({"status": {"conditions": changed}});
            match pods
                .patch_status(&pod, &PatchParams::default(), &Patch::Strategic(&body))
                .await
            {
                Ok(_) => {
                    errors.clear();
                    for c in &changed {
                        tracing::info!(
                            condition = %c.type_,
                            status = %c.status,
                            reason = c.reason.as_deref().unwrap_or_default(),
                            message = c.message.as_deref().unwrap_or_default(),
                            "edge health changed"
                        );
                    }
                }
                Err(e) => {
                    written.forget(&changed);
                    let message = e.to_string();
                    if errors.changed(&message) {
                        tracing::warn!(%pod, "failed to report edge health (retrying): {message}");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use tonic::Code;

    use super::*;
    use crate::resilience::breaker::BreakerConfig;
    use crate::{
        resilience::guard::{Outcome, UpstreamGuard},
        routing::table::{RouteTable, Snapshot},
        upstream::Deadlines,
    };
    use storefront_platform::token::{SigningKeys, TokenIssuer};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn problems_become_two_conditions() {
        let healthy = conditions(&[]);
        assert_eq!(
            healthy
                .iter()
                .map(|c| (c.type_, c.healthy, c.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                (RATE_LIMITER_CONDITION, true, "Healthy"),
                (CIRCUITS_CONDITION, true, "AllClosed")
            ]
        );
        let broken = conditions(&[
            EdgeProblem::circuit_open("orders", "open"),
            EdgeProblem::rate_limiter_degraded("redis unreachable"),
            EdgeProblem::circuit_open("catalog", "half-open"),
            EdgeProblem::circuit_open("orders", "open"),
        ]);
        assert_eq!(
            (
                broken[0].healthy,
                broken[0].reason.as_str(),
                broken[0].message.as_str()
            ),
            (false, RATE_LIMITER_DEGRADED, "redis unreachable")
        );
        // Sorted, deduplicated, in the format the operator parses.
        assert_eq!(
            (
                broken[1].healthy,
                broken[1].reason.as_str(),
                broken[1].message.as_str()
            ),
            (false, CIRCUIT_OPEN, "catalog: half-open; orders: open")
        );
    }

    #[test]
    fn only_changes_are_written_and_transition_times_move_on_flips() {
        let mut w = Written::default();
        let t1 = ts("2026-11-25T12:00:00Z");
        let t2 = ts("2026-11-25T12:00:05Z");
        let t3 = ts("2026-11-25T12:00:09Z");
        assert_eq!(
            w.diff(conditions(&[]), t1).len(),
            2,
            "the first check writes both"
        );
        assert!(w.diff(conditions(&[]), t2).is_empty(), "nothing changed");

        let open = [EdgeProblem::circuit_open("orders", "open")];
        let changed = w.diff(conditions(&open), t2);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].type_, CIRCUITS_CONDITION);
        assert_eq!(changed[0].status, "False");
        assert_eq!(changed[0].last_transition_time, Some(Time(t2)));
        // Another message, same status: written, the transition time stays.
        let more = [
            EdgeProblem::circuit_open("orders", "open"),
            EdgeProblem::circuit_open("auth", "open"),
        ];
        let changed = w.diff(conditions(&more), t3);
        assert_eq!(
            changed[0].message.as_deref(),
            Some("auth: open; orders: open")
        );
        assert_eq!(changed[0].last_transition_time, Some(Time(t2)));
        // A failed write is tried again.
        w.forget(&changed);
        assert_eq!(w.diff(conditions(&more), t3).len(), 1);
        let closed = w.diff(conditions(&[]), t3);
        assert_eq!(
            (closed[0].status.as_str(), closed[0].reason.as_deref()),
            ("True", Some("AllClosed"))
        );
    }

    #[tokio::test]
    async fn open_breakers_of_core_routes_are_problems_and_the_limiter_hook_adds_its_own() {
        let guard = Arc::new(BreakerGuard::new(
            BreakerConfig::default(),
            &mut Registry::default(),
        ));
        let issuer = Arc::new(TokenIssuer::new(
            SigningKeys::from_seed([4; 32]).expect("key"),
            "shop",
            60,
            60,
        ));
        let gateway = Gateway::new(issuer, guard.clone(), Deadlines::default());
        let check = edge_check(guard.clone(), gateway.clone(), None);
        assert!(check().is_empty(), "no table, no problem");
        let table = RouteTable::parse(
            r#"{"storefront": "shop", "routes": [
              {"service": "catalog", "tier": "core", "upstream": "127.0.0.1:1"},
              {"service": "recommendations", "tier": "supporting", "upstream": "127.0.0.1:2"}]}"#,
        )
        .expect("table");
        gateway
            .apply(Snapshot {
                table,
                rings: BTreeMap::new(),
            })
            .expect("applies");
        assert!(check().is_empty(), "every breaker closed");
        for service in ["catalog", "recommendations"] {
            for _ in 0..5 {
                guard.record(service, Outcome::Failed(Code::Unavailable));
            }
        }
        // Only the core service counts: a supporting one down is not a failure point here.
        assert_eq!(check(), [EdgeProblem::circuit_open("catalog", "open")]);

        let degraded: LimiterCheck =
            Arc::new(|| Some(EdgeProblem::rate_limiter_degraded("redis unreachable")));
        let check = edge_check(guard, gateway, Some(degraded));
        assert_eq!(
            check(),
            [
                EdgeProblem::rate_limiter_degraded("redis unreachable"),
                EdgeProblem::circuit_open("catalog", "open")
            ]
        );
    }
}
