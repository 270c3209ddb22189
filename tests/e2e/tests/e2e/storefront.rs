//! The Storefront controller against a real cluster, with the operator running in it:
//! convergence of the sample, drift repair, pruning, `paused`, `stopped`, garbage collection,
//! and an operator restart. Timings are printed (baselines, not assertions).

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

#[tokio::test]
async fn sample_storefront_converges_with_every_child_and_ready_pods() {
    let (client, ns) = setup("sample").await;
    let sfs: Api<Storefront> = ns.api();
    let sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    let t0 = Instant::now();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let sel = selector("acme");

    let deployments: Api<Deployment> = ns.api();
    let shards: Api<ServiceShard> = ns.api();
    wait_for(
        "every child of the sample to exist",
        READY_TIMEOUT,
        || async {
            let d = names(&deployments, &sel).await;
            let s = names(&shards, &sel).await;
            Ok((d.len() == 6 + 4 && s.len() == 4).then_some(()))
        },
    )
    .await
    .unwrap();
    let children_after = t0.elapsed();

    let ready = wait_ready(&sfs, "acme", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let ready_after = t0.elapsed();
    println!(
        "figure: sample apply -> all children exist: {:.1}s",
        children_after.as_secs_f64()
    );
    println!(
        "figure: sample apply -> Ready: {:.1}s",
        ready_after.as_secs_f64()
    );

    assert_eq!(
        names(&deployments, &sel).await,
        [
            "acme-auth",
            "acme-catalog",
            "acme-gateway",
            "acme-inventory-0",
            "acme-inventory-1",
            "acme-inventory-2",
            "acme-inventory-3",
            "acme-orders",
            "acme-payments",
            "acme-recommendations"
        ]
    );
    let services: Api<Service> = ns.api();
    // One per unsharded service, one per shard, and a headless `-pods` one per unsharded
    // service but the gateway and per shard (the pods the gateway spreads its calls over).
    let all = names(&services, &sel).await;
    assert_eq!(all.len(), 6 + 4 + 5 + 4, "{all:?}");
    for service in [
        "auth",
        "catalog",
        "orders",
        "payments",
        "recommendations",
        "inventory-0",
        "inventory-3",
    ] {
        let pods = format!("acme-{service}-pods");
        let svc = services.get(&pods).await.unwrap();
        assert_eq!(
            svc.spec.and_then(|s| s.cluster_ip).as_deref(),
            Some("None"),
            "{pods} is headless"
        );
    }
    let sas: Api<ServiceAccount> = ns.api();
    assert_eq!(names(&sas, &sel).await.len(), 7);
    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    assert_eq!(names(&hpas, &sel).await, ["acme-catalog", "acme-gateway"]);
    let pdbs: Api<PodDisruptionBudget> = ns.api();
    assert_eq!(
        names(&pdbs, &sel).await,
        ["acme-auth", "acme-gateway", "acme-orders", "acme-payments"]
    );
    let cms: Api<ConfigMap> = ns.api();
    assert_eq!(
        names(&cms, &sel).await,
        ["acme-gateway-routes", "acme-inventory-ring"]
    );
    let routes = cms.get("acme-gateway-routes").await.unwrap();
    assert!(routes.data.unwrap()["routes.json"].contains("\"requestsPerMinute\": 5000"));

    // Real pods run and are ready; the HPA-managed gateway got its floor from the HPA.
    for d in deployments
        .list(&ListParams::default().labels(&sel))
        .await
        .unwrap()
    {
        let st = d.status.clone().unwrap_or_default();
        assert!(
            st.available_replicas.unwrap_or(0) >= 1,
            "{} not available: {st:?}",
            d.name_any()
        );
    }
    let pods: Api<Pod> = ns.api();
    let running = pods
        .list(&ListParams::default().labels(&sel))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    assert!(
        running >= 14,
        "expected at least 14 running pods, got {running}"
    );

    let status = ready.status.unwrap();
    assert_eq!(status.ready_services, "7/7");
    assert_eq!(status.services["inventory"].desired, 4);
    assert_eq!(status.services["gateway"].desired, 2);
    assert_eq!(status.shards.len(), 4);
    assert!(
        status
            .shards
            .iter()
            .all(|s| s.phase == "Active" && s.ready == 1),
        "{:?}",
        status.shards
    );
    assert!(
        status.failure_points.is_empty(),
        "{:?}",
        status.failure_points
    );
    let shard = shards.get("acme-inventory-1").await.unwrap();
    assert_eq!(
        shard.status.unwrap().key_share_percent.as_deref(),
        Some("25.0")
    );
    drop(client);
}

#[tokio::test]
async fn drift_is_repaired_and_switched_off_services_are_pruned() {
    let (_client, ns) = setup("drift").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();
    let cms: Api<ConfigMap> = ns.api();

    // A deleted child is recreated.
    let old_uid = deployments.get("mini-catalog").await.unwrap().uid();
    let t0 = Instant::now();
    deployments
        .delete("mini-catalog", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("mini-catalog to be recreated", CHANGE_TIMEOUT, || async {
        Ok(deployments
            .get_opt("mini-catalog")
            .await?
            .filter(|d| d.uid() != old_uid)
            .map(|_| ()))
    })
    .await
    .unwrap();
    println!(
        "figure: deleted Deployment recreated after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // A hand-edited child is put back.
    let t0 = Instant::now();
    deployments
        .patch(
            "mini-gateway",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    cms.patch(
        "mini-gateway-routes",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"routes.json": "{}"}})),
    )
    .await
    .unwrap();
    wait_for("hand edits to be reverted", CHANGE_TIMEOUT, || async {
        let d = deployments.get("mini-gateway").await?;
        let cm = cms.get("mini-gateway-routes").await?;
        let ok = d.spec.and_then(|s| s.replicas) == Some(1)
            && cm
                .data
                .unwrap_or_default()
                .get("routes.json")
                .is_some_and(|r| r.contains("requestsPerMinute"));
        Ok(ok.then_some(()))
    })
    .await
    .unwrap();
    println!(
        "figure: hand-edited Deployment and ConfigMap reverted after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // A service switched off is pruned: Deployment, Services, ServiceAccount.
    patch_spec(
        &sfs,
        "mini",
        json!({"services": {"catalog": {"enabled": false}}}),
    )
    .await;
    let services: Api<Service> = ns.api();
    let sas: Api<ServiceAccount> = ns.api();
    wait_for("catalog children to be pruned", CHANGE_TIMEOUT, || async {
        let gone = deployments.get_opt("mini-catalog").await?.is_none()
            && services.get_opt("mini-catalog").await?.is_none()
            && services.get_opt("mini-catalog-pods").await?.is_none()
            && sas.get_opt("mini-catalog").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await
    .unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(sf.status.unwrap().ready_services, "1/1");
}

#[tokio::test]
async fn paused_freezes_and_stopped_scales_to_zero_and_back() {
    let (_client, ns) = setup("pause").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();

    // Paused: a spec change is observed (status says Paused) but not applied.
    patch_spec(
        &sfs,
        "mini",
        json!({"paused": true, "services": {"catalog": {"replicas": 2}}}),
    )
    .await;
    wait_for(
        "Paused=True for the new generation",
        CHANGE_TIMEOUT,
        || async {
            let sf = sfs.get("mini").await?;
            Ok(condition(&sf, "Paused")
                .is_some_and(|c| {
                    c.status == "True" && c.observed_generation == sf.metadata.generation
                })
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let replicas = deployments
        .get("mini-catalog")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(
        replicas,
        Some(1),
        "a paused Storefront must not change its children"
    );

    // Unpaused: the change lands.
    patch_spec(&sfs, "mini", json!({"paused": false})).await;
    wait_for("catalog to get 2 replicas", CHANGE_TIMEOUT, || async {
        Ok((deployments
            .get("mini-catalog")
            .await?
            .spec
            .and_then(|s| s.replicas)
            == Some(2))
        .then_some(()))
    })
    .await
    .unwrap();

    // Stopped: everything to zero, kept; Ready with reason Stopped.
    patch_spec(&sfs, "mini", json!({"stopped": true})).await;
    let pods: Api<Pod> = ns.api();
    wait_for("every pod to be gone", READY_TIMEOUT, || async {
        let deps = deployments
            .list(&ListParams::default().labels(&selector("mini")))
            .await?;
        let zero = deps.items.len() == 2
            && deps
                .items
                .iter()
                .all(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0));
        let no_pods = pods
            .list(&ListParams::default().labels(&selector("mini")))
            .await?
            .items
            .is_empty();
        Ok((zero && no_pods).then_some(()))
    })
    .await
    .unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition(&sf, "Ready").unwrap().reason, "Stopped");

    // And back.
    patch_spec(&sfs, "mini", json!({"stopped": false})).await;
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition(&sf, "Ready").unwrap().reason, "AllServicesReady");
    assert_eq!(sf.status.unwrap().services["catalog"].ready, 2);
}

#[tokio::test]
async fn datastore_secrets_are_wired_into_pods() {
    let (_client, ns) = setup("wired").await;
    let sfs = create_minimal(&ns).await;
    patch_spec(
        &sfs,
        "mini",
        json!({"datastores": {"postgres": {"secretName": "shop-db"}}}),
    )
    .await;
    // The Secret does not exist yet: the shop holds (nothing applied) and names it.
    wait_for(
        "the Storefront to name the missing Secret",
        CHANGE_TIMEOUT,
        || async {
            let sf = sfs.get("mini").await?;
            Ok(condition(&sf, "Ready")
                .filter(|c| {
                    c.reason == "DatastoreSecretMissing"
                        && c.message.starts_with("Secret shop-db (key url) not found")
                })
                .map(|_| ()))
        },
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = ns.api();
    let d = deployments.get("mini-catalog").await.unwrap();
    let wired = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].env.clone())
        .unwrap_or_default()
        .iter()
        .any(|e| e.name == "DATABASE_URL");
    assert!(
        !wired,
        "DATABASE_URL wired from a Secret that does not exist"
    );
    // The Secret appears: wired without touching the Storefront.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "shop-db"},
        "stringData": {"url": "postgres://storefront@db.invalid:5432/storefront"}
    }))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for(
        "DATABASE_URL to be wired from the Secret",
        CHANGE_TIMEOUT,
        || async {
            let d = deployments.get("mini-catalog").await?;
            let env = d
                .spec
                .and_then(|s| s.template.spec)
                .map(|s| s.containers[0].env.clone().unwrap_or_default())
                .unwrap_or_default();
            Ok(env.iter().any(|e| e.name == "DATABASE_URL").then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_the_storefront_garbage_collects_every_child() {
    let (_client, ns) = setup("gc").await;
    let sfs = create_minimal(&ns).await;
    sfs.delete("mini", &DeleteParams::foreground())
        .await
        .unwrap();
    let deployments: Api<Deployment> = ns.api();
    let services: Api<Service> = ns.api();
    let sas: Api<ServiceAccount> = ns.api();
    let cms: Api<ConfigMap> = ns.api();
    let sel = selector("mini");
    wait_for(
        "every child to be garbage-collected",
        READY_TIMEOUT,
        || async {
            let left = names(&deployments, &sel).await.len()
                + names(&services, &sel).await.len()
                + names(&sas, &sel).await.len()
                + names(&cms, &sel).await.len();
            Ok((left == 0 && sfs.get_opt("mini").await?.is_none()).then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn operator_restart_loses_nothing_and_reconverges() {
    let (client, ns) = setup("restart").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();
    let before: Vec<_> = deployments
        .list(&ListParams::default().labels(&selector("mini")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| (d.name_any(), d.uid()))
        .collect();

    // Kill the operator pod; change the spec while it is down.
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    for p in pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=storefront-operator"))
        .await
        .unwrap()
    {
        pods.delete(
            &p.name_any(),
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    }
    let t0 = Instant::now();
    patch_spec(
        &sfs,
        "mini",
        json!({"services": {"gateway": {"replicas": 2}}}),
    )
    .await;
    wait_operator_available(&client).await.unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    println!(
        "figure: operator pod killed -> change applied and Ready: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(sf.status.unwrap().services["gateway"].ready, 2);
    let after: Vec<_> = deployments
        .list(&ListParams::default().labels(&selector("mini")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| (d.name_any(), d.uid()))
        .collect();
    assert_eq!(
        before, after,
        "children must survive an operator restart untouched"
    );
}

#[tokio::test]
async fn network_policies_follow_the_security_switch() {
    let (_client, ns) = setup("netpol").await;
    let sfs = create_minimal(&ns).await;
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = ns.api();
    let sel = selector("mini");
    patch_spec(&sfs, "mini", json!({"security": {"networkPolicies": true}})).await;
    wait_for("a NetworkPolicy per service", CHANGE_TIMEOUT, || async {
        Ok((names(&policies, &sel).await == ["mini-catalog", "mini-gateway"]).then_some(()))
    })
    .await
    .unwrap();
    patch_spec(
        &sfs,
        "mini",
        json!({"security": {"networkPolicies": false}}),
    )
    .await;
    wait_for(
        "the NetworkPolicies to be pruned",
        CHANGE_TIMEOUT,
        || async { Ok(names(&policies, &sel).await.is_empty().then_some(())) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn crash_looping_pods_are_reported_as_failure_points() {
    let (_client, ns) = setup("crash").await;
    let sfs: Api<Storefront> = ns.api();
    // The operator image exits at once when asked to run `catalog`: a real crash loop.
    let mut sf = storefront_from(MINIMAL, &ns.name).unwrap();
    sf.metadata.name = Some("crashy".into());
    sf.spec.image =
        std::env::var("E2E_OPERATOR_IMAGE").unwrap_or_else(|_| "storefront/operator:dev".into());
    sf.spec.services.remove("gateway");
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let t0 = Instant::now();
    let sf = wait_for(
        "a CrashLoopBackOff failure point",
        Duration::from_secs(150),
        || async {
            let sf = sfs.get("crashy").await?;
            let crashing = sf.status.as_ref().is_some_and(|s| {
                s.failure_points.iter().any(|f| {
                    f.kind == "Pod"
                        && f.reason == "CrashLoopBackOff"
                        && f.name.starts_with("crashy-catalog-")
                })
            });
            Ok(crashing.then_some(sf))
        },
    )
    .await
    .unwrap();
    println!(
        "figure: crash loop reported as a failure point after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let degraded = condition(&sf, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "FailurePoints")
    );
    assert_eq!(condition(&sf, "Ready").unwrap().status, "False");
}
