use super::*;
use crate::{
    build::desired,
    testutil::{sample_storefront, ts},
};

fn failing(pod: &str, reason: &str, message: &str, restarts: i32) -> FailingPod {
    FailingPod {
        pod: pod.into(),
        reason: reason.into(),
        message: message.into(),
        restarts,
    }
}

fn cond<'a>(st: &'a StorefrontStatus, t: &str) -> &'a Condition {
    st.conditions
        .iter()
        .find(|c| c.type_ == t)
        .expect("condition present")
}

/// Every workload of the sample with `ready` pods, created at `created`.
fn observed_all(ready: i32, created: &str) -> Observed {
    let mut o = Observed::new();
    for n in [
        "gateway",
        "auth",
        "catalog",
        "orders",
        "payments",
        "recommendations",
    ] {
        o.insert(
            format!("acme-{n}"),
            Workload {
                ready,
                created: Some(ts(created)),
                ..Workload::default()
            },
        );
    }
    for i in 0..4 {
        o.insert(
            format!("acme-inventory-{i}"),
            Workload {
                ready: ready.min(1),
                created: Some(ts(created)),
                phase: Some("Active".into()),
                ..Workload::default()
            },
        );
    }
    o
}

#[test]
fn all_ready_is_ready_and_converged() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let now = ts("2026-11-25T12:10:00Z");
    let st = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &observed_all(2, "2026-11-25T12:00:00Z"),
        None,
        now,
    );
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(cond(&st, "Ready").status, "True");
    assert_eq!(cond(&st, "Ready").reason, "AllServicesReady");
    assert_eq!(cond(&st, "Ready").observed_generation, Some(3));
    assert_eq!(cond(&st, "Progressing").status, "False");
    assert_eq!(cond(&st, "Degraded").status, "False");
    assert_eq!(cond(&st, "Paused").status, "False");
    assert_eq!(st.ready_services, "7/7");
    assert_eq!(st.failure_count, 0);
    assert_eq!(st.services["inventory"].desired, 4);
    assert_eq!(st.services["inventory"].ready, 4);
    assert_eq!(
        st.services["gateway"].replicas_reason,
        "min 2, max 10 from spec"
    );
    assert_eq!(st.shards.len(), 4);
    assert_eq!(st.shards[1].phase, "Active");
}

#[test]
fn starting_pods_are_progress_then_failure_points_after_grace() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let mut o = observed_all(2, "2026-11-25T12:00:00Z");
    o.get_mut("acme-payments").unwrap().ready = 0;
    let early = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        None,
        ts("2026-11-25T12:00:30Z"),
    );
    assert_eq!(cond(&early, "Ready").status, "False");
    assert_eq!(cond(&early, "Ready").message, "not ready: payments 0/2");
    assert_eq!(cond(&early, "Progressing").status, "True");
    assert!(early.failure_points.is_empty());
    let late_now = ts("2026-11-25T12:05:00Z");
    let late = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        Some(&early),
        late_now,
    );
    assert_eq!(late.failure_points.len(), 1);
    let fp = &late.failure_points[0];
    assert_eq!(
        (fp.kind.as_str(), fp.name.as_str(), fp.reason.as_str()),
        ("Service", "payments", "NoReadyReplicas")
    );
    assert_eq!(fp.since.0, late_now);
    assert_eq!(cond(&late, "Degraded").status, "True");
    assert_eq!(cond(&late, "Degraded").reason, "FailurePoints");
    assert_eq!(late.ready_services, "6/7");
    // Ready was already False: its transition time is kept; `since` is kept too.
    assert_eq!(
        cond(&late, "Ready").last_transition_time,
        cond(&early, "Ready").last_transition_time
    );
    let later = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        Some(&late),
        ts("2026-11-25T12:09:00Z"),
    );
    assert_eq!(later.failure_points[0].since.0, late_now);
    // Same world, same status: nothing to write.
    let again = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        Some(&later),
        ts("2026-11-25T12:09:30Z"),
    );
    assert_eq!(again, later);
}

#[test]
fn shard_without_ready_pods_is_a_failure_point() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let mut o = observed_all(2, "2026-11-25T12:00:00Z");
    o.get_mut("acme-inventory-3").unwrap().ready = 0;
    let st = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        None,
        ts("2026-11-25T13:00:00Z"),
    );
    assert_eq!(st.failure_points[0].kind, "Shard");
    assert_eq!(st.failure_points[0].name, "acme-inventory-3");
    assert_eq!(st.services["inventory"].ready, 3);
}

#[test]
fn invalid_spec_is_degraded_and_keeps_reporting_what_runs() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let now = ts("2026-11-25T12:10:00Z");
    let good = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &observed_all(2, "2026-11-25T12:00:00Z"),
        None,
        now,
    );
    let bad = compute(
        "acme",
        Some(4),
        Outcome::Invalid("spec.services.gateway.replicas: must be between 0 and 1000, got -1"),
        &Observed::new(),
        Some(&good),
        now,
    );
    assert_eq!(cond(&bad, "Degraded").reason, "InvalidSpec");
    assert_eq!(cond(&bad, "Degraded").status, "True");
    assert!(cond(&bad, "Degraded").message.contains("replicas"));
    assert_eq!(cond(&bad, "Ready").status, "False");
    assert_eq!(bad.observed_generation, Some(4));
    assert_eq!(bad.services, good.services);
}

#[test]
fn paused_and_stopped_are_reported() {
    let mut sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let now = ts("2026-11-25T12:10:00Z");
    let paused = compute(
        "acme",
        Some(3),
        Outcome::Paused(d.decided()),
        &observed_all(2, "2026-11-25T12:00:00Z"),
        None,
        now,
    );
    assert_eq!(cond(&paused, "Paused").status, "True");
    assert_eq!(cond(&paused, "Progressing").reason, "Paused");
    sf.spec.stopped = true;
    let d = desired(&sf, &[], now, &Default::default()).unwrap();
    let stopped = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &observed_all(0, "2026-11-25T12:00:00Z"),
        None,
        now,
    );
    assert_eq!(cond(&stopped, "Ready").status, "True");
    assert_eq!(cond(&stopped, "Ready").reason, "Stopped");
    assert!(stopped.failure_points.is_empty());
}

#[test]
fn apply_errors_are_degraded() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let st = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), Some("forbidden")),
        &observed_all(2, "2026-11-25T12:00:00Z"),
        None,
        ts("2026-11-25T12:10:00Z"),
    );
    assert_eq!(cond(&st, "Degraded").reason, "ApplyFailed");
    assert_eq!(cond(&st, "Degraded").message, "forbidden");
}

#[test]
fn crash_looping_pods_are_failure_points_at_once() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let mut o = observed_all(2, "2026-11-25T12:00:00Z");
    o.get_mut("acme-orders").unwrap().failing_pods =
        vec![failing("acme-orders-abc", "CrashLoopBackOff", "", 4)];
    o.get_mut("acme-inventory-2").unwrap().failing_pods =
        vec![failing("acme-inventory-2-xyz", "ImagePullBackOff", "", 0)];
    let st = compute(
        "acme",
        Some(3),
        Outcome::Applied(d.decided(), None),
        &o,
        None,
        ts("2026-11-25T12:00:10Z"),
    );
    let fps: Vec<_> = st
        .failure_points
        .iter()
        .map(|f| (f.kind.as_str(), f.name.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        fps,
        [
            ("Pod", "acme-orders-abc", "CrashLoopBackOff"),
            ("Pod", "acme-inventory-2-xyz", "ImagePullBackOff")
        ]
    );
    assert_eq!(
        st.failure_points[0].message,
        "orders pod is CrashLoopBackOff (restarted 4 times)"
    );
    assert_eq!(cond(&st, "Degraded").status, "True");
    // Ready is about pods ready, not failures: the other pods still serve.
    assert_eq!(cond(&st, "Ready").status, "True");
}

#[test]
fn mtls_asked_for_is_reported_as_not_enforced_never_silently() {
    let mut sf = sample_storefront();
    let now = ts("2026-11-25T12:10:00Z");
    let status_of = |sf: &storefront_crds::Storefront| {
        let d = desired(sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
        compute(
            "acme",
            Some(3),
            Outcome::Applied(d.decided(), None),
            &observed_all(2, "2026-11-25T12:00:00Z"),
            None,
            now,
        )
    };
    let off = status_of(&sf);
    let c = cond(&off, "MTLSEnforced");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "Disabled")
    );

    sf.spec.security = Some(storefront_crds::storefront::Security {
        mtls: true,
        ..Default::default()
    });
    let on = status_of(&sf);
    let c = cond(&on, "MTLSEnforced");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NotImplemented")
    );
    assert!(c.message.contains("not in force"), "{}", c.message);
    // Not enforced is a fact to report, not a failure of the shop.
    assert_eq!(cond(&on, "Ready").status, "True");
    assert_eq!(cond(&on, "Degraded").status, "False");
}

#[test]
fn gateway_pods_edge_problems_are_failure_points() {
    let gateway = Workload {
        ready: 2,
        pod_problems: vec![
            (
                "acme-gateway-a".into(),
                CIRCUIT_OPEN.into(),
                "catalog: open; orders: half-open".into(),
            ),
            (
                "acme-gateway-a".into(),
                RATE_LIMITER_DEGRADED.into(),
                "redis unreachable".into(),
            ),
            (
                "acme-gateway-b".into(),
                CIRCUIT_OPEN.into(),
                "catalog: open".into(),
            ),
            (
                "acme-gateway-b".into(),
                "SomethingNew".into(),
                "what it says".into(),
            ),
        ],
        ..Workload::default()
    };
    let got: Vec<_> = pod_problem_failures("gateway", &gateway)
        .into_iter()
        .map(|f| (f.kind, f.name, f.reason, f.message))
        .collect();
    let want = [
        (
            "CircuitBreaker",
            "catalog",
            "CircuitOpen",
            "gateway stopped calling catalog: breaker open in acme-gateway-a, open in acme-gateway-b",
        ),
        (
            "CircuitBreaker",
            "orders",
            "CircuitOpen",
            "gateway stopped calling orders: breaker half-open in acme-gateway-a",
        ),
        ("Pod", "acme-gateway-b", "SomethingNew", "what it says"),
        (
            "RateLimit",
            "gateway",
            "RateLimiterDegraded",
            "acme-gateway-a: redis unreachable",
        ),
    ];
    assert_eq!(
        got,
        want.map(|(k, n, r, m)| (k.to_string(), n.to_string(), r.to_string(), m.to_string()))
    );

    // In the Storefront's status: Degraded says so, and `since` holds across reconciles.
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let mut observed = observed_all(2, "2026-11-25T12:00:00Z");
    observed.insert("acme-gateway".into(), gateway);
    let t1 = ts("2026-11-25T12:10:00Z");
    let st = compute(
        "acme",
        Some(1),
        Outcome::Applied(d.decided(), None),
        &observed,
        None,
        t1,
    );
    assert_eq!(st.failure_count, 4);
    assert_eq!(cond(&st, "Degraded").status, "True");
    assert!(
        cond(&st, "Degraded")
            .message
            .contains("CircuitBreaker catalog CircuitOpen"),
        "{}",
        cond(&st, "Degraded").message
    );
    let t2 = ts("2026-11-25T12:10:30Z");
    let again = compute(
        "acme",
        Some(1),
        Outcome::Applied(d.decided(), None),
        &observed,
        Some(&st),
        t2,
    );
    assert!(again.failure_points.iter().all(|f| f.since == Time(t1)));

    // Healthy again: gone.
    observed.insert(
        "acme-gateway".into(),
        Workload {
            ready: 2,
            created: Some(ts("2026-11-25T12:00:00Z")),
            ..Workload::default()
        },
    );
    let healed = compute(
        "acme",
        Some(1),
        Outcome::Applied(d.decided(), None),
        &observed,
        Some(&again),
        t2,
    );
    assert_eq!(healed.failure_count, 0);
    assert_eq!(cond(&healed, "Degraded").status, "False");
}

#[test]
fn identical_pod_failures_fold_into_one_line_per_service_with_the_waiting_message() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let mut o = observed_all(0, "2026-11-25T12:00:00Z");
    let missing = "secret \"storefront-postgres\" not found";
    o.get_mut("acme-orders").unwrap().failing_pods = vec![
        failing("acme-orders-b", "CreateContainerConfigError", missing, 0),
        failing("acme-orders-a", "CreateContainerConfigError", missing, 0),
    ];
    // Inventory's shards fold together: one service, one line.
    for i in 0..4 {
        o.get_mut(&format!("acme-inventory-{i}"))
            .unwrap()
            .failing_pods = vec![failing(
            &format!("acme-inventory-{i}-x"),
            "CreateContainerConfigError",
            missing,
            0,
        )];
    }
    o.get_mut("acme-auth").unwrap().failing_pods = vec![failing(
        "acme-auth-z",
        "CrashLoopBackOff",
        "back-off 10s",
        3,
    )];
    let st = compute(
        "acme",
        Some(1),
        Outcome::Applied(d.decided(), None),
        &o,
        None,
        ts("2026-11-25T12:00:10Z"),
    );
    let fps: Vec<_> = st
        .failure_points
        .iter()
        .map(|f| (f.name.as_str(), f.reason.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        fps,
        [
            (
                "acme-auth-z",
                "CrashLoopBackOff",
                "auth pod is CrashLoopBackOff: back-off 10s (restarted 3 times)"
            ),
            (
                "acme-orders-a",
                "CreateContainerConfigError",
                "2 orders pods are CreateContainerConfigError: secret \"storefront-postgres\" not \
                 found (first acme-orders-a; restarted up to 0 times)"
            ),
            (
                "acme-inventory-0-x",
                "CreateContainerConfigError",
                "4 inventory pods are CreateContainerConfigError: secret \"storefront-postgres\" \
                 not found (first acme-inventory-0-x; restarted up to 0 times)"
            ),
        ]
    );
}

#[test]
fn missing_secrets_hold_the_shop_with_one_reason_and_a_failure_point_each() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], ts("2026-11-25T12:00:00Z"), &Default::default()).unwrap();
    let refs = crate::references::secret_refs(&sf.spec);
    let u = crate::references::check("probe-x", &refs, &Default::default()).unwrap();
    let st = compute(
        "acme",
        Some(1),
        Outcome::Waiting(d.decided(), &u),
        &Observed::new(),
        None,
        ts("2026-11-25T12:00:10Z"),
    );
    let ready = cond(&st, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "DatastoreSecretMissing");
    assert!(
        ready.message.starts_with(
            "Secret storefront-postgres (key url) not found in namespace probe-x; create it"
        ),
        "{}",
        ready.message
    );
    assert_eq!(cond(&st, "Progressing").status, "False");
    assert_eq!(cond(&st, "Degraded").reason, "DatastoreSecretMissing");
    let secrets: Vec<_> = st
        .failure_points
        .iter()
        .map(|f| (f.kind.as_str(), f.name.as_str()))
        .collect();
    assert_eq!(
        secrets,
        [
            ("Secret", "storefront-postgres"),
            ("Secret", "storefront-postgres-replica"),
            ("Secret", "storefront-redis"),
            ("Secret", "storefront-nats"),
        ]
    );
    // The services are listed with what runs: nothing yet.
    assert_eq!(st.ready_services, "0/7");
}

#[test]
fn a_deployment_mid_rollout_counts_only_its_updated_ready_pods() {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
    let d = |ready: Option<i32>, updated: Option<i32>| Deployment {
        status: Some(DeploymentStatus {
            ready_replicas: ready,
            updated_replicas: updated,
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    };
    // 2 wanted: a surge pod on the new template beside both old ones, all ready.
    assert_eq!(deployment_ready(&d(Some(3), Some(1))), 1);
    // Rolled out.
    assert_eq!(deployment_ready(&d(Some(2), Some(2))), 2);
    // New pods created, not ready yet.
    assert_eq!(deployment_ready(&d(Some(1), Some(2))), 1);
    assert_eq!(deployment_ready(&d(None, Some(2))), 0);
    assert_eq!(deployment_ready(&Deployment::default()), 0);
}
