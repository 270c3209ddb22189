//! Online resharding of the real shop: the workload image on the cluster's PostgreSQL and
//! NATS, checkout traffic all along (one order every 200 ms through the gateway), and the
//! inventory's shard count patched 4 → 5 → 3 → 4, the operator pod deleted mid-copy in the
//! first change. After each change: the ring has the new count at the next epoch, status
//! walked the phases (the Events say each step), every order placed meanwhile settles
//! CONFIRMED (stock is plenty), and every sampled SKU's stock is its stock before minus what
//! confirmed orders took, with nothing reserved. Figures: each
//! change's duration, the switch's write pause (status), keys moved, the orders' p99 and
//! errors during the change.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use storefront_crds::{ReshardPhase, Storefront};
use storefront_e2e::{
    OPERATOR_NAMESPACE, TestNamespace, client, datastores::DatastoreUrls, ensure_operator,
    forward::forward, real_workload_image, shopper::Shopper, storefront_from, wait_for,
    wait_operator_available, wait_ready,
};
use tokio::sync::Mutex;

const READY_TIMEOUT: Duration = Duration::from_secs(300);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// A change's bound: shards starting, three Jobs, and going down the routers' grace.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(420);

const SHOP: &str = "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {name: shop}
spec:
  image: placeholder
  datastores:
    postgres: {secretName: storefront-postgres}
    postgresReadReplica: {secretName: storefront-postgres-replica}
    redis: {secretName: storefront-redis}
    broker: {secretName: storefront-nats}
  services:
    gateway: {replicas: 1}
    auth: {replicas: 1}
    catalog:
      replicas: 1
      env: [{name: CATALOG_SEED, value: '5'}, {name: CATALOG_PRODUCTS, value: '2000'}]
    orders: {replicas: 1}
    payments:
      replicas: 1
      env: [{name: PAYMENT_FAILURE_RATE, value: '0'}, {name: PAYMENT_LATENCY_MS, value: '20'}]
    inventory:
      sharding: {shards: 4, replicasPerShard: 1}
      resources: {requests: {cpu: 10m, memory: 32Mi}}
      env: [{name: CATALOG_SEED, value: '5'}, {name: CATALOG_PRODUCTS, value: '2000'}]
";

/// What the traffic saw.
#[derive(Default)]
struct Traffic {
    /// (sku, order id) of every accepted order.
    placed: Vec<(String, String)>,
    /// Non-202 answers to POST /orders (status, body).
    errors: Vec<(u16, String)>,
    /// POST /orders latencies in ms, with the change running then (its index) or not.
    latencies: Vec<(Option<usize>, f64)>,
}

/// The SKU's stock once nothing is reserved (commit and release follow the order's status).
async fn settled_stock(shopper: &Shopper, sku: &str) -> serde_json::Value {
    wait_for(
        &format!("{sku} with nothing reserved"),
        SETTLE_TIMEOUT,
        || {
            let path = format!("/api/v1/inventory/{sku}");
            async move {
                let a = shopper.call("GET", &path, &[], None).await?;
                Ok((a.status == 200 && a.body["reserved"] == 0).then_some(a.body))
            }
        },
    )
    .await
    .unwrap()
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn ring(sfs: &Api<Storefront>) -> (i32, i64, bool) {
    let sf = sfs.get("shop").await.unwrap();
    let r = sf
        .status
        .and_then(|s| s.rings.get("inventory").cloned())
        .unwrap_or_default();
    (r.shards, r.epoch, r.resharding.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shop_goes_four_to_five_to_three_to_four_shards_under_checkout_losing_nothing() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover()
        .expect("the real shop needs the cluster's datastores (tests/e2e/cluster/datastores)");
    let ns = TestNamespace::create(&client, "reshard").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    // The catalog's size: 2,000 SKUs here; tests/e2e/bench/reshard runs 10k and 100k.
    let products = std::env::var("E2E_RESHARD_PRODUCTS").unwrap_or_else(|_| "2000".into());
    let shop = SHOP.replace("value: '2000'", &format!("value: '{products}'"));
    let mut sf = storefront_from(&shop, &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(ring(&sfs).await, (4, 1, false), "a new shop's ring");

    let pods: Api<Pod> = ns.api();
    let gateway_pod = wait_for("the gateway pod", READY_TIMEOUT, || async {
        let list = pods
            .list(
                &ListParams::default()
                    .labels("app.kubernetes.io/instance=shop,app.kubernetes.io/component=gateway"),
            )
            .await?;
        Ok(list
            .items
            .iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(ResourceExt::name_any))
    })
    .await
    .unwrap();
    let (addr, _forward) = forward(pods.clone(), &gateway_pod, 8080).await.unwrap();
    let mut ann = Shopper::new(addr);
    ann.sign_up_and_in("ann@example.com").await.unwrap();
    // 60 SKUs from the catalog, spread over every shard by the hash.
    let listing = ann
        .call("GET", "/api/v1/products?limit=60", &[], None)
        .await
        .unwrap();
    assert_eq!(listing.status, 200, "{}", listing.body);
    let mut skus: Vec<String> = listing.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect();
    skus.sort();
    skus.dedup();
    assert!(skus.len() >= 20, "{skus:?}");
    let mut before = BTreeMap::new();
    for sku in &skus {
        let s = settled_stock(&ann, sku).await;
        before.insert(sku.clone(), s["stock"].as_i64().unwrap());
    }
    // Only SKUs with plenty of stock take orders (each gets about 6), so that every order
    // must confirm: an out-of-stock answer would be a lost unit.
    skus.retain(|sku| before[sku] >= 40);
    before.retain(|sku, _| skus.contains(sku));
    assert!(skus.len() >= 20, "enough SKUs with stock: {before:?}");

    // Checkout traffic, all along.
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let change: Arc<std::sync::Mutex<Option<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (ann, skus, traffic, change, stop) = (
            ann.clone(),
            skus.clone(),
            traffic.clone(),
            change.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sku = skus[(n * 7) % skus.len()].clone();
                let during = *change.lock().unwrap();
                let t = Instant::now();
                let answer = ann
                    .call(
                        "POST",
                        "/api/v1/orders",
                        &[("idempotency-key", &format!("load-{n}"))],
                        Some(json!({"items": [{"sku": sku, "quantity": 1}]})),
                    )
                    .await;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let mut tr = traffic.lock().await;
                tr.latencies.push((during, ms));
                match answer {
                    Ok(a) if a.status == 202 => {
                        let id = a.body["orderId"].as_str().unwrap_or_default().to_string();
                        tr.placed.push((sku, id));
                    }
                    Ok(a) => tr.errors.push((a.status, a.body.to_string())),
                    Err(e) => tr.errors.push((0, e.to_string())),
                }
                drop(tr);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut epoch = 1;
    for (i, to) in [5, 3, 4].into_iter().enumerate() {
        let from = ring(&sfs).await.0;
        *change.lock().unwrap() = Some(i);
        let t = Instant::now();
        sfs.patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"services": {"inventory": {"sharding": {"shards": to}}}}}),
            ),
        )
        .await
        .unwrap();
        epoch += 1;
        if i == 0 {
            // The operator pod is deleted mid-copy: the next leader resumes at the recorded
            // step (the Jobs are found by name).
            let phase = wait_for("the reshard to copy", CHANGE_TIMEOUT, || async {
                let sf = sfs.get("shop").await?;
                let r = sf.status.and_then(|s| s.rings.get("inventory").cloned());
                let phase = r.and_then(|r| r.resharding).map(|x| x.phase);
                Ok(phase
                    .filter(|p| *p >= ReshardPhase::Copying)
                    .map(|p| format!("{p:?}")))
            })
            .await
            .unwrap();
            let operator: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
            for p in operator
                .list(&ListParams::default().labels("app.kubernetes.io/name=storefront-operator"))
                .await
                .unwrap()
            {
                operator
                    .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                    .await
                    .unwrap();
            }
            println!("figure: operator pod deleted while the reshard was {phase}");
            wait_operator_available(&client).await.unwrap();
        }
        let done = wait_for(
            &format!("the ring at {to} shards, epoch {epoch}"),
            CHANGE_TIMEOUT,
            || async {
                let r = ring(&sfs).await;
                Ok((r == (to, epoch, false)).then_some(r))
            },
        )
        .await
        .unwrap();
        *change.lock().unwrap() = None;
        let sf = sfs.get("shop").await.unwrap();
        let last = sf.status.unwrap().rings["inventory"].last.clone().unwrap();
        assert_eq!((last.from, last.to, last.epoch), (from, to, epoch));
        let tr = traffic.lock().await;
        let during: Vec<f64> = tr
            .latencies
            .iter()
            .filter(|(c, _)| *c == Some(i))
            .map(|(_, ms)| *ms)
            .collect();
        let outside: Vec<f64> = tr
            .latencies
            .iter()
            .filter(|(c, _)| c.is_none())
            .map(|(_, ms)| *ms)
            .collect();
        println!(
            "figure: reshard {products} SKUs {from} -> {to} done in {:.1}s (ring {done:?}): {} keys moved, \
             write pause {:.1} ms; POST /orders p99 {:.1} ms during ({} orders) vs {:.1} ms \
             outside; {} non-202 so far",
            t.elapsed().as_secs_f64(),
            last.keys_moved,
            last.pause_micros as f64 / 1000.0,
            p99(during.clone()),
            during.len(),
            p99(outside),
            tr.errors.len()
        );
        drop(tr);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // The steps, as the Events told them.
    let events: Api<Event> = ns.api();
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Resharding"))
        .filter_map(|e| e.message)
        .collect();
    for step in [
        "Joining",
        "Copying",
        "Verifying",
        "Switching",
        "Draining",
        "done",
    ] {
        for (from, to) in [(4, 5), (5, 3), (3, 4)] {
            let needle = format!("resharding {from} → {to} shards: {step}");
            assert!(
                notes.iter().any(|n| n.contains(&needle)),
                "no Event says {needle:?}: {notes:#?}"
            );
        }
    }

    let tr = traffic.lock().await;
    assert!(
        tr.errors.is_empty(),
        "every order was accepted: {:?}",
        &tr.errors[..tr.errors.len().min(5)]
    );
    assert!(tr.placed.len() > 100, "{} orders placed", tr.placed.len());
    let mut confirmed: BTreeMap<String, i64> = BTreeMap::new();
    let t = Instant::now();
    for (sku, id) in &tr.placed {
        let done = ann.settled(id, SETTLE_TIMEOUT).await.unwrap();
        assert_eq!(done["status"], "CONFIRMED", "stock was plenty: {done}");
        *confirmed.entry(sku.clone()).or_default() += 1;
    }
    println!(
        "figure: {} orders placed across the three changes, all CONFIRMED (checked in {:.1}s)",
        tr.placed.len(),
        t.elapsed().as_secs_f64()
    );
    for sku in &skus {
        let after = settled_stock(&ann, sku).await;
        let sold = confirmed.get(sku).copied().unwrap_or(0);
        assert_eq!(
            after["stock"].as_i64().unwrap(),
            before[sku] - sold,
            "{sku}: stock before {}, {sold} confirmed, now {after}",
            before[sku]
        );
    }
}
