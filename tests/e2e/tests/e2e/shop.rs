//! The real shop on a real cluster: the workload image, the datastores of the cluster, the
//! operator wiring them, and a shopper on the public API through the gateway (port-forwarded
//! through the API server). One Storefront, three acts:
//! 1. sign up → sign in → search → product page → order → CONFIRMED (the saga over NATS);
//! 2. recommendations scaled to 0 → pages and checkout still work, the degraded header says so;
//! 3. one inventory shard's pod killed while orders for its SKUs flow → every order settles,
//!    and each SKU's stock drops by exactly what was confirmed: no lost and no duplicated
//!    reservation.
//!
//! Timings are printed (figures, not assertions).

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use storefront_crds::{Storefront, ring::shard_of};
use storefront_e2e::{
    TestNamespace, client, datastores::DatastoreUrls, ensure_operator, forward::forward,
    real_workload_image, shopper::Shopper, storefront_from, wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(300);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
const SHARDS: u32 = 2;

/// Everything at one pod (two cores run it all), a small generated catalog, payments that
/// never decline (so every outcome below is decided by stock alone).
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
      env: [{name: CATALOG_SEED, value: '3'}, {name: CATALOG_PRODUCTS, value: '2000'}]
    orders: {replicas: 1}
    payments:
      replicas: 1
      env: [{name: PAYMENT_FAILURE_RATE, value: '0'}, {name: PAYMENT_LATENCY_MS, value: '50'}]
    inventory:
      sharding: {shards: 2, replicasPerShard: 1}
      env: [{name: CATALOG_SEED, value: '3'}, {name: CATALOG_PRODUCTS, value: '2000'}]
    recommendations: {replicas: 1}
";

async fn running_pod(pods: &Api<Pod>, selector: &str) -> String {
    wait_for(
        &format!("a running pod for {selector}"),
        READY_TIMEOUT,
        || async {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            Ok(list
                .items
                .iter()
                .find(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
                .map(ResourceExt::name_any))
        },
    )
    .await
    .unwrap()
}

async fn stock(shopper: &Shopper, sku: &str) -> Value {
    let a = shopper
        .call("GET", &format!("/api/v1/inventory/{sku}"), &[], None)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// The SKU's stock once nothing is reserved (commit and release follow the order's status).
async fn settled_stock(shopper: &Shopper, sku: &str) -> Value {
    wait_for(
        &format!("{sku} with nothing reserved"),
        SETTLE_TIMEOUT,
        || async {
            let a = shopper
                .call("GET", &format!("/api/v1/inventory/{sku}"), &[], None)
                .await?;
            Ok((a.status == 200 && a.body["reserved"] == 0).then_some(a.body))
        },
    )
    .await
    .unwrap()
}

/// Act 1b, as an attacker who read the gateway pod's files (code execution or a file read in
/// the internet-facing pod): its only private key is its own service key, which mints no user
/// token the gateway accepts, no service token in another service's name, and no call the
/// gateway may not make. The same checks with orders' key (read here as the cluster's admin)
/// pass: the keys are per service, not broken.
async fn a_stolen_gateway_key_mints_nothing(
    ns: &TestNamespace,
    pods: &Api<Pod>,
    gateway: std::net::SocketAddr,
    order: &str,
) {
    use storefront_contracts::proto::payments::{
        GetChargeRequest, payments_client::PaymentsClient,
    };
    use storefront_platform::{
        grpc::{SERVICE_TOKEN, unix_now},
        token::{SigningKeys, TokenIssuer},
    };
    let secrets: Api<Secret> = ns.api();
    let key_of = |service: &'static str| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets
                .get(&format!("shop-{service}-token-key"))
                .await
                .unwrap();
            let pem = String::from_utf8(secret.data.unwrap()["private.pem"].0.clone()).unwrap();
            TokenIssuer::new(SigningKeys::from_pkcs8_pem(&pem).unwrap(), "shop", 3600, 60)
        }
    };
    let stolen = key_of("gateway").await;
    let now = unix_now();

    // A user token signed with the gateway's key.
    let forged = stolen
        .issue_user("u-mallory", "mallory@example.com", now)
        .unwrap();
    let mut mallory = Shopper::new(gateway);
    mallory.token = Some(forged.token);
    let listed = mallory
        .call("GET", "/api/v1/orders", &[], None)
        .await
        .unwrap();
    assert_eq!(
        listed.status, 401,
        "a user token signed with the gateway's key: {}",
        listed.body
    );

    // gRPC to payments, straight to its pod.
    let payments = running_pod(
        pods,
        "app.kubernetes.io/instance=shop,app.kubernetes.io/component=payments",
    )
    .await;
    let (grpc, _forward) = forward(pods.clone(), &payments, 50051).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let get_charge = |issuer: &TokenIssuer, from: &str| {
        let token = issuer.issue_service(from, "payments", now).unwrap().token;
        let mut request = tonic::Request::new(GetChargeRequest {
            order_id: order.to_string(),
        });
        request
            .metadata_mut()
            .insert(SERVICE_TOKEN, token.parse().unwrap());
        let mut client = PaymentsClient::new(channel.clone());
        async move { client.get_charge(request).await }
    };
    // The gateway's key in orders' name.
    let err = get_charge(&stolen, "orders")
        .await
        .expect_err("forged caller");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("signed with the key of \"gateway\""),
        "{err:?}"
    );
    // The gateway's key in its own name: payments is not the gateway's to call.
    let err = get_charge(&stolen, "gateway")
        .await
        .expect_err("not allowed");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // Orders' own key: allowed, and the charge is the order's.
    let charge = get_charge(&key_of("orders").await, "orders")
        .await
        .expect("orders may read a charge")
        .into_inner();
    assert_eq!(charge.order_id, order);
    println!(
        "figure: a stolen gateway key: user token 401, as orders UNAUTHENTICATED, as itself PERMISSION_DENIED (orders' key reads charge {} {})",
        charge.status, charge.amount_cents
    );

    // On the bus, without any key: a 1-cent StockReserved for an order (here one nobody
    // placed, so no real event follows) under the message id events had before they were
    // signed. Payments drops it (counted) and charges nothing.
    let urls = DatastoreUrls::discover().unwrap();
    let nats = async_nats::connect(&urls.nats).await.unwrap();
    let forged_order = format!("o-forged-{}", std::process::id());
    let message = async_nats::jetstream::message::PublishMessage::build()
        .payload(
            format!(r#"{{"type":"StockReserved","orderId":"{forged_order}","totalCents":1}}"#)
                .into_bytes()
                .into(),
        )
        .message_id(format!("{forged_order}:StockReserved"));
    async_nats::jetstream::new(nats)
        .send_publish(format!("{}-shop.orders.StockReserved", ns.name), message)
        .await
        .unwrap()
        .await
        .expect("the stream takes the forged event");
    let metrics = wait_for(
        "payments to drop the forged event",
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            let payments = payments.clone();
            async move {
                let text = pod_get(&pods, &payments, 8080, "/metrics").await?;
                Ok(text
                    .contains(r#"storefront_events_total{type="StockReserved",outcome="forged"}"#)
                    .then_some(text))
            }
        },
    )
    .await
    .unwrap();
    let err = get_charge(&key_of("orders").await, "orders")
        .await
        .map(|c| c.into_inner().order_id);
    assert!(
        err.is_ok(),
        "the real order's charge is still there: {err:?}"
    );
    let none = {
        let token = key_of("orders")
            .await
            .issue_service("orders", "payments", unix_now())
            .unwrap()
            .token;
        let mut request = tonic::Request::new(GetChargeRequest {
            order_id: forged_order.clone(),
        });
        request
            .metadata_mut()
            .insert(SERVICE_TOKEN, token.parse().unwrap());
        PaymentsClient::new(channel.clone())
            .get_charge(request)
            .await
    };
    assert_eq!(
        none.expect_err("no charge for a forged event").code(),
        tonic::Code::NotFound
    );
    let forged_line = metrics
        .lines()
        .find(|l| l.contains(r#"outcome="forged""#))
        .unwrap_or_default()
        .to_string();
    println!(
        "figure: a forged 1-cent StockReserved on the bus: dropped, no charge ({forged_line})"
    );
}

/// GET `path` on `port` of `pod` (port-forwarded), as text.
async fn pod_get(pods: &Api<Pod>, pod: &str, port: u16, path: &str) -> anyhow::Result<String> {
    let (addr, forward) = forward(pods.clone(), pod, port).await?;
    let shopper = Shopper::new(addr);
    let answer = shopper.get_text(path).await;
    forward.abort();
    let (status, text) = answer?;
    anyhow::ensure!(status == 200, "GET {path} on {pod}: {status} {text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shopper_orders_through_the_real_shop_and_survives_a_shard_kill() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover()
        .expect("the real shop needs the cluster's datastores (tests/e2e/cluster/datastores)");
    let ns = TestNamespace::create(&client, "shop").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(SHOP, &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    let t0 = Instant::now();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    println!("figure: shop Ready in {:.1}s", t0.elapsed().as_secs_f64());

    let pods: Api<Pod> = ns.api();
    let gateway_pod = running_pod(
        &pods,
        "app.kubernetes.io/instance=shop,app.kubernetes.io/component=gateway",
    )
    .await;
    let (addr, _forward) = forward(pods.clone(), &gateway_pod, 8080).await.unwrap();
    let mut ann = Shopper::new(addr);

    // Act 1: the shopper's path.
    ann.sign_up_and_in("ann@example.com").await.unwrap();
    let listing = ann
        .call("GET", "/api/v1/products?limit=20", &[], None)
        .await
        .unwrap();
    assert_eq!(listing.status, 200, "{}", listing.body);
    let items = listing.body["items"].as_array().unwrap().clone();
    assert_eq!(
        items.len(),
        20,
        "the generated catalog is loaded: {}",
        listing.body
    );
    let wanted = items[0]["sku"].as_str().unwrap().to_string();
    // The name's words without the colour in parentheses: "Sonara Essential Webcam 348".
    let words: Vec<&str> = items[0]["name"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .filter(|w| w.chars().all(char::is_alphanumeric))
        .collect();
    let word = words.join("%20");
    let found = ann
        .call(
            "GET",
            &format!("/api/v1/products?q={word}&limit=10"),
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["sku"] == wanted.as_str()),
        "searching {word:?} finds {wanted}: {}",
        found.body
    );
    // The product page shows stock once the gateway reaches the SKU's inventory shard. Ready
    // counts ready pods; a Service's first endpoints take kube-proxy a moment more (until then
    // the page answers 200 with `available: 0` and `Storefront-Degraded: inventory`), so wait.
    let t_page = Instant::now();
    let page = wait_for(
        "the product page to show stock",
        Duration::from_secs(30),
        || {
            let ann = &ann;
            let path = format!("/api/v1/products/{wanted}");
            async move {
                let page = ann.call("GET", &path, &[], None).await?;
                assert_eq!(page.status, 200, "{}", page.body);
                Ok((page.body["available"].as_i64().unwrap_or(0) > 0).then_some(page))
            }
        },
    )
    .await
    .unwrap();
    println!(
        "figure: product page with stock {:.1}s after Ready",
        t_page.elapsed().as_secs_f64()
    );
    assert!(
        page.body["available"].as_i64().unwrap() > 0,
        "{}",
        page.body
    );
    // Two SKUs on different shards, in stock.
    let on = |shard: u32| {
        items
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_string())
            .find(|s| shard_of(s, SHARDS) == shard)
            .unwrap()
    };
    let (a, b) = (on(0), on(1));
    let t = Instant::now();
    let id = ann
        .order(
            "first",
            json!([{"sku": a, "quantity": 1}, {"sku": b, "quantity": 2}]),
        )
        .await
        .unwrap();
    let done = ann.settled(&id, SETTLE_TIMEOUT).await.unwrap();
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    println!(
        "figure: first order PENDING → CONFIRMED in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    // Act 1b: an attacker with the gateway's key.
    a_stolen_gateway_key_mints_nothing(&ns, &pods, addr, &id).await;

    // Act 2: recommendations at 0 replicas.
    sfs.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"services": {"recommendations": {"replicas": 0}}}})),
    )
    .await
    .unwrap();
    let recs_selector =
        "app.kubernetes.io/instance=shop,app.kubernetes.io/component=recommendations";
    wait_for("no recommendations pods", READY_TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels(recs_selector))
            .await?;
        Ok(list.items.is_empty().then_some(()))
    })
    .await
    .unwrap();
    let recs = wait_for("degraded recommendations", SETTLE_TIMEOUT, || async {
        let r = ann
            .call(
                "GET",
                &format!("/api/v1/products/{a}/recommendations"),
                &[],
                None,
            )
            .await?;
        Ok((r.status == 200 && r.degraded.is_some()).then_some(r))
    })
    .await
    .unwrap();
    assert_eq!(recs.body, json!({"items": []}));
    assert_eq!(recs.degraded.as_deref(), Some("recommendations"));
    let page = ann
        .call("GET", &format!("/api/v1/products/{b}"), &[], None)
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let id = ann
        .order("without-recs", json!([{"sku": a, "quantity": 1}]))
        .await
        .unwrap();
    let done = ann.settled(&id, SETTLE_TIMEOUT).await.unwrap();
    assert_eq!(
        done["status"], "CONFIRMED",
        "checkout without recommendations: {done}"
    );

    // Act 3: shard 1's pod is killed while orders for its SKUs flow.
    let victims: Vec<String> = items
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .filter(|s| shard_of(s, SHARDS) == 1)
        .take(4)
        .collect();
    let mut before = BTreeMap::new();
    for sku in &victims {
        before.insert(
            sku.clone(),
            settled_stock(&ann, sku).await["stock"].as_i64().unwrap(),
        );
    }
    let shard_selector = "app.kubernetes.io/instance=shop,app.kubernetes.io/component=inventory,commerce.storefront.dev/shard=1";
    let shard_pod = running_pod(&pods, shard_selector).await;
    const ORDERS: usize = 24;
    // Six shoppers with four orders each: orders caps a user's pending orders (5 by
    // default), and orders stay pending while their shard is down.
    let mut shoppers = vec![ann.clone()];
    for n in 1..6 {
        let mut other = Shopper::new(addr);
        other
            .sign_up_and_in(&format!("shopper-{n}@example.com"))
            .await
            .unwrap();
        shoppers.push(other);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ORDERS {
        let (shopper, sku) = (
            shoppers[i % shoppers.len()].clone(),
            victims[i % victims.len()].clone(),
        );
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(150 * i as u64)).await;
            let id = shopper
                .order(&format!("kill-{i}"), json!([{"sku": sku, "quantity": 1}]))
                .await
                .unwrap();
            (i, sku, id)
        });
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let t_kill = Instant::now();
    pods.delete(&shard_pod, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let mut placed = vec![];
    while let Some(r) = tasks.join_next().await {
        placed.push(r.unwrap());
    }
    let mut confirmed: BTreeMap<String, i64> = BTreeMap::new();
    for (i, sku, id) in &placed {
        // An order is its owner's to read.
        let owner = &shoppers[i % shoppers.len()];
        let done = owner.settled(id, SETTLE_TIMEOUT).await.unwrap();
        assert_eq!(done["status"], "CONFIRMED", "stock was plenty: {done}");
        *confirmed.entry(sku.clone()).or_default() += 1;
    }
    println!(
        "figure: {ORDERS} orders across a shard pod kill all settled {:.1}s after the kill",
        t_kill.elapsed().as_secs_f64()
    );
    assert_ne!(
        running_pod(&pods, shard_selector).await,
        shard_pod,
        "the shard's pod was replaced"
    );
    for sku in &victims {
        let after = settled_stock(&ann, sku).await;
        let sold = confirmed.get(sku).copied().unwrap_or(0);
        assert_eq!(
            after["stock"].as_i64().unwrap(),
            before[sku] - sold,
            "{sku}: stock before {}, {sold} confirmed, now {after}",
            before[sku]
        );
    }
    // The shop's own view agrees: nothing left reserved anywhere we sold.
    for sku in [&a, &b] {
        assert_eq!(stock(&ann, sku).await["reserved"], 0);
    }
}
