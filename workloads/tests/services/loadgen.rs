//! The load generator against a stand-in shop on a real socket (axum, the public API's
//! shapes, a configurable delay): the offered load does not bend to a slow server, the
//! concurrency cap drops and counts, and `--settle` follows orders to CONFIRMED.

// Tests may unwrap.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use clap::Parser;
use serde_json::{Value, json};
use storefront_workloads::loadgen::{LoadgenArgs, run::execute};

#[derive(Default)]
struct Fake {
    delay: Duration,
    users: BTreeSet<String>,
    keys: Vec<String>,
    /// Orders of the second SKU are cancelled, "out of stock".
    sold_out: BTreeSet<String>,
    polls: std::collections::BTreeMap<String, u32>,
}

type Shared = Arc<Mutex<Fake>>;

async fn pause(s: &Shared) {
    let delay = s.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
}

async fn serve(delay: Duration) -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(Fake {
        delay,
        ..Fake::default()
    }));
    let app = Router::new()
        .route(
            "/api/v1/products",
            get(|State(s): State<Shared>| async move {
                pause(&s).await;
                Json(json!({"items": [
                    {"sku": "SKU-0001-000001", "name": "Sonara Essential Webcam 348 (Red)"},
                    {"sku": "SKU-0002-000002", "name": "Greenbough Compact Trowel 120 (Blue)"},
                ], "next": null}))
            }),
        )
        .route(
            "/api/v1/products/{sku}",
            get(|State(s): State<Shared>, Path(sku): Path<String>| async move {
                pause(&s).await;
                Json(json!({"sku": sku, "available": 5}))
            }),
        )
        .route(
            "/api/v1/users",
            post(|State(s): State<Shared>, Json(b): Json<Value>| async move {
                let email = b["email"].as_str().unwrap().to_string();
                if s.lock().unwrap().users.insert(email.clone()) {
                    (StatusCode::CREATED, Json(json!({"id": email, "email": email})))
                } else {
                    (StatusCode::CONFLICT, Json(json!({"error": {"code": "conflict"}})))
                }
            }),
        )
        .route(
            "/api/v1/sessions",
            post(|State(s): State<Shared>, Json(b): Json<Value>| async move {
                pause(&s).await;
                Json(json!({"token": format!("t-{}", b["email"].as_str().unwrap()), "expiresAt": "x"}))
            }),
        )
        .route(
            "/api/v1/orders",
            post(
                |State(s): State<Shared>, headers: HeaderMap, Json(b): Json<Value>| async move {
                    pause(&s).await;
                    assert!(headers["authorization"].to_str().unwrap().starts_with("Bearer t-"));
                    assert_eq!(b["items"][0]["quantity"], 1);
                    let key = headers["idempotency-key"].to_str().unwrap().to_string();
                    let mut f = s.lock().unwrap();
                    f.keys.push(key.clone());
                    if b["items"][0]["sku"] == "SKU-0002-000002" {
                        f.sold_out.insert(key.clone());
                    }
                    drop(f);
                    (
                        StatusCode::ACCEPTED,
                        Json(json!({"orderId": key, "status": "PENDING"})),
                    )
                },
            ),
        )
        .route(
            "/api/v1/orders/{id}",
            get(|State(s): State<Shared>, Path(id): Path<String>| async move {
                // Every order settles on its second poll.
                let mut f = s.lock().unwrap();
                let n = f.polls.entry(id.clone()).or_default();
                *n += 1;
                let settled = *n >= 2;
                if settled && f.sold_out.contains(&id) {
                    return Json(
                        json!({"orderId": id, "status": "CANCELLED", "reason": "out of stock: SKU-0002-000002"}),
                    );
                }
                let status = if settled { "CONFIRMED" } else { "PENDING" };
                Json(json!({"orderId": id, "status": status}))
            }),
        )
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

fn args(addr: SocketAddr, flags: &[&str]) -> LoadgenArgs {
    let target = format!("http://{addr}");
    let mut all = vec!["loadgen", "--quiet", "--target", &target];
    all.extend_from_slice(flags);
    Cli::try_parse_from(all).unwrap().args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_does_not_lower_the_offered_rate() {
    for delay in [Duration::ZERO, Duration::from_millis(400)] {
        let (addr, _) = serve(delay).await;
        let s = execute(&args(
            addr,
            &["--rate", "40", "--duration", "2s", "--mix", "browse=1"],
        ))
        .await
        .unwrap();
        let browse = &s.endpoints[0];
        assert_eq!(browse.name, "browse");
        // The same 80 requests were sent whatever the server's speed, all answered.
        assert_eq!((browse.offered, browse.sent, browse.dropped), (80, 80, 0));
        assert_eq!(browse.status.ok, 80, "{delay:?}");
        assert_eq!(browse.offered_rps, 40.0);
        // Latency counts from the scheduled start: at least the server's delay.
        let l = browse.latency_ms.unwrap();
        assert!(l.p50 >= delay.as_secs_f64() * 1000.0, "{delay:?}: {l:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_drops_and_counts() {
    let (addr, _) = serve(Duration::from_millis(500)).await;
    let s = execute(&args(
        addr,
        &[
            "--rate",
            "40",
            "--duration",
            "1s",
            "--mix",
            "product=1",
            "--max-in-flight",
            "3",
        ],
    ))
    .await
    .unwrap();
    let p = &s.endpoints[0];
    assert_eq!(p.offered, 40);
    assert!(p.dropped > 0, "{p:?}");
    assert_eq!(p.sent + p.dropped, 40);
    assert_eq!(p.status.ok, p.sent);
    assert_eq!(s.total.dropped, p.dropped);
    assert!(s.table().contains("dropped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_settle_and_sign_ins_use_the_pool() {
    let (addr, fake) = serve(Duration::ZERO).await;
    let out = std::env::temp_dir().join(format!("sf-loadgen-{}.json", std::process::id()));
    let a = args(
        addr,
        &[
            "--rate",
            "20",
            "--duration",
            "2s",
            "--mix",
            "order=3,signin=1",
            "--users",
            "3",
            "--settle",
            "--settle-poll",
            "20ms",
            "--seed",
            "9",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let s = execute(&a).await.unwrap();
    let orders = s.endpoints.iter().find(|e| e.name == "order").unwrap();
    let signins = s.endpoints.iter().find(|e| e.name == "signin").unwrap();
    assert_eq!(orders.offered + signins.offered, 40);
    assert!(orders.offered > signins.offered, "3:1 mix: {s:?}");
    assert_eq!(signins.status.ok, signins.offered);
    let settle = s.settle.as_ref().unwrap();
    assert_eq!(settle.confirmed + settle.cancelled, orders.status.ok);
    assert!(settle.confirmed > 0 && settle.cancelled > 0, "{settle:?}");
    assert_eq!(settle.unsettled, 0);
    assert_eq!(
        settle.cancelled_reasons.get("out of stock"),
        Some(&settle.cancelled)
    );
    assert!(
        settle.latency_ms.unwrap().p50 >= 40.0,
        "two polls: {settle:?}"
    );
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.users.len(), 3);
        // A fresh Idempotency-Key per order.
        let keys: BTreeSet<_> = f.keys.iter().collect();
        assert_eq!(keys.len(), f.keys.len());
    }
    // A second run reuses the users (409 on sign-up) and the same seed, the same mix.
    let again = execute(&a).await.unwrap();
    let orders2 = again.endpoints.iter().find(|e| e.name == "order").unwrap();
    assert_eq!(orders2.offered, orders.offered);
    assert_eq!(fake.lock().unwrap().keys.len() as u64, 2 * orders.offered);
    // The JSON summary of `run` (here `execute` only: the file is `run`'s).
    let _ = std::fs::remove_file(&out);
    storefront_workloads::loadgen::run(a).await.unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["settle"]["unsettled"], 0);
    assert_eq!(json["endpoints"][0]["name"], "signin");
    let _ = std::fs::remove_file(&out);
}
