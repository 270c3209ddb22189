//! What a Storefront's workloads look like from the watched objects: only its own, ready pods
//! on the current template, stuck rollouts, shard phases, failing pods and pod problems.

use serde_json::json;
use storefront_crds::{ServiceShardSpec, ServiceShardStatus, ShardedService};

use super::*;
use crate::testutil::ts;

fn deployment(ns: &str, instance: &str, name: &str, status: serde_json::Value) -> Arc<Deployment> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "creationTimestamp": "2026-11-25T12:00:00Z",
                "labels": {labels::INSTANCE: instance},
            },
            "status": status,
        }))
        .unwrap(),
    )
}

fn shard(ns: &str, storefront: &str, index: i32, phase: Option<ShardPhase>) -> Arc<ServiceShard> {
    let mut sh = ServiceShard::new(
        &format!("{storefront}-inventory-{index}"),
        ServiceShardSpec {
            storefront: storefront.into(),
            service: ShardedService::Inventory,
            index,
            shard_count: 2,
            replicas: 2,
            ring_epoch: 1,
        },
    );
    sh.metadata.namespace = Some(ns.into());
    sh.status = Some(ServiceShardStatus {
        ready_replicas: 1,
        phase,
        ..ServiceShardStatus::default()
    });
    Arc::new(sh)
}

/// A pod of `component` (of shard `shard`, if any) with `status`.
fn pod(name: &str, component: &str, shard: Option<&str>, status: serde_json::Value) -> Arc<Pod> {
    let mut labels = json!({labels::INSTANCE: "acme", labels::COMPONENT: component});
    if let Some(i) = shard {
        labels[labels::SHARD] = json!(i);
    }
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "status": status,
        }))
        .unwrap(),
    )
}

fn waiting(reason: &str, message: &str, restarts: i32) -> serde_json::Value {
    json!({"containerStatuses": [{
        "name": "app",
        "image": "x",
        "imageID": "",
        "ready": false,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
    }]})
}

#[test]
fn only_the_storefronts_own_workloads_in_its_namespace() {
    let ok = json!({"readyReplicas": 2, "updatedReplicas": 2});
    let deployments = [
        deployment("shop", "acme", "acme-auth", ok.clone()),
        deployment("shop", "other", "other-auth", ok.clone()),
        deployment("elsewhere", "acme", "acme-catalog", ok),
    ];
    let shards = [
        shard("shop", "acme", 0, Some(ShardPhase::Active)),
        shard("shop", "other", 1, Some(ShardPhase::Active)),
        shard("elsewhere", "acme", 1, None),
    ];
    let o = observed("shop", "acme", &deployments, &shards, &[]);
    assert_eq!(
        o.keys().collect::<Vec<_>>(),
        ["acme-auth", "acme-inventory-0"]
    );
    assert_eq!(
        o["acme-auth"],
        Workload {
            ready: 2,
            created: Some(ts("2026-11-25T12:00:00Z")),
            ..Workload::default()
        }
    );
    assert_eq!(o["acme-inventory-0"].ready, 1);
    assert_eq!(o["acme-inventory-0"].phase.as_deref(), Some("Active"));
    assert_eq!(o["acme-inventory-0"].stuck, None);
}

#[test]
fn a_rollout_counts_pods_on_the_new_template_and_a_stuck_one_says_why() {
    let d = deployment(
        "shop",
        "acme",
        "acme-orders",
        json!({
            "readyReplicas": 3,
            "updatedReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            ],
        }),
    );
    let o = observed("shop", "acme", &[d], &[], &[]);
    assert_eq!(o["acme-orders"].ready, 1);
    assert_eq!(
        o["acme-orders"].stuck.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    // A Progressing condition that holds is not stuck.
    let d = deployment(
        "shop",
        "acme",
        "acme-orders",
        json!({"conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
    );
    assert_eq!(
        observed("shop", "acme", &[d], &[], &[])["acme-orders"].stuck,
        None
    );
}

#[test]
fn failing_pods_go_to_their_service_or_shard_sorted_and_only_failure_reasons() {
    let pods = [
        pod(
            "acme-orders-b",
            "orders",
            None,
            waiting("CreateContainerConfigError", "secret \"pg\" not found", 0),
        ),
        pod(
            "acme-orders-a",
            "orders",
            None,
            waiting("CrashLoopBackOff", "exit 1", 4),
        ),
        pod(
            "acme-inventory-1-x",
            "inventory",
            Some("1"),
            waiting("ImagePullBackOff", "no such image", 0),
        ),
        // Starting, not failing.
        pod(
            "acme-auth-a",
            "auth",
            None,
            waiting("ContainerCreating", "", 0),
        ),
    ];
    let o = observed("shop", "acme", &[], &[], &pods);
    assert_eq!(
        o.keys().collect::<Vec<_>>(),
        ["acme-inventory-1", "acme-orders"]
    );
    let reasons = |w: &str| {
        o[w].failing_pods
            .iter()
            .map(|p| (p.pod.as_str(), p.reason.as_str(), p.restarts))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reasons("acme-orders"),
        [
            ("acme-orders-a", "CrashLoopBackOff", 4),
            ("acme-orders-b", "CreateContainerConfigError", 0),
        ]
    );
    assert_eq!(
        o["acme-orders"].failing_pods[1].message,
        "secret \"pg\" not found"
    );
    assert_eq!(
        reasons("acme-inventory-1"),
        [("acme-inventory-1-x", "ImagePullBackOff", 0)]
    );
}

#[test]
fn pods_report_only_their_own_false_conditions_and_unlabelled_pods_are_skipped() {
    let conditions = json!({"conditions": [
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        {"type": "storefront.dev/RateLimiterShared", "status": "False",
         "reason": "RateLimiterDegraded", "message": "redis down"},
        {"type": "storefront.dev/CircuitsClosed", "status": "True", "reason": "AllClosed"},
        {"type": "storefront.dev/CircuitsClosed", "status": "False", "reason": "CircuitOpen",
         "message": "payments: open"},
    ]});
    let mut no_component = (*pod("stray", "gateway", None, conditions.clone())).clone();
    no_component
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(labels::COMPONENT);
    let pods = [
        pod("acme-gateway-a", "gateway", None, conditions),
        Arc::new(no_component),
    ];
    let o = observed("shop", "acme", &[], &[], &pods);
    assert_eq!(o.keys().collect::<Vec<_>>(), ["acme-gateway"]);
    assert_eq!(
        o["acme-gateway"].pod_problems,
        [
            (
                "acme-gateway-a".to_string(),
                "CircuitOpen".to_string(),
                "payments: open".to_string()
            ),
            (
                "acme-gateway-a".to_string(),
                "RateLimiterDegraded".to_string(),
                "redis down".to_string()
            ),
        ]
    );
    assert!(o["acme-gateway"].failing_pods.is_empty());
    // Another Storefront's pod is not ours, whatever it says.
    assert!(observed("shop", "other", &[], &[], &pods).is_empty());
}
