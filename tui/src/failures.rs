//! Failure derivation: one list of what is broken right now, newest first.
//!
//! Sources, in order of authority:
//! 1. every Storefront's `status.failurePoints` (the operator's view, after its grace period);
//! 2. what the console sees before the operator says so: Deployments with pods wanted and none
//!    ready, pods crash-looping or unable to pull their image;
//! 3. Prometheus: open circuit breakers, throttled services (429s), and stale or unreachable
//!    metrics themselves.
//!
//! Entries are deduplicated by `(namespace, kind, name)`; the first source wins. `since` comes
//! from the operator when it has one, otherwise from when the console first saw the failure
//! (`first_seen`, kept by the app across updates).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::{
    metrics::{Circuit, Freshness, PromState},
    model::Cluster,
};

/// A Deployment this young with no ready pod is starting, not failing (its pods are pulled
/// and probed); one older than this turns red at once when its pods die.
pub const NEW_DEPLOYMENT_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// One broken thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub namespace: String,
    pub storefront: Option<String>,
    /// `Service`, `Shard`, `Pod`, `CircuitBreaker`, `RateLimit`, `Metrics`.
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    /// The topology node it turns red (a service name or a shard name).
    pub node: Option<String>,
    pub since: Timestamp,
}

impl Failure {
    /// Identity across updates.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// Everything broken in `cluster` and `prom` at `now`, newest first.
pub fn derive(
    cluster: &Cluster,
    prom: &PromState,
    now: Timestamp,
    first_seen: &BTreeMap<String, Timestamp>,
) -> Vec<Failure> {
    let mut out: Vec<Failure> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |mut f: Failure, operator_since: Option<Timestamp>| {
        if seen.insert(f.key()) {
            f.since = operator_since
                .or_else(|| first_seen.get(&f.key()).copied())
                .unwrap_or(now);
            out.push(f);
        }
    };

    for sf in &cluster.storefronts {
        let (ns, name) = crate::model::sf_key(sf);
        for fp in sf.status.iter().flat_map(|s| &s.failure_points) {
            let node = match fp.kind.as_str() {
                "Service" | "Shard" | "CircuitBreaker" | "RateLimit" => Some(fp.name.clone()),
                "Pod" => pod_node(cluster, &ns, &fp.name),
                _ => None,
            };
            push(
                Failure {
                    namespace: ns.clone(),
                    storefront: Some(name.clone()),
                    kind: fp.kind.clone(),
                    name: fp.name.clone(),
                    reason: fp.reason.clone(),
                    message: fp.message.clone(),
                    node,
                    since: now,
                },
                Some(fp.since.0),
            );
        }
    }

    for d in &cluster.deployments {
        let new = d
            .created
            .is_some_and(|c| now.duration_since(c) < NEW_DEPLOYMENT_GRACE);
        if d.desired > 0 && d.ready == 0 && !new {
            let (kind, name) = if d.shard.is_some() {
                ("Shard", d.name.clone())
            } else {
                (
                    "Service",
                    d.component.clone().unwrap_or_else(|| d.name.clone()),
                )
            };
            push(
                Failure {
                    namespace: d.namespace.clone(),
                    storefront: d.storefront.clone(),
                    kind: kind.into(),
                    name,
                    reason: "NoReadyReplicas".into(),
                    message: format!("{} wants {} pods, none ready", d.name, d.desired),
                    node: d.node(),
                    since: now,
                },
                None,
            );
        }
    }

    for p in cluster.pods.iter().filter(|p| p.is_broken()) {
        push(
            Failure {
                namespace: p.namespace.clone(),
                storefront: p.storefront.clone(),
                kind: "Pod".into(),
                name: p.name.clone(),
                reason: p.waiting_reason.clone().unwrap_or_default(),
                message: format!("restarted {} times {}", p.restarts, p.message)
                    .trim_end()
                    .to_string(),
                node: p.node(),
                since: now,
            },
            None,
        );
    }

    if prom.configured {
        let last_ok = prom.last.as_ref().map(|s| s.at);
        let reason = match (&prom.error, Freshness::of(last_ok, now)) {
            (Some(_), _) => Some("Unreachable"),
            (None, Freshness::Stale(_)) => Some("Stale"),
            _ => None,
        };
        if let Some(reason) = reason {
            push(
                Failure {
                    namespace: String::new(),
                    storefront: None,
                    kind: "Metrics".into(),
                    name: "prometheus".into(),
                    reason: reason.into(),
                    message: prom.error.clone().unwrap_or_default(),
                    node: None,
                    since: now,
                },
                None,
            );
        }
        if let Some(snap) = &prom.last {
            for (key, m) in &snap.services {
                let sf = key.storefront.clone();
                if m.circuit == Some(Circuit::Open) {
                    push(
                        Failure {
                            namespace: key.namespace.clone(),
                            storefront: sf.clone(),
                            kind: "CircuitBreaker".into(),
                            name: key.service.clone(),
                            reason: "Open".into(),
                            message: format!("calls to {} are short-circuited", key.service),
                            node: Some(key.service.clone()),
                            since: now,
                        },
                        None,
                    );
                }
                if let Some(r) = m.throttled_rps.filter(|r| *r > 0.0) {
                    push(
                        Failure {
                            namespace: key.namespace.clone(),
                            storefront: sf,
                            kind: "RateLimit".into(),
                            name: key.service.clone(),
                            reason: "Throttled".into(),
                            message: throttled_message(r, &key.service, m),
                            node: None,
                            since: now,
                        },
                        None,
                    );
                }
            }
        }
    }

    out.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.key().cmp(&b.key())));
    out
}

/// `3.50 requests/s rejected with 429`, split by what refused them where the gateway's
/// limiter says: at the gateway `: 2.30/s by per-client limits, 0/s by the shop's budget` (a
/// few clients being limited reads differently from the shop's budget being spent), at a
/// service `: 1.20/s by its budget`.
fn throttled_message(rps: f64, service: &str, m: &crate::metrics::ServiceMetrics) -> String {
    use crate::metrics::fmt_rate;
    let mut msg = format!("{} requests/s rejected with 429", fmt_rate(Some(rps)));
    let clients = m.clients.as_ref().and_then(|c| c.limited_rps());
    if service == "gateway" && (clients.is_some() || m.limited_rps.is_some()) {
        msg.push_str(&format!(
            ": {}/s by per-client limits, {}/s by the shop's budget",
            fmt_rate(clients),
            fmt_rate(m.limited_rps)
        ));
    } else if service != "gateway" && m.limited_rps.is_some() {
        msg.push_str(&format!(": {}/s by its budget", fmt_rate(m.limited_rps)));
    }
    msg
}

/// The node of a pod named in a failure point, from the pods the console watches.
fn pod_node(cluster: &Cluster, namespace: &str, pod: &str) -> Option<String> {
    cluster
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == pod)
        .and_then(|p| p.node())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        metrics::{ClientTraffic, Decisions, PromSnapshot, ServiceKey, ServiceMetrics},
        model::{DeploymentInfo, PodInfo},
    };
    use storefront_crds::Storefront;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn storefront_with_failure() -> Storefront {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "commerce.storefront.dev/v1alpha1", "kind": "Storefront",
            "metadata": {"name": "acme", "namespace": "shop"},
            "spec": {"image": "x", "services": {"gateway": {}, "orders": {}}},
            "status": {"failurePoints": [{"kind": "Service", "name": "orders",
                "reason": "NoReadyReplicas", "message": "orders has no ready pod",
                "since": "2027-01-15T08:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn operator_points_come_first_and_console_only_ones_are_added_once() {
        let cluster = Cluster {
            storefronts: vec![storefront_with_failure()],
            deployments: vec![
                DeploymentInfo {
                    namespace: "shop".into(),
                    name: "acme-orders".into(),
                    storefront: Some("acme".into()),
                    component: Some("orders".into()),
                    desired: 2,
                    ..DeploymentInfo::default()
                },
                DeploymentInfo {
                    namespace: "shop".into(),
                    name: "acme-gateway".into(),
                    storefront: Some("acme".into()),
                    component: Some("gateway".into()),
                    desired: 2,
                    ready: 2,
                    ..DeploymentInfo::default()
                },
            ],
            pods: vec![PodInfo {
                namespace: "shop".into(),
                name: "acme-inventory-1-abc".into(),
                storefront: Some("acme".into()),
                component: Some("inventory".into()),
                shard: Some("1".into()),
                restarts: 4,
                waiting_reason: Some("CrashLoopBackOff".into()),
                ..PodInfo::default()
            }],
            ..Cluster::default()
        };
        let first_seen = BTreeMap::from([("shop/Pod/acme-inventory-1-abc".to_string(), t(-60))]);
        let got = derive(&cluster, &PromState::default(), t(0), &first_seen);
        let summary: Vec<_> = got
            .iter()
            .map(|f| (f.kind.as_str(), f.name.as_str(), f.node.as_deref(), f.since))
            .collect();
        assert_eq!(
            summary,
            [
                // newest first: the operator's `since` (t(0)), then the pod first seen at t(-60)
                (
                    "Service",
                    "orders",
                    Some("orders"),
                    "2027-01-15T08:00:00Z".parse().unwrap()
                ),
                (
                    "Pod",
                    "acme-inventory-1-abc",
                    Some("acme-inventory-1"),
                    t(-60)
                ),
            ]
        );
    }

    #[test]
    fn a_new_deployment_starting_is_not_a_failure_an_old_one_without_pods_is() {
        let dep = |created: i64| DeploymentInfo {
            namespace: "shop".into(),
            name: "acme-orders".into(),
            storefront: Some("acme".into()),
            component: Some("orders".into()),
            created: Some(t(created)),
            desired: 2,
            ..DeploymentInfo::default()
        };
        let failing = |d: DeploymentInfo| {
            let cluster = Cluster {
                deployments: vec![d],
                ..Cluster::default()
            };
            derive(&cluster, &PromState::default(), t(0), &BTreeMap::new()).len()
        };
        assert_eq!(failing(dep(-10)), 0, "created 10s ago: starting");
        assert_eq!(failing(dep(-31)), 1, "31s old and no ready pod: failing");
        assert_eq!(
            failing(DeploymentInfo {
                created: None,
                ..dep(0)
            }),
            1
        );
    }

    #[test]
    fn prometheus_down_stale_circuit_open_and_throttling_are_failures() {
        let key = ServiceKey {
            namespace: "shop".into(),
            storefront: Some("acme".into()),
            service: "payments".into(),
        };
        let mut snap = PromSnapshot::empty(t(0));
        snap.services.insert(
            key,
            ServiceMetrics {
                circuit: Some(Circuit::Open),
                throttled_rps: Some(3.0),
                ..ServiceMetrics::default()
            },
        );
        let mut prom = PromState {
            configured: true,
            last: Some(snap),
            ..PromState::default()
        };
        let kinds = |prom: &PromState, now| -> Vec<(String, String)> {
            derive(&Cluster::default(), prom, now, &BTreeMap::new())
                .into_iter()
                .map(|f| (f.kind, f.reason))
                .collect()
        };
        assert_eq!(
            kinds(&prom, t(5)),
            [
                ("CircuitBreaker".into(), "Open".into()),
                ("RateLimit".into(), "Throttled".into())
            ]
        );
        let message = |prom: &PromState| {
            derive(&Cluster::default(), prom, t(5), &BTreeMap::new())
                .into_iter()
                .find(|f| f.kind == "RateLimit")
                .map(|f| f.message)
                .unwrap()
        };
        assert_eq!(message(&prom), "3.00 requests/s rejected with 429");
        // At the gateway, split by what refused: a few clients, not the shop's budget.
        let gateway = |snap: &mut PromSnapshot| {
            let mut m = snap.services.pop_first().unwrap().1;
            m.limited_rps = Some(0.0);
            m.clients = Some(ClientTraffic {
                budgets: [(
                    "address".to_string(),
                    Decisions {
                        allowed: Some(9.0),
                        limited: Some(2.5),
                    },
                )]
                .into(),
                ..ClientTraffic::default()
            });
            snap.services.insert(
                ServiceKey {
                    namespace: "shop".into(),
                    storefront: Some("acme".into()),
                    service: "gateway".into(),
                },
                m,
            );
        };
        let mut split = prom.clone();
        gateway(split.last.as_mut().unwrap());
        assert_eq!(
            message(&split),
            "3.00 requests/s rejected with 429: 2.50/s by per-client limits, 0/s by the shop's budget"
        );
        assert!(kinds(&prom, t(100)).contains(&("Metrics".into(), "Stale".into())));
        prom.error = Some("connection refused".into());
        assert!(kinds(&prom, t(5)).contains(&("Metrics".into(), "Unreachable".into())));
        prom.configured = false;
        assert!(kinds(&prom, t(5)).is_empty());
    }
}
