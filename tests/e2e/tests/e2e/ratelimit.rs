//! The sample's shop-wide budget (5,000 requests/minute, burst 500) holds cluster-wide on
//! the real shop: loadgen offers twice the budget for a minute, split evenly over the
//! gateway's pods (straight to each pod, so every replica sees its share), first with 1
//! gateway replica and then with 3. Both times the shop admits what one exact limiter would
//! (burst + rate × time) within ±2 % — not 3× with 3 replicas, as per-replica limiters do —
//! and the refusals are 429s with the IETF headers.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use storefront_crds::Storefront;
use storefront_e2e::{
    GATEWAY_OPS_PORT, TestNamespace, client, datastores::DatastoreUrls, ensure_operator, loadgen,
    real_workload_image, sample, storefront_from, wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long each run offers twice the budget.
const RUN_SECONDS: u64 = 60;

/// The sample's gateway budget, on a shop small enough for two cores.
fn shop_yaml(rpm: u32, burst: u32) -> String {
    format!(
        "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {{name: shop}}
spec:
  image: placeholder
  # This area measures the shop-wide budget, offered from one address: no per-client limits.
  clientLimits: {{enabled: false}}
  datastores:
    postgres: {{secretName: storefront-postgres}}
    postgresReadReplica: {{secretName: storefront-postgres-replica}}
    redis: {{secretName: storefront-redis}}
    broker: {{secretName: storefront-nats}}
  services:
    gateway:
      replicas: 1
      rateLimit: {{requestsPerMinute: {rpm}, burst: {burst}}}
    auth: {{replicas: 1}}
    catalog:
      replicas: 1
      env: [{{name: CATALOG_SEED, value: '5'}}, {{name: CATALOG_PRODUCTS, value: '500'}}]
    orders: {{replicas: 1}}
    payments: {{replicas: 1}}
    inventory:
      replicas: 1
      env: [{{name: CATALOG_SEED, value: '5'}}, {{name: CATALOG_PRODUCTS, value: '500'}}]
    recommendations: {{replicas: 1}}
"
    )
}

/// Ready gateway pod IPs once exactly `n` run.
async fn gateway_ips(pods: &Api<Pod>, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} ready gateway pods"),
        READY_TIMEOUT,
        || async {
            let list = pods
                .list(
                    &ListParams::default().labels(
                        "app.kubernetes.io/instance=shop,app.kubernetes.io/component=gateway",
                    ),
                )
                .await?;
            let ready: Vec<String> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            Ok((ready.len() == n && list.items.len() == n).then_some(ready))
        },
    )
    .await
    .unwrap()
}

/// Waits until every gateway pod counts `n` replicas sharing the budget (its heartbeats, on
/// the `/metrics` of its ops port).
async fn replicas_seen(ips: &[String], n: usize) {
    wait_for(
        &format!("every gateway counting {n} replicas"),
        Duration::from_secs(60),
        || async {
            for ip in ips {
                let metrics = http_get(&format!("{ip}:{GATEWAY_OPS_PORT}"), "/metrics").await?;
                let line = format!("storefront_ratelimit_replicas {n}");
                if !metrics.lines().any(|l| l == line) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
    .unwrap();
}

/// A plain HTTP/1.1 GET (the harness has no HTTP client of its own): the body.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Offers twice the budget for [`RUN_SECONDS`], split over `ips`; returns (admitted,
/// refused, unanswered).
async fn offer_twice_the_budget(ips: &[String], rpm: u32) -> (u64, u64, u64) {
    let per_pod = f64::from(rpm) * 2.0 / 60.0 / ips.len() as f64;
    let runs = ips.iter().map(|ip| {
        let target = format!("http://{ip}:8080");
        let rate = format!("{per_pod:.3}");
        async move {
            loadgen::run(
                &target,
                &[
                    "--mix",
                    "browse=1",
                    "--users",
                    "1",
                    "--skus",
                    "10",
                    "--rate",
                    &rate,
                    "--duration",
                    &format!("{RUN_SECONDS}s"),
                ],
            )
            .await
        }
    });
    let summaries = futures::future::join_all(runs).await;
    let (mut admitted, mut refused, mut unanswered) = (0, 0, 0);
    for s in summaries {
        let s = s.unwrap();
        let sent = loadgen::total(&s, "sent");
        let limited = loadgen::total(&s, "429");
        let lost = loadgen::total(&s, "transportErrors") + loadgen::total(&s, "unfinished");
        admitted += sent - limited - lost;
        refused += limited;
        unanswered += lost;
    }
    (admitted, refused, unanswered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shop_wide_budget_holds_with_one_and_three_gateways() {
    // The sample's budget, read from the sample so the two cannot drift apart.
    let sample_sf = storefront_from(&sample("storefront.yaml").unwrap(), "x").unwrap();
    let limit = sample_sf.spec.services["gateway"]
        .rate_limit
        .clone()
        .expect("the sample's gateway has a rate limit");
    let (rpm, burst) = (limit.requests_per_minute, limit.effective_burst());
    assert_eq!((rpm, burst), (5_000, 500), "the sample's budget");

    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover().expect("the cluster's datastores");
    let ns = TestNamespace::create(&client, "ratelimit").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(&shop_yaml(rpm, burst), &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();

    // The headers, from one request.
    let ips = gateway_ips(&pods, 1).await;
    let head = http_get(&format!("{}:8080", ips[0]), "/api/v1/products?limit=1")
        .await
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.contains(&format!(r#"ratelimit-policy: "gateway";q={rpm};w=60"#)),
        "{head}"
    );
    assert!(head.contains(r#"ratelimit: "gateway";r="#), "{head}");
    assert!(
        !head.contains("storefront-ratelimit: fallback"),
        "Redis is up: the budget is shared, not the fallback: {head}"
    );

    let exact = f64::from(burst) + f64::from(rpm) * RUN_SECONDS as f64 / 60.0;
    for replicas in [1usize, 3] {
        if replicas > 1 {
            let patch =
                serde_json::json!({"spec": {"services": {"gateway": {"replicas": replicas}}}});
            sfs.patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
        let ips = gateway_ips(&pods, replicas).await;
        replicas_seen(&ips, replicas).await;
        // A full bucket again: the last run's debt (at most the burst's span, 6 s) is paid.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let (admitted, refused, unanswered) = offer_twice_the_budget(&ips, rpm).await;
        let ratio = admitted as f64 / exact;
        println!(
            "figure: {replicas} gateway replica(s), {} rpm offered for {RUN_SECONDS} s: admitted \
             {admitted} (an exact limiter: {exact:.0}) → {ratio:.3}; 429: {refused}; unanswered: \
             {unanswered}",
            rpm * 2
        );
        assert!(
            (0.98..=1.02).contains(&ratio),
            "{replicas} replica(s): admitted {admitted}, {ratio:.3} of the budget"
        );
        assert!(
            refused as f64 > exact * 0.8,
            "about half the offered requests are refused: {refused}"
        );
        assert!(
            (unanswered as f64) < exact * 0.01,
            "requests went unanswered: {unanswered}"
        );
    }
}

/// Redis unreachable from the start (the shop's Redis Secret names a closed port): the
/// gateway still limits — each replica its share of the budget — and says so three ways:
/// the `Storefront-RateLimit: fallback` header, its metric, and a `RateLimiterDegraded`
/// failure point in the Storefront's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_the_gateway_limits_on_its_share_and_says_so() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let mut urls = DatastoreUrls::discover().expect("the cluster's datastores");
    // The node's address on a port nothing listens on: refused at once.
    let host = urls
        .postgres
        .rsplit('@')
        .next()
        .and_then(|h| h.split(':').next())
        .unwrap()
        .to_string();
    urls.redis = format!("redis://{host}:1");
    let ns = TestNamespace::create(&client, "noredis").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(&shop_yaml(60, 5), &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    let ips = gateway_ips(&pods, 1).await;
    let addr = format!("{}:8080", ips[0]);

    let point = wait_for(
        "a RateLimiterDegraded failure point",
        Duration::from_secs(60),
        || async {
            let sf = sfs.get("shop").await?;
            Ok(sf.status.and_then(|s| {
                s.failure_points
                    .into_iter()
                    .find(|p| p.reason == "RateLimiterDegraded")
            }))
        },
    )
    .await
    .unwrap();
    println!(
        "figure: failure point {} {} {}: {}",
        point.kind, point.name, point.reason, point.message
    );

    // 60 per minute with a burst of 5, one replica: the first 5 pass, then 429s.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let head = http_get(&addr, "/api/v1/products?limit=1")
            .await
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            head.contains("storefront-ratelimit: fallback; replicas=1"),
            "{head}"
        );
        statuses.push(head.split(' ').nth(1).unwrap_or("?").to_string());
    }
    let limited = statuses.iter().filter(|s| *s == "429").count();
    assert!(
        (2..=3).contains(&limited),
        "never unlimited: 5 (+1 refilled) of 8 pass: {statuses:?}"
    );
    let ops = format!("{}:{GATEWAY_OPS_PORT}", ips[0]);
    let metrics = http_get(&ops, "/metrics").await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "storefront_ratelimit_degraded 1"),
        "the metric says so"
    );
}
