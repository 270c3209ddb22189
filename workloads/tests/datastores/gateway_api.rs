//! The real gateway on a real socket in front of the real auth, catalog, orders (PostgreSQL)
//! and two inventory shards (routed by the ring), all over gRPC on loopback: a shopper signs
//! up, signs in, searches, orders (idempotently) and reads the order back; another user
//! cannot see it; stock is read from the shard that owns each SKU.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use crate::gateway_support::{error_of, recommendations, send, shop, shop_with_pending_cap};
use serde_json::json;
use storefront_crds::ring::shard_of;
use storefront_workloads::gateway::routing;
use storefront_workloads::grpc::unix_now;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_signs_up_searches_and_orders_through_the_gateway() {
    let mut shop = shop("happy").await;
    let gw = shop.gateway;
    let user =
        json!({"email": "Ada@Example.com", "password": "correct horse battery", "name": "Ada"});
    let (status, _, created) = send(gw, "POST", "/api/v1/users", &[], &user.to_string()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["email"], "ada@example.com");
    assert!(created["id"].as_str().is_some_and(|id| !id.is_empty()));

    let login = json!({"email": "ada@example.com", "password": "correct horse battery"});
    let (status, _, session) = send(gw, "POST", "/api/v1/sessions", &[], &login.to_string()).await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("token").to_string();
    let expires = session["expiresAt"].as_str().expect("expiresAt");
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");

    // Search by a word of a product's name; the product is on the page.
    let wanted = &shop.products[0];
    let word = wanted.name.split_whitespace().last().expect("a word");
    let (status, _, page) = send(
        gw,
        "GET",
        &format!("/api/v1/products?q={word}&limit=100"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert!(
        items.iter().any(|p| p["sku"] == wanted.sku.as_str()),
        "{page}"
    );
    assert_eq!(
        items[0].as_object().map(|o| o.len()),
        Some(6),
        "{{sku, name, category, brand, priceCents, currency}}: {}",
        items[0]
    );
    let (status, _, listing) = send(gw, "GET", "/api/v1/products?limit=2", &[], "").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["items"].as_array().map(Vec::len), Some(2));
    assert!(listing["next"].is_string(), "{listing}");

    let (status, head, product) = send(
        gw,
        "GET",
        &format!("/api/v1/products/{}", wanted.sku),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["priceCents"], wanted.price_cents);
    assert_eq!(product["available"], wanted.stock);
    assert_eq!(product["description"], wanted.description.as_str());
    assert!(!head.contains("storefront-degraded"), "{head}");

    // Recommendations are not routed in this shop: empty, degraded, still 200.
    let (status, head, recs) = send(
        gw,
        "GET",
        &format!("/api/v1/products/{}/recommendations", wanted.sku),
        &[],
        "",
    )
    .await;
    assert_eq!((status, &recs), (200, &json!({"items": []})));
    assert!(
        head.contains("storefront-degraded: recommendations"),
        "{head}"
    );

    // Recommendations routed (a reload adds the route): the SKUs come back as products, in
    // order, an unknown one left out.
    let recs_addr = recommendations(vec![
        shop.products[2].sku.clone(),
        "SKU-GONE-1".into(),
        shop.products[1].sku.clone(),
    ])
    .await;
    let mut routes = shop.routes.clone();
    routes["routes"]
        .as_array_mut()
        .expect("routes")
        .push(json!({"service": "recommendations", "upstream": recs_addr.to_string()}));
    std::fs::write(&shop.routes_file, routes.to_string()).expect("write");
    routing::apply(&shop.state, shop.loader.poll()).expect("the route table applies");
    assert!(shop.state.has_routes());
    let (status, head, recs) = send(
        gw,
        "GET",
        &format!("/api/v1/products/{}/recommendations", wanted.sku),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{recs}");
    assert!(!head.contains("storefront-degraded"), "{head}");
    let skus: Vec<&str> = recs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["sku"].as_str())
        .collect();
    assert_eq!(
        skus,
        [shop.products[2].sku.as_str(), shop.products[1].sku.as_str()]
    );
    assert_eq!(recs["items"][0]["priceCents"], shop.products[2].price_cents);

    // Order two products that live on different shards.
    let other = shop
        .products
        .iter()
        .find(|p| shard_of(&p.sku, 2) != shard_of(&wanted.sku, 2) && p.stock > 0)
        .expect("a product on the other shard");
    let order =
        json!({"items": [{"sku": wanted.sku, "quantity": 2}, {"sku": other.sku, "quantity": 1}]});
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "checkout-1"),
    ];
    let (status, _, accepted) =
        send(gw, "POST", "/api/v1/orders", &headers, &order.to_string()).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "PENDING");
    let order_id = accepted["orderId"].as_str().expect("orderId").to_string();
    let (status, _, replay) =
        send(gw, "POST", "/api/v1/orders", &headers, &order.to_string()).await;
    assert_eq!(
        (status, &replay),
        (202, &accepted),
        "same key, same body: same answer"
    );

    let (status, _, got) = send(
        gw,
        "GET",
        &format!("/api/v1/orders/{order_id}"),
        &headers,
        "",
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["orderId"], order_id.as_str());
    assert_eq!(got["status"], "PENDING");
    assert_eq!(got["currency"], "USD");
    assert_eq!(
        got["totalCents"],
        2 * wanted.price_cents + other.price_cents
    );
    assert_eq!(
        got["items"][0],
        json!({"sku": wanted.sku, "quantity": 2, "priceCents": wanted.price_cents})
    );

    let second = json!({"items": [{"sku": other.sku, "quantity": 1}]});
    let headers2 = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "checkout-2"),
    ];
    let (status, _, accepted2) =
        send(gw, "POST", "/api/v1/orders", &headers2, &second.to_string()).await;
    assert_eq!(status, 202, "{accepted2}");
    let (status, _, list) = send(gw, "GET", "/api/v1/orders", &headers, "").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["orderId"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&order_id.as_str()));

    // Another user sees neither the order nor it in their list.
    let stranger = shop
        .issuer
        .issue_user("someone-else", "x@example.com", unix_now())
        .expect("token")
        .token;
    let stranger = format!("Bearer {stranger}");
    let (status, _, json) = send(
        gw,
        "GET",
        &format!("/api/v1/orders/{order_id}"),
        &[("authorization", stranger.as_str())],
        "",
    )
    .await;
    assert_eq!((status, error_of(&json).0), (404, "not_found"), "{json}");
    let (status, _, json) = send(
        gw,
        "GET",
        "/api/v1/orders",
        &[("authorization", stranger.as_str())],
        "",
    )
    .await;
    assert_eq!((status, &json), (200, &json!({"items": []})));

    // Inventory from the shard that owns each SKU.
    for p in [wanted, other] {
        let (status, _, stock) =
            send(gw, "GET", &format!("/api/v1/inventory/{}", p.sku), &[], "").await;
        assert_eq!(status, 200, "{stock}");
        assert_eq!(
            stock,
            json!({"sku": p.sku, "stock": p.stock, "reserved": 0, "available": p.stock})
        );
    }

    // The OpenAPI document describes what was just used.
    let (status, _, doc) = send(gw, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/orders"]["post"].is_object());

    // Inventory's shards move to dead addresses (a reload, no restart): stock reads are a 503
    // JSON error, product pages still load (degraded), checkout still takes orders.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let ring = json!({"service": "inventory", "epoch": 2, "algorithm": "jump", "shards": [
        {"index": 0, "name": "shop-inventory-0", "address": dead}]});
    std::fs::write(&shop.ring_file, ring.to_string()).expect("write");
    routing::apply(&shop.state, shop.loader.poll()).expect("the route table applies");
    assert!(shop.state.has_routes());
    let (status, _, json) = send(
        gw,
        "GET",
        &format!("/api/v1/inventory/{}", wanted.sku),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (status, error_of(&json).0),
        (503, "service_unavailable"),
        "{json}"
    );
    let (status, head, product) = send(
        gw,
        "GET",
        &format!("/api/v1/products/{}", wanted.sku),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{product}");
    assert!(head.contains("storefront-degraded: inventory"), "{head}");
    let headers3 = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "checkout-3"),
    ];
    let (status, _, accepted3) =
        send(gw, "POST", "/api/v1/orders", &headers3, &second.to_string()).await;
    assert_eq!(status, 202, "{accepted3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_cannot_hold_more_pending_orders_than_the_cap() {
    // No saga runs here: every order stays pending, so the cap is reached and stays reached.
    let shop = shop_with_pending_cap("pending_cap", 2).await;
    let gw = shop.gateway;
    let user = json!({"email": "hoarder@example.com", "password": "correct horse battery"});
    let (status, _, body) = send(gw, "POST", "/api/v1/users", &[], &user.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, session) = send(gw, "POST", "/api/v1/sessions", &[], &user.to_string()).await;
    assert_eq!(status, 200, "{session}");
    let bearer = format!("Bearer {}", session["token"].as_str().expect("token"));
    let sku = &shop
        .products
        .iter()
        .find(|p| p.stock > 0)
        .expect("stock")
        .sku;
    let order = json!({"items": [{"sku": sku, "quantity": 1}]}).to_string();
    let place = |key: &'static str| {
        let bearer = bearer.clone();
        let order = order.clone();
        async move {
            let headers = [("authorization", bearer.as_str()), ("idempotency-key", key)];
            send(gw, "POST", "/api/v1/orders", &headers, &order).await
        }
    };
    for key in ["hoard-1", "hoard-2"] {
        let (status, _, body) = place(key).await;
        assert_eq!(status, 202, "{key}: {body}");
    }
    let (status, _, body) = place("hoard-3").await;
    assert_eq!(status, 409, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "conflict", "{body}");
    assert!(
        message.contains("2 orders still pending") && message.contains("at most 2"),
        "{message}"
    );
    // A retry of an accepted order is still answered as before.
    let (status, _, body) = place("hoard-1").await;
    assert_eq!(status, 202, "{body}");
}
