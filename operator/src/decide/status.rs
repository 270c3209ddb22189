//! Storefront status from what the operator decided and what it observes: per-service
//! desired/ready, shard rollup, failure points and the `Ready`/`Progressing`/`Degraded`/`Paused`
//! and `MTLSEnforced` conditions. Pure (previous status and `now` are arguments) so that an
//! unchanged world yields an identical status and no write. What is observed of the workloads
//! ([`Observed`]) comes from the watched objects by [`observed`] (`observe.rs`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use storefront_crds::{
    FailurePoint, RingStatus, StorefrontStatus,
    common::condition,
    storefront::{ServiceStatus, ShardRollup},
};

pub use self::observe::{WORKLOAD_CONDITION_PREFIX, observed};
use super::plan::{ServicePlan, Sizing};
use crate::{labels, references::Unresolved};

/// How long a workload may have no ready pod after it was created before that counts as a
/// failure point (pods starting are progress, not failure).
pub const STARTUP_GRACE_SECS: i64 = 90;

/// What the operator observed of one workload (a Deployment or a ServiceShard).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub ready: i32,
    pub created: Option<Timestamp>,
    /// Reason of a Deployment's failed `Progressing` condition (e.g. `ProgressDeadlineExceeded`).
    pub stuck: Option<String>,
    /// ServiceShard phase.
    pub phase: Option<String>,
    /// Pods of this workload stuck failing.
    pub failing_pods: Vec<FailingPod>,
    /// Problems the pods report about themselves (their `storefront.dev/*` conditions that
    /// are `False`): (pod name, reason, message). The gateway's edge health.
    pub pod_problems: Vec<(String, String, String)>,
}

/// A pod stuck failing: its name, its container's waiting reason and message (e.g.
/// `CreateContainerConfigError`: `secret "storefront-postgres" not found`), its restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailingPod {
    pub pod: String,
    pub reason: String,
    pub message: String,
    pub restarts: i32,
}

/// Ready pods of a Deployment that run its current pod template: during a rollout the
/// Deployment's `readyReplicas` also counts the old ReplicaSet's pods (3 ready of 2 wanted, one
/// of them on the old template), so a change was called Ready before it had rolled out. Pure.
pub fn deployment_ready(d: &k8s_openapi::api::apps::v1::Deployment) -> i32 {
    let Some(st) = d.status.as_ref() else {
        return 0;
    };
    // Before the Deployment controller has seen a new template, `updatedReplicas` still
    // counts the old one: the same figure as before the change, never a drop to 0.
    let ready = st.ready_replicas.unwrap_or(0);
    ready.min(st.updated_replicas.unwrap_or(0))
}

/// Reason of a gateway pod whose rate limiter runs without its shared budget.
pub const RATE_LIMITER_DEGRADED: &str = "RateLimiterDegraded";
/// Reason of a gateway pod with the breaker of a core service not closed; its message lists
/// `"<service>: <state>"` entries joined by `"; "` (`workloads/gateway/src/edge_health/mod.rs`).
pub const CIRCUIT_OPEN: &str = "CircuitOpen";

/// Failure points from what pods report about themselves: an open breaker is a
/// `CircuitBreaker` failure point named after the service (whichever gateway pods see it),
/// a degraded limiter a `RateLimit` one on `service`, anything else a `Pod` one. Pure.
pub fn pod_problem_failures(service: &str, w: &Workload) -> Vec<FailurePoint> {
    // (kind, name, reason) → what each pod says.
    let mut merged: BTreeMap<(&str, String, &str), Vec<String>> = BTreeMap::new();
    for (pod, reason, message) in &w.pod_problems {
        match reason.as_str() {
            CIRCUIT_OPEN => {
                for entry in message.split("; ").filter(|e| !e.is_empty()) {
                    let (upstream, state) = entry.split_once(": ").unwrap_or((entry, "open"));
                    merged
                        .entry(("CircuitBreaker", upstream.to_string(), CIRCUIT_OPEN))
                        .or_default()
                        .push(format!("{state} in {pod}"));
                }
            }
            RATE_LIMITER_DEGRADED => merged
                .entry(("RateLimit", service.to_string(), RATE_LIMITER_DEGRADED))
                .or_default()
                .push(format!("{pod}: {message}")),
            other => merged
                .entry(("Pod", pod.clone(), other))
                .or_default()
                .push(message.clone()),
        }
    }
    merged
        .into_iter()
        .map(|((kind, name, reason), mut says)| {
            says.sort();
            let message = match kind {
                "CircuitBreaker" => format!(
                    "{service} stopped calling {name}: breaker {}",
                    says.join(", ")
                ),
                _ => says.join("; "),
            };
            failure(kind, &name, reason, message)
        })
        .collect()
}

/// Container waiting reasons that make a pod a failure point.
pub const FAILING_REASONS: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// Failing pods of a service, folded: one failure point per waiting reason, named after the
/// first pod (by name), with the count and the first pod's message. Fourteen pods that cannot
/// find the same Secret are one line, not fourteen.
fn pod_failures<'a>(
    service: &str,
    pods: impl IntoIterator<Item = &'a FailingPod>,
) -> Vec<FailurePoint> {
    let mut by_reason: BTreeMap<&str, Vec<&FailingPod>> = BTreeMap::new();
    for p in pods {
        by_reason.entry(p.reason.as_str()).or_default().push(p);
    }
    by_reason
        .into_iter()
        .filter_map(|(reason, mut pods)| {
            pods.sort();
            let first = *pods.first()?;
            let restarts = pods.iter().map(|p| p.restarts).max().unwrap_or(0);
            let says = if first.message.is_empty() {
                String::new()
            } else {
                format!(": {}", first.message)
            };
            let message = match pods.len() {
                1 => format!("{service} pod is {reason}{says} (restarted {restarts} times)"),
                n => format!(
                    "{n} {service} pods are {reason}{says} (first {}; restarted up to {restarts} times)",
                    first.pod
                ),
            };
            Some(failure("Pod", &first.pod, reason, message))
        })
        .collect()
}

/// Observed workloads by object name.
pub type Observed = BTreeMap<String, Workload>;

/// What status needs of what was decided for a Storefront: the part of the builders' output
/// (`crate::build::Desired::decided`) that is not objects to apply.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    pub plans: &'a [ServicePlan],
    /// Names of the sales that changed something.
    pub active_sales: &'a [String],
    /// The sharded services' rings as rendered.
    pub rings: &'a BTreeMap<String, RingStatus>,
    /// The shard count the spec asks for, per sharded service.
    pub ring_wanted: &'a BTreeMap<String, i32>,
    /// `security.mtls` is asked for (and not enforced yet).
    pub mtls_requested: bool,
}

/// What happened in this reconcile.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The spec breaks a rule; nothing was applied.
    Invalid(&'a str),
    /// `spec.paused`: nothing was applied.
    Paused(Decided<'a>),
    /// Children were applied; `Some(error)` when an apply failed.
    Applied(Decided<'a>, Option<&'a str>),
    /// Something the spec names (a Secret) is missing: nothing was applied.
    Waiting(Decided<'a>, &'a Unresolved),
}

/// Computes the status of `storefront` (its name) at `generation`.
pub fn compute(
    storefront: &str,
    generation: Option<i64>,
    outcome: Outcome<'_>,
    observed: &Observed,
    previous: Option<&StorefrontStatus>,
    now: Timestamp,
) -> StorefrontStatus {
    let mut st = StorefrontStatus {
        observed_generation: generation,
        ..StorefrontStatus::default()
    };
    let desired = match outcome {
        Outcome::Invalid(_) => None,
        Outcome::Paused(d) | Outcome::Applied(d, _) | Outcome::Waiting(d, _) => Some(d),
    };
    let mut failures = Vec::new();
    if let Outcome::Waiting(_, u) = outcome {
        for (secret, problem) in &u.secrets {
            failures.push(failure("Secret", secret, u.reason, problem.clone()));
        }
    }
    if let Some(d) = desired {
        st.active_flash_sales = d.active_sales.to_vec();
        for p in d.plans {
            let (ready, svc_failures, shards) = observe_plan(storefront, p, observed, now);
            failures.extend(svc_failures);
            st.shards.extend(shards);
            st.services.insert(
                p.service.as_str().to_string(),
                ServiceStatus {
                    desired: p.desired_pods(),
                    ready,
                    tier: p.tier,
                    replicas_reason: p.reason.clone(),
                },
            );
        }
    } else if let Some(prev) = previous {
        // An invalid spec changes nothing in the cluster: keep reporting what runs.
        st.services = prev.services.clone();
        st.shards = prev.shards.clone();
        st.active_flash_sales = prev.active_flash_sales.clone();
    }
    let ready_services = st
        .services
        .values()
        .filter(|s| s.ready >= s.desired)
        .count();
    st.ready_services = format!("{ready_services}/{}", st.services.len());
    st.failure_points = keep_since(failures, previous, now);
    st.failure_count = i32::try_from(st.failure_points.len()).unwrap_or(i32::MAX);

    let all_ready = ready_services == st.services.len();
    let stopped = desired.is_some_and(|d| d.plans.iter().all(|p| p.desired_pods() == 0));
    let mut conds = Vec::new();
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        conds.push(condition(type_, ok, reason, message, generation));
    };
    match outcome {
        Outcome::Invalid(msg) => {
            set(condition::READY, false, "InvalidSpec", msg.to_string());
            set(
                condition::PROGRESSING,
                false,
                "InvalidSpec",
                "waiting for a valid spec".into(),
            );
            set(condition::DEGRADED, true, "InvalidSpec", msg.to_string());
        }
        Outcome::Waiting(_, u) => {
            set(condition::READY, false, u.reason, u.message.clone());
            set(
                condition::PROGRESSING,
                false,
                u.reason,
                "waiting for the Secrets the spec names: nothing is applied until they exist"
                    .into(),
            );
            set(condition::DEGRADED, true, u.reason, u.message.clone());
        }
        Outcome::Paused(_) | Outcome::Applied(..) => {
            let (reason, msg) = if !all_ready {
                ("ServicesNotReady", not_ready_message(&st))
            } else if stopped {
                ("Stopped", "every service is scaled to zero".to_string())
            } else {
                (
                    "AllServicesReady",
                    format!("{} services ready", st.services.len()),
                )
            };
            set(condition::READY, all_ready, reason, msg);
            let apply_error = match outcome {
                Outcome::Applied(_, e) => e,
                _ => None,
            };
            if matches!(outcome, Outcome::Paused(_)) {
                set(
                    condition::PROGRESSING,
                    false,
                    "Paused",
                    "spec.paused is set: children are not changed".into(),
                );
            } else if all_ready {
                set(
                    condition::PROGRESSING,
                    false,
                    "Converged",
                    "children match the spec".into(),
                );
            } else {
                set(
                    condition::PROGRESSING,
                    true,
                    "Reconciling",
                    "waiting for pods to become ready".into(),
                );
            }
            if let Some(e) = apply_error {
                set(condition::DEGRADED, true, "ApplyFailed", e.to_string());
            } else if !st.failure_points.is_empty() {
                let names: Vec<_> = st
                    .failure_points
                    .iter()
                    .map(|f| format!("{} {} {}", f.kind, f.name, f.reason))
                    .collect();
                set(condition::DEGRADED, true, "FailurePoints", names.join("; "));
            } else {
                set(
                    condition::DEGRADED,
                    false,
                    "AsExpected",
                    "no failure points".into(),
                );
            }
        }
    }
    if let Some(d) = desired {
        st.rings = d.rings.clone();
        for (type_, ok, reason, msg) in super::reshard::conditions(d.rings, d.ring_wanted) {
            set(type_, ok, reason, msg);
        }
    } else if let Some(prev) = previous {
        st.rings = prev.rings.clone();
    }
    if let Some(d) = desired {
        let (reason, msg) = if d.mtls_requested {
            (
                "NotImplemented",
                "security.mtls is true but mutual TLS between services is not in force yet: \
                 service-to-service traffic is plaintext (authenticated by service JWTs only)",
            )
        } else {
            (
                "Disabled",
                "security.mtls is false: service-to-service traffic is plaintext",
            )
        };
        set(condition::MTLS_ENFORCED, false, reason, msg.to_string());
    }
    let paused = matches!(outcome, Outcome::Paused(_));
    set(
        condition::PAUSED,
        paused,
        if paused { "Paused" } else { "Reconciling" },
        if paused {
            "spec.paused is set".into()
        } else {
            "the operator reconciles this Storefront".into()
        },
    );
    st.conditions = keep_transition_times(conds, previous.map(|p| p.conditions.as_slice()), now);
    st
}

fn not_ready_message(st: &StorefrontStatus) -> String {
    let waiting: Vec<_> = st
        .services
        .iter()
        .filter(|(_, s)| s.ready < s.desired)
        .map(|(n, s)| format!("{n} {}/{}", s.ready, s.desired))
        .collect();
    format!("not ready: {}", waiting.join(", "))
}

fn past_grace(w: &Workload, now: Timestamp) -> bool {
    w.created
        .is_some_and(|c| now.as_second() - c.as_second() >= STARTUP_GRACE_SECS)
}

fn failure(kind: &str, name: &str, reason: &str, message: String) -> FailurePoint {
    FailurePoint {
        kind: kind.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
        message,
        since: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Ready pods of a plan's workloads, its failure points and (for sharded services) shards.
fn observe_plan(
    storefront: &str,
    p: &ServicePlan,
    observed: &Observed,
    now: Timestamp,
) -> (i32, Vec<FailurePoint>, Vec<ShardRollup>) {
    let service = p.service.as_str();
    let mut failures = Vec::new();
    match p.sizing {
        Sizing::Sharded {
            shards,
            replicas_per_shard,
        } => {
            let mut ready = 0;
            let mut rollup = Vec::new();
            let mut failing = Vec::new();
            for index in 0..shards {
                let name = labels::shard_name(storefront, service, index);
                let w = observed.get(&name).cloned().unwrap_or_default();
                ready += w.ready;
                failing.extend(w.failing_pods.iter().cloned());
                if replicas_per_shard > 0 && w.ready == 0 && past_grace(&w, now) {
                    failures.push(failure(
                        "Shard",
                        &name,
                        "NoReadyReplicas",
                        format!("shard {index} of {service} has no ready pod"),
                    ));
                }
                rollup.push(ShardRollup {
                    service: service.to_string(),
                    index,
                    name,
                    replicas: replicas_per_shard,
                    ready: w.ready,
                    phase: w.phase.unwrap_or_default(),
                });
            }
            failures.extend(pod_failures(service, &failing));
            (ready, failures, rollup)
        }
        Sizing::Fixed { .. } | Sizing::Autoscaled { .. } => {
            let name = labels::service_object_name(storefront, service);
            let w = observed.get(&name).cloned().unwrap_or_default();
            if p.desired_pods() > 0 && w.ready == 0 && past_grace(&w, now) {
                failures.push(failure(
                    "Service",
                    service,
                    "NoReadyReplicas",
                    format!("{service} has no ready pod"),
                ));
            }
            failures.extend(pod_failures(service, &w.failing_pods));
            failures.extend(pod_problem_failures(service, &w));
            if let Some(reason) = &w.stuck {
                failures.push(failure(
                    "Service",
                    service,
                    reason,
                    format!("rollout of {name} is not progressing"),
                ));
            }
            (w.ready, failures, Vec::new())
        }
    }
}

/// Keeps `since` of failure points that were already there.
fn keep_since(
    mut failures: Vec<FailurePoint>,
    previous: Option<&StorefrontStatus>,
    now: Timestamp,
) -> Vec<FailurePoint> {
    for f in &mut failures {
        f.since = previous
            .and_then(|p| {
                p.failure_points
                    .iter()
                    .find(|o| o.kind == f.kind && o.name == f.name && o.reason == f.reason)
            })
            .map_or(Time(now), |o| o.since.clone());
    }
    failures
}

/// A condition of `type_` (transition time to be filled by [`keep_transition_times`]).
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
pub fn keep_transition_times(
    mut conds: Vec<Condition>,
    previous: Option<&[Condition]>,
    now: Timestamp,
) -> Vec<Condition> {
    for c in &mut conds {
        c.last_transition_time = previous
            .and_then(|p| {
                p.iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status)
            })
            .map_or(Time(now), |o| o.last_transition_time.clone());
    }
    conds
}

mod observe;

#[cfg(test)]
mod tests;
