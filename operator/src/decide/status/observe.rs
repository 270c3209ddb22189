//! What the operator observes of one Storefront's workloads, from the objects its watches hold:
//! ready pods and health per Deployment and ServiceShard, the pods stuck failing, and what
//! pods report about themselves. Pure: the controller reads its stores and passes the objects.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::ResourceExt;
use storefront_crds::{ServiceShard, shard::ShardPhase};

use super::{FAILING_REASONS, FailingPod, Observed, Workload, deployment_ready};
use crate::labels;

/// Prefix of the conditions workloads write on their own pods (the gateway's edge health:
/// `workloads/gateway/src/edge_health/mod.rs`).
pub const WORKLOAD_CONDITION_PREFIX: &str = "storefront.dev/";

/// Ready pods and health of the workloads of Storefront `storefront` in `ns`, from every
/// Deployment, ServiceShard and (trimmed) pod watched: those of other Storefronts are skipped.
/// Failing pods and pod problems are sorted, so the same world is the same [`Observed`].
pub fn observed(
    ns: &str,
    storefront: &str,
    deployments: &[Arc<Deployment>],
    shards: &[Arc<ServiceShard>],
    pods: &[Arc<Pod>],
) -> Observed {
    let mut observed = Observed::new();
    let mine = |labels: &BTreeMap<String, String>| {
        labels.get(labels::INSTANCE).map(String::as_str) == Some(storefront)
    };
    for d in deployments {
        if d.namespace().as_deref() != Some(ns) || !mine(d.labels()) {
            continue;
        }
        let status = d.status.clone().unwrap_or_default();
        let stuck = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.status == "False")
            .and_then(|c| c.reason);
        observed.insert(
            d.name_any(),
            Workload {
                ready: deployment_ready(d),
                created: d.creation_timestamp().map(|t| t.0),
                stuck,
                phase: None,
                failing_pods: Vec::new(),
                pod_problems: Vec::new(),
            },
        );
    }
    for sh in shards {
        if sh.namespace().as_deref() != Some(ns) || sh.spec.storefront != storefront {
            continue;
        }
        let status = sh.status.clone().unwrap_or_default();
        observed.insert(
            sh.name_any(),
            Workload {
                ready: status.ready_replicas,
                created: sh.creation_timestamp().map(|t| t.0),
                stuck: None,
                phase: status.phase.map(phase_name),
                failing_pods: Vec::new(),
                pod_problems: Vec::new(),
            },
        );
    }
    for pod in pods {
        if pod.namespace().as_deref() != Some(ns) || !mine(pod.labels()) {
            continue;
        }
        let Some(component) = pod.labels().get(labels::COMPONENT) else {
            continue;
        };
        let workload = match pod.labels().get(labels::SHARD) {
            Some(index) => format!("{storefront}-{component}-{index}"),
            None => labels::service_object_name(storefront, component),
        };
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        // What the pod says about itself (the gateway's edge health), kept by the trimmed
        // watch: `storefront.dev/*` conditions that are False.
        let problems = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_.starts_with(WORKLOAD_CONDITION_PREFIX) && c.status == "False");
        for c in problems {
            observed
                .entry(workload.clone())
                .or_default()
                .pod_problems
                .push((
                    pod.name_any(),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ));
        }
        for c in statuses.into_iter().flatten() {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            let reason = waiting.and_then(|w| w.reason.as_deref());
            if let Some(reason) = reason.filter(|r| FAILING_REASONS.contains(r)) {
                let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
                observed
                    .entry(workload.clone())
                    .or_default()
                    .failing_pods
                    .push(FailingPod {
                        pod: pod.name_any(),
                        reason: reason.to_string(),
                        message,
                        restarts: c.restart_count,
                    });
            }
        }
    }
    for w in observed.values_mut() {
        w.failing_pods.sort();
        w.pod_problems.sort();
    }
    observed
}

fn phase_name(p: ShardPhase) -> String {
    format!("{p:?}")
}

#[cfg(test)]
mod tests;
