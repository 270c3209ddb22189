//! A flash sale's per-customer cap through the real gateway: the route table's `orderLimits`
//! (as the operator renders them while a sale's limits are open) go to orders with each new
//! order, and a customer past the cap gets 409 with orders' words; the table changes live.
//!
//! Needs `DATABASE_URL` and `REDIS_URL` like the other gateway tests.

use serde_json::json;
use storefront_workloads::gateway::routing;

use crate::gateway_support::{error_of, send, shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_past_a_sales_cap_gets_409_and_the_cap_follows_the_route_table() {
    let mut shop = shop("sale_caps").await;
    let gw = shop.gateway;
    let mut skus = shop
        .products
        .iter()
        .filter(|p| p.stock > 10)
        .map(|p| p.sku.clone());
    let (capped, free) = (skus.next().expect("a SKU"), skus.next().expect("another"));
    // The sale `bf` opened at the epoch: 2 of `capped` per customer.
    let mut routes = shop.routes.clone();
    routes["orderLimits"] = json!([
        {"sale": "bf", "since": 0, "unitsPerCustomer": 2, "skus": [capped]}
    ]);
    std::fs::write(&shop.routes_file, routes.to_string()).expect("write");
    routing::apply(&shop.state, shop.loader.poll()).expect("the route table applies");

    let user = json!({"email": "doorbuster@example.com", "password": "correct horse battery"});
    let (status, _, body) = send(gw, "POST", "/api/v1/users", &[], &user.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, session) = send(gw, "POST", "/api/v1/sessions", &[], &user.to_string()).await;
    assert_eq!(status, 200, "{session}");
    let bearer = format!("Bearer {}", session["token"].as_str().expect("token"));
    let place = |key: &'static str, sku: &str, quantity: u32| {
        let bearer = bearer.clone();
        let order = json!({"items": [{"sku": sku, "quantity": quantity}]}).to_string();
        async move {
            let headers = [("authorization", bearer.as_str()), ("idempotency-key", key)];
            send(gw, "POST", "/api/v1/orders", &headers, &order).await
        }
    };

    let (status, _, body) = place("bf-1", &capped, 2).await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = place("bf-2", &capped, 1).await;
    assert_eq!(status, 409, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "conflict", "{body}");
    assert_eq!(
        message,
        format!(
            "at most 2 of {capped} per customer during sale bf; you have 2 already and this \
             order asks for 1"
        )
    );
    // Another SKU is not capped; a retry of the accepted order still answers.
    let (status, _, body) = place("bf-3", &free, 3).await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = place("bf-1", &capped, 2).await;
    assert_eq!(status, 202, "{body}");

    // The sale ends: the operator drops its caps from the table, and the refused key orders.
    std::fs::write(&shop.routes_file, shop.routes.to_string()).expect("write");
    routing::apply(&shop.state, shop.loader.poll()).expect("the route table applies");
    let (status, _, body) = place("bf-2", &capped, 1).await;
    assert_eq!(status, 202, "{body}");
}
