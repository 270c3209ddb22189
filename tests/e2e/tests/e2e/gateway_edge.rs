//! The gateway's edge on a real cluster (issue 7), with the real workload image and the
//! cluster's datastores: a small shop (gateway and catalog, catalog on the core tier).
//! 0. The public Service (`edge-gateway`, port `http` only) answers the API and not the
//!    operations endpoints: `/metrics` and `/routes` through it are the gateway's 404 (issue
//!    21); the pod's `ops` port (8081) answers them.
//! 1. A rate limit changed in the Storefront reaches the gateway through the API watch of its
//!    route-table ConfigMap (the Role the operator renders): timed from the moment the test
//!    sees the ConfigMap change to the moment the gateway's `GET /routes` shows the new limit;
//!    asserted ≤ 2 s (a mounted ConfigMap takes a minute or more).
//! 2. Bad tables written straight into the ConfigMap (the Storefront paused, so the operator
//!    leaves them): garbage, a zero limit, the ConfigMap deleted. The gateway keeps the last
//!    good table and keeps serving the product listing; a good table written by hand
//!    applies; unpaused, the operator's own table is back.
//! 3. Catalog scaled to 0: after a few failing requests its breaker opens, the gateway marks
//!    its pod (`storefront.dev/CircuitsClosed=False`) and the Storefront's status shows a
//!    `CircuitOpen` failure point naming catalog; catalog back → the failure point clears.
//! 4. Catalog at 2 replicas: within 20 s of both being ready, the gateway's calls reach both
//!    pods, each at least 30 % of them (the pods of the route's headless Service, from the
//!    watched EndpointSlices; one HTTP/2 connection through the cluster IP would reach one).
//!
//! Timings are printed as `figure:` lines.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use storefront_crds::Storefront;
use storefront_e2e::{
    GATEWAY_OPS_PORT, TestNamespace, client, datastores::DatastoreUrls, ensure_operator,
    forward::forward, real_workload_image, service_get, shopper::Shopper, storefront_from,
    wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const ROUTES: &str = "edge-gateway-routes";
/// The issue's bound: a sale's limits apply within 2 s of the ConfigMap's change.
const APPLY_BOUND: Duration = Duration::from_secs(2);

const SHOP: &str = "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {name: edge}
spec:
  image: placeholder
  datastores:
    postgres: {secretName: storefront-postgres}
    redis: {secretName: storefront-redis}
    broker: {secretName: storefront-nats}
  services:
    gateway: {replicas: 1}
    catalog:
      replicas: 1
      tier: core
      rateLimit: {requestsPerMinute: 6000, burst: 600}
      env: [{name: CATALOG_SEED, value: '5'}, {name: CATALOG_PRODUCTS, value: '200'}]
";

/// Polls `check` every 20 ms (the 500 ms of `wait_for` is too coarse to time a reload).
async fn fast_wait<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last = None;
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = Some(format!("{e:#}")),
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what} (last error: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /routes` on the gateway pod's ops port (`ops`: a forward to [`GATEWAY_OPS_PORT`]).
async fn routes(ops: &Shopper) -> anyhow::Result<Value> {
    let a = ops.call("GET", "/routes", &[], None).await?;
    anyhow::ensure!(a.status == 200, "GET /routes: {} {}", a.status, a.body);
    Ok(a.body)
}

fn catalog_rpm(routes: &Value) -> Option<i64> {
    routes["limits"]["catalog"]["requestsPerMinute"].as_i64()
}

async fn listing(gw: &Shopper) -> u16 {
    gw.call("GET", "/api/v1/products?limit=5", &[], None)
        .await
        .map_or(0, |a| a.status)
}

async fn set_routes(cms: &Api<ConfigMap>, text: &str) {
    cms.patch(
        ROUTES,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"routes.json": text}})),
    )
    .await
    .unwrap();
}

/// Waits until the gateway refuses what was written (`why` in its refusal, read on its `ops`
/// port), and checks it kept the last good table (`rpm`, `generation`) and serves the listing.
async fn refused(gw: &Shopper, ops: &Shopper, why: &str, rpm: i64, generation: &Value) {
    let r = fast_wait(why, Duration::from_secs(10), || async {
        let r = routes(ops).await?;
        Ok(r["refused"]
            .as_str()
            .is_some_and(|e| e.contains(why))
            .then_some(r))
    })
    .await;
    assert_eq!(catalog_rpm(&r), Some(rpm), "the last good table stays: {r}");
    assert_eq!(&r["generation"], generation, "nothing new applied: {r}");
    assert_eq!(listing(gw).await, 200, "the gateway keeps serving");
    println!("refused as expected ({why}): {}", r["refused"]);
}

fn failure_points(sf: &Storefront) -> Vec<(String, String, String, String)> {
    sf.status
        .iter()
        .flat_map(|s| &s.failure_points)
        .map(|f| {
            (
                f.kind.clone(),
                f.name.clone(),
                f.reason.clone(),
                f.message.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_apply_within_two_seconds_bad_tables_are_refused_and_open_breakers_are_reported() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover()
        .expect("the real shop needs the cluster's datastores (tests/e2e/cluster/datastores)");
    let ns = TestNamespace::create(&client, "edge").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(SHOP, &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "edge", "True", READY_TIMEOUT)
        .await
        .unwrap();

    let pods: Api<Pod> = ns.api();
    let cms: Api<ConfigMap> = ns.api();
    let selector = "app.kubernetes.io/instance=edge,app.kubernetes.io/component=gateway";
    let gateway_pod = wait_for("the gateway pod", READY_TIMEOUT, || async {
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        Ok(list
            .items
            .iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .map(ResourceExt::name_any))
    })
    .await
    .unwrap();
    let (addr, _forward) = forward(pods.clone(), &gateway_pod, 8080).await.unwrap();
    let gw = Shopper::new(addr);
    let (ops_addr, _ops_forward) = forward(pods.clone(), &gateway_pod, GATEWAY_OPS_PORT)
        .await
        .unwrap();
    let ops = Shopper::new(ops_addr);
    let first = fast_wait(
        "the table from the API",
        Duration::from_secs(30),
        || async {
            let r = routes(&ops).await?;
            Ok((r["source"] == "api" && catalog_rpm(&r) == Some(6000)).then_some(r))
        },
    )
    .await;
    println!("gateway routes: {first}");
    // A shop just turned Ready: its catalog's endpoint may not be programmed into the node's
    // service rules yet (the gateway's retries bridge most of that second, not all of it on
    // a busy CI node), so the listing is waited for, then required below.
    fast_wait("the product listing", Duration::from_secs(30), || async {
        Ok((listing(&gw).await == 200).then_some(()))
    })
    .await;

    // 0. The public Service: the API, not the operations endpoints.
    ops_endpoints_are_off_the_public_service(&client, &ns.name, &ops).await;

    // 1. A limit change through the Storefront: ConfigMap → gateway.
    let mut figures = Vec::new();
    for rpm in [1234, 4321] {
        let patched = Instant::now();
        sfs.patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"catalog": {
                "rateLimit": {"requestsPerMinute": rpm, "burst": 100}}}}})),
        )
        .await
        .unwrap();
        let needle = format!("\"requestsPerMinute\":{rpm}");
        let (rv, changed) = fast_wait("the operator's new table", Duration::from_secs(30), || {
            let needle = needle.clone();
            let cms = cms.clone();
            async move {
                let cm = cms.get(ROUTES).await?;
                let text = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get("routes.json"))
                    .cloned()
                    .unwrap_or_default()
                    .replace([' ', '\n'], "");
                Ok(text
                    .contains(&needle)
                    .then(|| (cm.resource_version().unwrap_or_default(), Instant::now())))
            }
        })
        .await;
        let r = fast_wait(
            "the gateway's new table",
            Duration::from_secs(30),
            || async {
                let r = routes(&ops).await?;
                Ok((catalog_rpm(&r) == Some(rpm)).then_some(r))
            },
        )
        .await;
        let applied = changed.elapsed();
        assert_eq!(r["resourceVersion"], rv.as_str(), "{r}");
        println!(
            "figure: route table applied in {} ms after the test saw the ConfigMap change (polled every 20 ms; {} ms after the Storefront patch)",
            applied.as_millis(),
            patched.elapsed().as_millis()
        );
        figures.push(applied);
    }
    for applied in &figures {
        assert!(*applied <= APPLY_BOUND, "applied in {applied:?}");
    }

    // 2. Bad tables, with the operator paused so that it leaves them in place.
    sfs.patch(
        "edge",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    wait_for("the Storefront paused", READY_TIMEOUT, || async {
        let sf = sfs.get("edge").await?;
        Ok(storefront_e2e::condition(&sf, "Paused")
            .is_some_and(|c| c.status == "True")
            .then_some(()))
    })
    .await
    .unwrap();
    let good = cms.get(ROUTES).await.unwrap().data.unwrap()["routes.json"].clone();
    let generation = routes(&ops).await.unwrap()["generation"].clone();
    set_routes(&cms, "{ this is not a route table").await;
    refused(&gw, &ops, "failed to parse", 4321, &generation).await;
    set_routes(&cms, &good.replace("4321", "0")).await;
    refused(&gw, &ops, "requestsPerMinute 0", 4321, &generation).await;
    cms.delete(ROUTES, &DeleteParams::default()).await.unwrap();
    refused(&gw, &ops, "is missing", 4321, &generation).await;
    // A good table written by hand applies.
    let by_hand = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(ROUTES.into()),
            ..Default::default()
        },
        data: Some([("routes.json".to_string(), good.replace("4321", "777"))].into()),
        ..ConfigMap::default()
    };
    let written = Instant::now();
    cms.create(&PostParams::default(), &by_hand).await.unwrap();
    let r = fast_wait(
        "the hand-written table",
        Duration::from_secs(10),
        || async {
            let r = routes(&ops).await?;
            Ok((catalog_rpm(&r) == Some(777)).then_some(r))
        },
    )
    .await;
    assert!(r["refused"].is_null(), "{r}");
    println!(
        "figure: route table applied in {} ms after a recreated ConfigMap",
        written.elapsed().as_millis()
    );
    // Unpaused: the operator's own table is back.
    sfs.patch(
        "edge",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    fast_wait(
        "the operator's table again",
        Duration::from_secs(30),
        || async { Ok((catalog_rpm(&routes(&ops).await?) == Some(4321)).then_some(())) },
    )
    .await;

    // 3. Catalog down: its breaker opens, and the Storefront says so.
    sfs.patch(
        "edge",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"services": {"catalog": {"replicas": 0}}}})),
    )
    .await
    .unwrap();
    let catalog = "app.kubernetes.io/instance=edge,app.kubernetes.io/component=catalog";
    wait_for("no catalog pods", READY_TIMEOUT, || async {
        let list = pods.list(&ListParams::default().labels(catalog)).await?;
        Ok(list.items.is_empty().then_some(()))
    })
    .await
    .unwrap();
    let down = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(listing(&gw).await);
    }
    println!("listing with catalog down: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let fp = wait_for(
        "a CircuitOpen failure point for catalog",
        Duration::from_secs(30),
        || async {
            let sf = sfs.get("edge").await?;
            Ok(failure_points(&sf)
                .into_iter()
                .find(|(k, n, r, _)| k == "CircuitBreaker" && n == "catalog" && r == "CircuitOpen"))
        },
    )
    .await
    .unwrap();
    println!(
        "figure: CircuitOpen failure point {:.1}s after the first failing request: {fp:?}",
        down.elapsed().as_secs_f64()
    );
    assert!(fp.3.contains(&gateway_pod), "{fp:?}");
    let pod = pods.get(&gateway_pod).await.unwrap();
    let cond = pod
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "storefront.dev/CircuitsClosed")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("CircuitOpen")),
        "{cond:?}"
    );

    // Catalog back: calls succeed again and the failure point clears.
    sfs.patch(
        "edge",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"services": {"catalog": {"replicas": 1}}}})),
    )
    .await
    .unwrap();
    wait_for("the listing again", READY_TIMEOUT, || async {
        Ok((listing(&gw).await == 200).then_some(()))
    })
    .await
    .unwrap();
    let back = Instant::now();
    wait_for(
        "no CircuitOpen failure point",
        Duration::from_secs(60),
        || async {
            // Traffic closes a half-open breaker.
            listing(&gw).await;
            let sf = sfs.get("edge").await?;
            Ok((!failure_points(&sf)
                .iter()
                .any(|(_, _, r, _)| r == "CircuitOpen"))
            .then_some(()))
        },
    )
    .await
    .unwrap();
    println!(
        "figure: CircuitOpen failure point cleared {:.1}s after catalog answered again",
        back.elapsed().as_secs_f64()
    );

    // 4. Catalog at 2 replicas: the gateway spreads its calls over both pods (through the
    //    headless `edge-catalog-pods` Service), not over the one its connection through the
    //    cluster IP happened to reach.
    sfs.patch(
        "edge",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"services": {"catalog": {"replicas": 2}}}})),
    )
    .await
    .unwrap();
    let two = wait_for("two ready catalog pods", READY_TIMEOUT, || async {
        let list = pods.list(&ListParams::default().labels(catalog)).await?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
            .map(ResourceExt::name_any)
            .collect();
        Ok((ready.len() == 2).then_some(ready))
    })
    .await
    .unwrap();
    let mut counters = Vec::new();
    for name in &two {
        let (addr, task) = forward(pods.clone(), name, 8080).await.unwrap();
        counters.push((Shopper::new(addr), task));
    }
    let served = || async {
        let mut counts = Vec::new();
        for (pod, _) in &counters {
            counts.push(catalog_calls(pod).await?);
        }
        anyhow::Ok(counts)
    };
    // The new pod joins once its EndpointSlice says ready and the gateway's next read of
    // the watched slices (every second) has run: measured 0.2 s. Bounded at 20 s, which the
    // DNS path (cluster DNS caches answers for 30 s; measured 28-30 s) does not meet.
    let started = Instant::now();
    let split = wait_for(
        "calls on both catalog pods",
        Duration::from_secs(20),
        || async {
            let before = served().await?;
            let mut ok = 0;
            for _ in 0..40 {
                ok += u32::from(listing(&gw).await == 200);
            }
            let after = served().await?;
            let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let total: u64 = delta.iter().sum();
            Ok(
                (ok >= 20 && total > 0 && delta.iter().all(|d| d * 10 >= total * 3))
                    .then_some((delta, ok)),
            )
        },
    )
    .await
    .unwrap();
    println!(
        "figure: catalog calls over 2 pods: {:?} of 40 listings ({} answered 200), {:.1}s after both were ready",
        split.0,
        split.1,
        started.elapsed().as_secs_f64()
    );
}

/// Through the gateway's public Service (the API server's service proxy to `edge-gateway`,
/// the way an Ingress or a LoadBalancer reaches it): the API answers, `/metrics` and `/routes`
/// are the gateway's 404 JSON, and the Service has no other port to try. The pod's ops port
/// (`ops`) answers both.
async fn ops_endpoints_are_off_the_public_service(
    client: &kube::Client,
    namespace: &str,
    ops: &Shopper,
) {
    let svc: Api<Service> = Api::namespaced(client.clone(), namespace);
    let ports: Vec<(Option<String>, i32)> = svc
        .get("edge-gateway")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(
        ports,
        [(Some("http".to_string()), 8080)],
        "the public Service's ports"
    );
    let public = |path: &'static str| service_get(client, namespace, "edge-gateway", "http", path);
    let (status, body) = public("/api/v1/openapi.json").await.unwrap();
    assert_eq!(status, 200, "the API through the public Service: {body}");
    for path in ["/metrics", "/routes"] {
        let (status, body) = public(path).await.unwrap();
        assert_eq!(status, 404, "{path} through the public Service: {body}");
        assert!(
            body.contains(r#""code":"not_found""#),
            "{path}: the gateway's own 404, not the proxy's: {body}"
        );
    }
    let (status, metrics) = ops.get_text("/metrics").await.unwrap();
    assert_eq!(status, 200, "/metrics on the pod's ops port: {metrics}");
    assert!(
        metrics.contains("storefront_requests_total{service=\"gateway\""),
        "the gateway's request metrics are on its ops port: {metrics}"
    );
    println!("the public Service answers /metrics and /routes with 404; the ops port with 200");
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The gRPC calls a catalog pod has served (`storefront_requests_total` of its Catalog
/// methods), read from its `/metrics`.
async fn catalog_calls(pod: &Shopper) -> anyhow::Result<u64> {
    let (status, text) = pod.get_text("/metrics").await?;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("storefront_requests_total{")
                && l.contains("service=\"catalog\"")
                && l.contains("Catalog/")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}
