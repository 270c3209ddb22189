//! The checkout saga end to end on real servers: the gateway on a socket, auth, catalog,
//! orders, two inventory shards, payments and recommendations on PostgreSQL, and the events
//! between them on a real NATS JetStream. Orders go in through the public API and must end
//! CONFIRMED or CANCELLED by themselves.
//!
//! Needs `DATABASE_URL` and `NATS_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::gateway_support::{SagaOptions, send, shop_with_saga};
use serde_json::{Value, json};
use storefront_crds::ring::shard_of;

async fn shopper(gw: SocketAddr, email: &str) -> String {
    let body = json!({"email": email, "password": "correct horse battery"}).to_string();
    let (status, _, created) = send(gw, "POST", "/api/v1/users", &[], &body).await;
    assert_eq!(status, 201, "{created}");
    let (status, _, session) = send(gw, "POST", "/api/v1/sessions", &[], &body).await;
    assert_eq!(status, 200, "{session}");
    session["token"].as_str().expect("token").to_string()
}

async fn order(gw: SocketAddr, token: &str, key: &str, items: Value) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = send(
        gw,
        "POST",
        "/api/v1/orders",
        &[("Authorization", &bearer), ("Idempotency-Key", key)],
        &json!({"items": items}).to_string(),
    )
    .await;
    (status, body)
}

/// Polls the order until it is no longer PENDING.
async fn settled(gw: SocketAddr, token: &str, id: &str) -> Value {
    let bearer = format!("Bearer {token}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, body) = send(
            gw,
            "GET",
            &format!("/api/v1/orders/{id}"),
            &[("Authorization", &bearer)],
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "PENDING" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} still PENDING: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stock(gw: SocketAddr, sku: &str) -> Value {
    let (status, _, body) = send(gw, "GET", &format!("/api/v1/inventory/{sku}"), &[], "").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The SKU's stock once nothing is reserved (the saga's last step is asynchronous).
async fn sold(gw: SocketAddr, sku: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stock(gw, sku).await;
        if s["reserved"] == 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "still reserved: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_across_two_shards_is_confirmed_and_sold() {
    let shop = shop_with_saga(
        "saga_ok",
        SagaOptions {
            failure_rate: 0.0,
            silent_shards: vec![],
            stock: vec![],
        },
    )
    .await;
    let gw = shop.gateway;
    let token = shopper(gw, "grace@example.com").await;
    // One SKU of each shard.
    let a = shop
        .products
        .iter()
        .find(|p| shard_of(&p.sku, 2) == 0 && p.stock >= 3)
        .expect("a SKU on shard 0");
    let b = shop
        .products
        .iter()
        .find(|p| shard_of(&p.sku, 2) == 1 && p.stock >= 3)
        .expect("a SKU on shard 1");
    let items = json!([{"sku": a.sku, "quantity": 2}, {"sku": b.sku, "quantity": 1}]);
    let (status, placed) = order(gw, &token, "k-1", items.clone()).await;
    assert_eq!(status, 202, "{placed}");
    assert_eq!(placed["status"], "PENDING");
    let id = placed["orderId"].as_str().expect("orderId").to_string();
    let done = settled(gw, &token, &id).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    assert_eq!(
        done["totalCents"],
        2 * a.price_cents + b.price_cents,
        "{done}"
    );
    // Sold: stock goes down, nothing left reserved (the shards commit on OrderConfirmed).
    let sa = sold(gw, &a.sku).await;
    assert_eq!(
        (sa["stock"].as_i64(), sa["reserved"].as_i64()),
        (Some(a.stock - 2), Some(0))
    );
    let sb = sold(gw, &b.sku).await;
    assert_eq!(
        (sb["stock"].as_i64(), sb["reserved"].as_i64()),
        (Some(b.stock - 1), Some(0))
    );
    // The same key and body again: the same order, nothing new.
    let (status, again) = order(gw, &token, "k-1", items).await;
    assert_eq!(
        (status, again["orderId"].as_str()),
        (202, Some(id.as_str()))
    );
    // Charged once.
    let parts = shop.saga.as_ref().expect("saga");
    let charge = parts
        .ledger
        .get(&id)
        .await
        .expect("query")
        .expect("a charge");
    assert_eq!(
        (charge.state.as_str(), charge.amount_cents),
        ("succeeded", 2 * a.price_cents + b.price_cents)
    );
    // Bought together: B is recommended with A once the confirmation is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, head, recs) = send(
            gw,
            "GET",
            &format!("/api/v1/products/{}/recommendations", a.sku),
            &[],
            "",
        )
        .await;
        assert_eq!(status, 200, "{recs}");
        assert!(!head.contains("storefront-degraded"), "{head}");
        if recs["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|p| p["sku"] == b.sku.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no recommendation yet: {recs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_payment_cancels_and_releases_the_stock() {
    let shop = shop_with_saga(
        "saga_declined",
        SagaOptions {
            failure_rate: 1.0,
            silent_shards: vec![],
            stock: vec![],
        },
    )
    .await;
    let gw = shop.gateway;
    let token = shopper(gw, "linus@example.com").await;
    let p = shop
        .products
        .iter()
        .find(|p| p.stock >= 2)
        .expect("stocked");
    let (status, placed) = order(gw, &token, "k-1", json!([{"sku": p.sku, "quantity": 2}])).await;
    assert_eq!(status, 202, "{placed}");
    let done = settled(gw, &token, placed["orderId"].as_str().expect("id")).await;
    assert_eq!(done["status"], "CANCELLED", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .is_some_and(|r| r.contains("payment failed")),
        "{done}"
    );
    // Released: the stock is whole again (the release follows the cancellation).
    assert_eq!(sold(gw, &p.sku).await["stock"].as_i64(), Some(p.stock));
}

/// Many shoppers race for one SKU with little stock: exactly the stock is sold, every order
/// ends CONFIRMED or CANCELLED, nothing stays reserved, and nobody is charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_for_a_hot_sku_never_oversell() {
    const STOCK: i64 = 7;
    const SHOPPERS: usize = 8;
    const ORDERS_EACH: usize = 5;
    let probe = storefront_workloads::catalog::seed::generate(11, 300);
    let hot = probe[5].sku.clone();
    let shop = shop_with_saga(
        "saga_hot",
        SagaOptions {
            failure_rate: 0.0,
            silent_shards: vec![],
            stock: vec![(hot.clone(), STOCK)],
        },
    )
    .await;
    let gw = shop.gateway;
    let mut tokens = vec![];
    for s in 0..SHOPPERS {
        tokens.push(shopper(gw, &format!("shopper{s}@example.com")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let hot = hot.clone();
        tasks.spawn(async move {
            let mut placed = vec![];
            for o in 0..ORDERS_EACH {
                let started = Instant::now();
                let (status, body) = order(
                    gw,
                    &token,
                    &format!("k-{o}"),
                    json!([{"sku": hot, "quantity": 1}]),
                )
                .await;
                assert_eq!(status, 202, "after {:?}: {body}", started.elapsed());
                placed.push(body["orderId"].as_str().expect("id").to_string());
            }
            let mut outcomes = vec![];
            for id in placed {
                let done = settled(gw, &token, &id).await;
                outcomes.push((
                    id,
                    done["status"].as_str().unwrap_or("?").to_string(),
                    done["reason"].clone(),
                ));
            }
            outcomes
        });
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed = vec![];
    while let Some(outcomes) = tasks.join_next().await {
        for (id, status, reason) in outcomes.expect("a shopper finished") {
            if status == "CANCELLED" {
                assert!(
                    reason.as_str().is_some_and(|r| r.contains("out of stock")),
                    "cancelled for another reason: {reason}"
                );
            }
            if status == "CONFIRMED" {
                confirmed.push(id);
            }
            *by_status.entry(status).or_default() += 1;
        }
    }
    let total = SHOPPERS * ORDERS_EACH;
    assert_eq!(
        by_status,
        BTreeMap::from([
            ("CANCELLED".to_string(), total - STOCK as usize),
            ("CONFIRMED".to_string(), STOCK as usize)
        ])
    );
    // Sold out, nothing held, never below zero.
    let s = sold(gw, &hot).await;
    assert_eq!(
        (s["stock"].as_i64(), s["reserved"].as_i64()),
        (Some(0), Some(0)),
        "{s}"
    );
    // One charge per confirmed order, and the provider charged exactly that many.
    let parts = shop.saga.as_ref().expect("saga");
    for id in &confirmed {
        let charge = parts.ledger.get(id).await.expect("query").expect("charged");
        assert_eq!(charge.state, "succeeded");
    }
    assert_eq!(
        parts.provider.lock().expect("lock").charges(),
        STOCK as u64,
        "charges taken by the provider"
    );
}

/// A shard that never answers an order (its consumer down, or removed by a reshard before it
/// read the order): after a reshard gives its keys to another shard, the stalled order asks
/// the shards again and the new owner holds the line; the order confirms and sells once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_line_nobody_answered_is_held_by_its_new_owner_when_the_order_asks_again() {
    let shop = shop_with_saga(
        "stall",
        SagaOptions {
            failure_rate: 0.0,
            silent_shards: vec![1],
            stock: vec![],
        },
    )
    .await;
    let gw = shop.gateway;
    let token = shopper(gw, "stall@example.com").await;
    let sku = shop
        .products
        .iter()
        .map(|p| p.sku.clone())
        .find(|s| shard_of(s, 2) == 1)
        .expect("a SKU of shard 1");
    let before = stock(gw, &sku).await["stock"].as_i64().expect("stock");
    let (status, placed) = order(gw, &token, "stall-1", json!([{"sku": sku, "quantity": 1}])).await;
    assert_eq!(status, 202, "{placed}");
    let id = placed["orderId"].as_str().expect("id").to_string();
    // Shard 1 says nothing. Its keys go to shard 0 (2 -> 1 shards): the switch moves them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let parts = shop.saga.as_ref().expect("saga");
    let place = parts.shards[0].place().expect("a ring").clone();
    let handoff = storefront_workloads::inventory::handoff::Handoff::connect(
        &std::env::var("DATABASE_URL").expect("DATABASE_URL"),
        &place.prefix,
    )
    .await
    .expect("connects");
    handoff.switch(2, 1, 2).await.expect("switches");
    let t = Instant::now();
    let done = settled(gw, &token, &id).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    println!(
        "figure: an order whose shard never answered confirmed {:.1}s after the reshard (asked again after {} s)",
        t.elapsed().as_secs_f64(),
        storefront_workloads::orders::domain::STALL_SECS
    );
    assert_eq!(
        sold(gw, &sku).await["stock"].as_i64(),
        Some(before - 1),
        "sold once, at its new owner"
    );
}
