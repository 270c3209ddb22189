//! The Storefront controller against a real cluster, with the operator running in it:
//! convergence of the sample, drift repair, pruning, `paused`, `stopped`, garbage collection,
//! and an operator restart. Timings are printed (baselines, not assertions).
//!
//! By topic: the children (convergence, drift, pruning, garbage collection: `children.rs`), what
//! they are wired to (datastore Secrets, NetworkPolicies: `wiring.rs`), and the lifecycle
//! (`paused`, `stopped`, an operator restart, crash-looping pods: `lifecycle.rs`). The helpers
//! below are shared.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use storefront_crds::{ServiceShard, Storefront};
use storefront_e2e::{
    OPERATOR_NAMESPACE, TestNamespace, client, condition, ensure_operator, sample, storefront_from,
    wait_for, wait_operator_available, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, prefix).await.unwrap();
    (client, ns)
}

async fn names<K>(api: &Api<K>, selector: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut n: Vec<_> = api
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    n.sort();
    n
}

fn selector(sf: &str) -> String {
    format!("app.kubernetes.io/managed-by=storefront-operator,app.kubernetes.io/instance={sf}")
}

const MINIMAL: &str = "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {name: mini}
spec:
  image: placeholder
  services:
    gateway: {replicas: 1, rateLimit: {requestsPerMinute: 600}}
    catalog: {replicas: 1}
";

async fn create_minimal(ns: &TestNamespace) -> Api<Storefront> {
    let sfs: Api<Storefront> = ns.api();
    sfs.create(
        &PostParams::default(),
        &storefront_from(MINIMAL, &ns.name).unwrap(),
    )
    .await
    .unwrap();
    wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    sfs
}

async fn patch_spec(api: &Api<Storefront>, name: &str, spec: serde_json::Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

mod children;
mod lifecycle;
mod wiring;
