//! FlashSales against a real cluster with the operator running in it: a one-off sale raises
//! HPA floors at `start − prewarm`, opens the route table's limits at the start (once the
//! capacity is Ready), and restores every child exactly after the end; overlapping sales
//! (maximum wins) and deletion mid-sale; a recurring sale runs its cycles.
//!
//! Child state is sampled every 100 ms through the API server; each observed boundary prints a
//! `figure: boundary …` line with its lag behind the scheduled instant (figures, not timed
//! assertions — the assertions allow the 2 s the design promises plus the sampling period).
//!
//! By topic: the windows of a sale (one-off, overlapping, recurring: `windows.rs`) and the
//! sales' conditions (at risk, late, a missing Storefront: `conditions.rs`). The helpers below
//! are shared.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1::ConfigMap,
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use storefront_crds::{FlashSale, SalePhase, Storefront};
use storefront_e2e::{
    TestNamespace, client, ensure_operator, storefront_from, wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// Design promise for a boundary, plus the 100 ms sampling period and API round trips.
const BOUNDARY_SLACK: Duration = Duration::from_millis(2500);

const SHOP: &str = "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {name: shop}
spec:
  image: placeholder
  services:
    gateway: {autoscaling: {min: 1, max: 3}, rateLimit: {requestsPerMinute: 5000, burst: 500}}
    orders: {replicas: 1, rateLimit: {requestsPerMinute: 1000, burst: 100}}
";

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, prefix).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    sfs.create(
        &PostParams::default(),
        &storefront_from(SHOP, &ns.name).unwrap(),
    )
    .await
    .unwrap();
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    (client, ns)
}

/// What a sale changes, read from the children.
#[derive(Debug, Clone, PartialEq)]
struct Children {
    gateway_min: i32,
    gateway_max: i32,
    orders_replicas: i32,
    gateway_rpm: u64,
    orders_rpm: u64,
    routes: String,
    hpa_spec: serde_json::Value,
    orders_spec: serde_json::Value,
}

async fn read(ns: &TestNamespace) -> Children {
    let hpa = ns
        .api::<HorizontalPodAutoscaler>()
        .get("shop-gateway")
        .await
        .unwrap();
    let orders = ns.api::<Deployment>().get("shop-orders").await.unwrap();
    let cm = ns.api::<ConfigMap>().get("shop-gateway-routes").await;
    let routes = cm
        .ok()
        .and_then(|c| c.data?.remove("routes.json"))
        .unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(&routes).unwrap_or_default();
    let rpm = |svc: &str| -> u64 {
        if svc == "gateway" {
            return doc["gatewayRateLimit"]["requestsPerMinute"]
                .as_u64()
                .unwrap_or(0);
        }
        doc["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["service"] == svc)
            .and_then(|r| r["rateLimit"]["requestsPerMinute"].as_u64())
            .unwrap_or(0)
    };
    let spec = hpa.spec.clone().unwrap();
    Children {
        gateway_min: spec.min_replicas.unwrap_or(1),
        gateway_max: spec.max_replicas,
        orders_replicas: orders.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        gateway_rpm: rpm("gateway"),
        orders_rpm: rpm("orders"),
        routes,
        hpa_spec: serde_json::to_value(&hpa.spec).unwrap(),
        orders_spec: serde_json::to_value(&orders.spec).unwrap(),
    }
}

/// Samples the children every 100 ms until `done` holds; returns the instant it first held.
async fn when(
    ns: &TestNamespace,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Children) -> bool,
) -> Timestamp {
    let t0 = Instant::now();
    loop {
        let c = read(ns).await;
        if done(&c) {
            return Timestamp::now();
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; children: gateway min {} max {} rpm {}, orders replicas {} rpm {}",
            c.gateway_min,
            c.gateway_max,
            c.gateway_rpm,
            c.orders_replicas,
            c.orders_rpm
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`when`], but `None` when `done` does not hold within `timeout`.
async fn when_within(
    ns: &TestNamespace,
    timeout: Duration,
    done: impl Fn(&Children) -> bool,
) -> Option<Timestamp> {
    let t0 = Instant::now();
    loop {
        if done(&read(ns).await) {
            return Some(Timestamp::now());
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the lag of an observed boundary and checks it is within the slack (never early).
fn boundary(name: &str, scheduled: Timestamp, observed: Timestamp) -> SignedDuration {
    let lag = observed.duration_since(scheduled);
    println!(
        "figure: boundary {name} scheduled={scheduled} observed={observed} lag_ms={}",
        lag.as_millis()
    );
    assert!(
        lag >= SignedDuration::from_millis(-150),
        "{name}: changed {lag:?} before its time"
    );
    assert!(
        lag <= SignedDuration::try_from(BOUNDARY_SLACK).unwrap(),
        "{name}: changed {lag:?} after its time"
    );
    lag
}

fn sale_yaml(name: &str, window: &str, services: &str) -> FlashSale {
    serde_yaml::from_str(&format!(
        "apiVersion: commerce.storefront.dev/v1alpha1\nkind: FlashSale\nmetadata: {{name: {name}}}\nspec:\n  storefrontRef: shop\n{window}  services:\n{services}"
    ))
    .unwrap()
}

/// `t` rounded up to the next whole second, plus `secs`.
fn at_second(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + 1 + secs).unwrap()
}

async fn wait_phase(sales: &Api<FlashSale>, name: &str, phase: SalePhase, timeout: Duration) {
    wait_for(&format!("sale {name} {phase:?}"), timeout, || async {
        let s = sales.get(name).await?;
        Ok((s.status.and_then(|s| s.phase) == Some(phase)).then_some(()))
    })
    .await
    .unwrap();
}

/// Waits for an Event on an object of `kind` with `reason` whose note contains `words`.
async fn wait_event(ns: &TestNamespace, kind: &str, reason: &str, words: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    wait_for(
        &format!("a {reason} Event on the {kind} saying {words:?}"),
        Duration::from_secs(15),
        || async {
            let found = events
                .list(&Default::default())
                .await?
                .items
                .iter()
                .any(|e| {
                    e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
                        && e.reason.as_deref() == Some(reason)
                        && e.note.as_deref().is_some_and(|n| n.contains(words))
                });
            Ok(found.then_some(()))
        },
    )
    .await
    .unwrap();
}

mod conditions;
mod windows;
