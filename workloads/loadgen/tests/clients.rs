//! What each request says about its client, seen by a fake shop on a real socket (hyper):
//! shoppers behind `--forwarded-for` each keep one address from sign-up to the last request,
//! `--signed-in` puts their own token on catalog requests, a plain run says nothing about
//! its clients, and `--abusive` is one client with three faces — its report by face counts
//! what the shop refused.

// Tests may unwrap.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, body::Bytes, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use storefront_loadgen::{LoadgenArgs, run::execute, stats::Summary};

/// One request as the shop saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    forwarded_for: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The shop's answer: a two-product catalog, sign-ups, sign-ins (token `t-<email>`), orders;
/// a token it did not issue is refused as 429 (as per-client limits would, soon enough).
fn answer(seen: &Seen) -> (u16, Value) {
    if seen
        .authorization
        .as_deref()
        .is_some_and(|a| !a.starts_with("Bearer t-"))
    {
        return (429, json!({"error": {"code": "rate_limited"}}));
    }
    match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/api/v1/users") => (201, json!({"id": "u", "email": seen.body["email"]})),
        ("POST", "/api/v1/sessions") => (
            200,
            json!({"token": format!("t-{}", seen.body["email"].as_str().unwrap_or("")), "expiresAt": "x"}),
        ),
        ("POST", "/api/v1/orders") => (202, json!({"orderId": "o-1", "status": "PENDING"})),
        ("GET", p) if p.starts_with("/api/v1/products?") => (
            200,
            json!({"items": [
                {"sku": "SKU-1", "name": "Sonara Essential Webcam"},
                {"sku": "SKU-2", "name": "Greenbough Compact Trowel"},
            ], "next": null}),
        ),
        ("GET", _) => (200, json!({"sku": "SKU-1", "available": 5})),
        _ => (404, json!({"error": {"code": "not_found"}})),
    }
}

async fn serve() -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let shared = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = Arc::clone(&log);
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_string())
                        };
                        let mut seen = Seen {
                            method: req.method().to_string(),
                            path: req.uri().to_string(),
                            authorization: header("authorization"),
                            forwarded_for: header("x-forwarded-for"),
                            body: Value::Null,
                        };
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let (status, json) = answer(&seen);
                        log.lock().unwrap().push(seen);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(json.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

async fn run(addr: SocketAddr, flags: &[&str]) -> Summary {
    let target = format!("http://{addr}");
    let mut all = vec!["loadgen", "--quiet", "--target", &target, "--skus", "2"];
    all.extend_from_slice(flags);
    execute(&Cli::try_parse_from(all).unwrap().args)
        .await
        .unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_behind_a_proxy_each_keep_their_address_and_token() {
    let (addr, log) = serve().await;
    let before = now_ms();
    let s = run(
        addr,
        &[
            "--forwarded-for",
            "198.51.100.0/24",
            "--signed-in",
            "--users",
            "3",
            "--mix",
            "browse=3,order=1",
            "--rate",
            "60",
            "--duration",
            "1s",
        ],
    )
    .await;
    assert_eq!((s.mode.as_str(), s.signed_in), ("shoppers", true));
    assert_eq!(s.forwarded_for.as_deref(), Some("198.51.100.0/24"));
    assert!(
        s.started_at_ms >= before && s.started_at_ms <= now_ms(),
        "{s:?}"
    );
    assert!(s.setup_seconds > 0.0 && s.faces.is_empty());
    assert_eq!(s.total.status.ok, 60, "{}", s.table());

    let log = log.lock().unwrap();
    // Shopper i is loadgen-i and 198.51.100.(i+1), from its sign-up to its last request.
    let address_of = |email: &str| {
        let i: u8 = email
            .trim_start_matches("loadgen-")
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        format!("198.51.100.{}", i + 1)
    };
    let mut addresses = BTreeSet::new();
    let mut run_requests = 0;
    for seen in log.iter() {
        let xff = seen
            .forwarded_for
            .clone()
            .expect("every request is a shopper's");
        addresses.insert(xff.clone());
        if seen.path == "/api/v1/users" || seen.path == "/api/v1/sessions" {
            assert_eq!(
                xff,
                address_of(seen.body["email"].as_str().unwrap()),
                "{seen:?}"
            );
        } else if let Some(auth) = &seen.authorization {
            run_requests += 1;
            let email = auth.trim_start_matches("Bearer t-");
            assert_eq!(xff, address_of(email), "{seen:?}");
        } else {
            // The catalog listing of set-up: the first shopper's address.
            assert!(seen.path.starts_with("/api/v1/products?"), "{seen:?}");
            assert_eq!(xff, "198.51.100.1");
        }
    }
    assert_eq!(run_requests, 60, "browsing signed in carries a token too");
    assert_eq!(addresses.len(), 3, "{addresses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_run_says_nothing_about_its_clients() {
    let (addr, log) = serve().await;
    let s = run(
        addr,
        &[
            "--mix",
            "browse=1,product=1",
            "--rate",
            "20",
            "--duration",
            "1s",
        ],
    )
    .await;
    assert_eq!(s.total.status.ok, 20);
    assert_eq!((s.users, s.forwarded_for.as_deref()), (0, None));
    let log = log.lock().unwrap();
    assert!(
        log.iter()
            .all(|s| s.authorization.is_none() && s.forwarded_for.is_none()),
        "{log:?}"
    );
    assert!(log.iter().all(|s| s.method == "GET"), "no account was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abuser_is_one_client_with_three_faces() {
    let (addr, log) = serve().await;
    let s = run(
        addr,
        &[
            "--abusive",
            "--forwarded-for",
            "203.0.113.0/24",
            "--mix",
            "browse=1,product=1",
            "--rate",
            "90",
            "--duration",
            "1s",
            "--seed",
            "4",
        ],
    )
    .await;
    assert_eq!((s.mode.as_str(), s.users), ("abusive", 1));
    let faces: BTreeMap<&str, _> = s.faces.iter().map(|f| (f.name.as_str(), f)).collect();
    assert_eq!(
        faces.keys().copied().collect::<Vec<_>>(),
        ["anonymous", "forged-token", "signed-in"]
    );
    assert_eq!(faces.values().map(|f| f.sent).sum::<u64>(), 90);
    for (name, f) in &faces {
        // A third each (30 expected): far from 0 or all of them.
        assert!((15..=45).contains(&f.sent), "{name}: {f:?}");
    }
    // The shop refused every forged token, and the table and totals say so.
    let forged = faces["forged-token"];
    assert_eq!(forged.status.limited, forged.sent);
    assert_eq!(s.total.status.limited, forged.sent);
    assert_eq!(faces["anonymous"].status.ok, faces["anonymous"].sent);
    assert!(s.table().contains("the abusive client by face"));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["faces"][1]["endpoint"], "its address (a bad token)");

    let log = log.lock().unwrap();
    let signup = log.iter().find(|s| s.path == "/api/v1/users").unwrap();
    assert_eq!(signup.body["email"], "loadgen-abuser@example.com");
    assert_eq!(signup.forwarded_for.as_deref(), Some("203.0.113.1"));
    let run: Vec<&Seen> = log
        .iter()
        .filter(|s| s.forwarded_for.as_deref().is_some_and(|x| x.contains(", ")))
        .collect();
    assert_eq!(run.len(), 90, "every request of the run forges a hop");
    let hops: BTreeSet<&str> = run
        .iter()
        .map(|s| {
            let (hop, own) = s
                .forwarded_for
                .as_deref()
                .unwrap()
                .split_once(", ")
                .unwrap();
            assert_eq!(own, "203.0.113.1", "{s:?}");
            hop
        })
        .collect();
    assert!(
        hops.len() > 80,
        "a new made-up hop nearly every time: {}",
        hops.len()
    );
    let tokens: BTreeSet<&str> = run
        .iter()
        .filter_map(|s| s.authorization.as_deref())
        .collect();
    // Its own token once, and a new forged one each time.
    assert_eq!(tokens.len(), 1 + forged.sent as usize);
    assert!(tokens.contains("Bearer t-loadgen-abuser@example.com"));
}
