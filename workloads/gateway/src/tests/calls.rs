//! Calls through the guard, retries and the budgets at the door, on a real socket.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::{closed_port, error_code, issuer, send, serve};
use crate::{
    Gateway,
    resilience::guard::{AllowAll, Outcome, Refusal, UpstreamGuard},
    routing::table::{RouteTable, Snapshot},
    upstream::Deadlines,
};
use storefront_contracts::api::{ApiError, ErrorKind};
use storefront_crds::ring::Ring;

/// What the next issue's limiter will look like from here: refuses one service with a 429
/// and its headers, and sees the outcome of every call it admitted.
struct LimitCatalog(std::sync::Mutex<Vec<(String, Outcome)>>);

impl UpstreamGuard for LimitCatalog {
    fn admit(&self, service: &str) -> Result<(), Refusal> {
        if service != "catalog" {
            return Ok(());
        }
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("retry-after", axum::http::HeaderValue::from_static("3"));
        Err(Refusal {
            error: ApiError::new(ErrorKind::RateLimited, "the catalog's budget is spent"),
            headers: Some(Box::new(headers)),
        })
    }
    fn record(&self, service: &str, outcome: Outcome) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((service.to_string(), outcome));
        }
    }
}

#[tokio::test]
async fn the_guard_refuses_with_its_headers_and_sees_every_outcome() {
    let dead = closed_port().await;
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{{"service": "catalog", "upstream": "{dead}"}},
            {{"service": "auth", "upstream": "{dead}"}}]}}"#
    ))
    .expect("table");
    let issuer = issuer(3);
    let guard = Arc::new(LimitCatalog(std::sync::Mutex::default()));
    let gateway = Gateway::new(issuer, guard.clone(), Deadlines::default());
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: Default::default(),
        },
    )
    .await;

    let (status, head, json) = send(addr, "GET", "/api/v1/products", &[], "").await;
    assert_eq!((status, error_code(&json)), (429, "rate_limited"), "{json}");
    assert!(head.contains("retry-after: 3"), "{head}");
    let body = r#"{"email": "a@b.co", "password": "correct horse battery"}"#;
    let (status, _, _) = send(addr, "POST", "/api/v1/sessions", &[], body).await;
    assert_eq!(status, 503);
    // A refused connection is retried (sign-in is idempotent) and each attempt is seen.
    let seen = guard.0.lock().expect("lock").clone();
    assert_eq!(
        seen.len(),
        1 + crate::upstream::call::MAX_RETRIES as usize,
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(s, o)| s == "auth" && matches!(o, Outcome::Failed(_))),
        "{seen:?}"
    );
}

/// A shard whose port refuses connections for the first 150 ms (a new endpoint not yet
/// reachable): the read is retried with backoff and answers, instead of a 503.
#[tokio::test]
async fn a_refused_connection_is_retried_until_the_upstream_listens() {
    use storefront_inventory::{
        grpc::serve as serve_shard, memory::MemoryStock, ports::ShardPlace,
    };
    let issuer = issuer(5);
    let dead = closed_port().await;
    let ring = Ring::parse(&format!(
        r#"{{"service": "inventory", "epoch": 1, "algorithm": "jump",
            "shards": [{{"index": 0, "name": "s0", "address": "{dead}"}}]}}"#
    ))
    .expect("ring");
    let table = RouteTable::parse(
        r#"{"storefront": "shop", "routes": [{"service": "inventory", "ring": "r"}]}"#,
    )
    .expect("table");
    let gateway = Gateway::new(
        Arc::clone(&issuer),
        Arc::new(AllowAll),
        Deadlines::default(),
    );
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: [("inventory".to_string(), ring)].into(),
        },
    )
    .await;
    let store = Arc::new(MemoryStock::default());
    store
        .0
        .lock()
        .await
        .set_stock("SKU-0001-000001", 7)
        .expect("stock");
    let verifier = Arc::new(issuer.verifier());
    let shard = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let listener = TcpListener::bind(&dead)
            .await
            .expect("rebind the shard's port");
        let place = ShardPlace {
            index: 0,
            count: 1,
            epoch: 1,
        };
        serve_shard(listener, store, place, verifier, std::future::pending()).await
    });
    let started = std::time::Instant::now();
    let (status, _, body) = send(addr, "GET", "/api/v1/inventory/SKU-0001-000001", &[], "").await;
    assert_eq!(status, 200, "retried until the shard listened: {body}");
    assert_eq!(body["available"], 7);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(150),
        "the first attempt was refused"
    );
    shard.abort();
}

/// The shop-wide budget at the door: within it requests go through (here to a dead
/// upstream: 503) with the IETF headers; over it a 429 with `Retry-After`, before any call.
/// Without Redis the limiter is the local fallback, and the answers say so.
#[tokio::test]
async fn over_the_budget_is_a_429_with_ratelimit_headers() {
    let dead = closed_port().await;
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "gatewayRateLimit": {{"requestsPerMinute": 6, "burst": 2}},
            "routes": [{{"service": "catalog", "upstream": "{dead}",
                         "rateLimit": {{"requestsPerMinute": 600, "burst": 50}}}}]}}"#
    ))
    .expect("table");
    let issuer = issuer(6);
    let gateway = Gateway::new(issuer, Arc::new(AllowAll), Deadlines::default());
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: Default::default(),
        },
    )
    .await;

    for left in [1, 0] {
        let (status, head, json) = send(addr, "GET", "/api/v1/products", &[], "").await;
        assert_eq!(status, 503, "admitted, then the dead upstream: {json}");
        assert!(
            head.contains(r#"ratelimit-policy: "gateway";q=6;w=60, "catalog";q=600;w=60"#),
            "{head}"
        );
        assert!(
            head.contains(&format!(r#"ratelimit: "gateway";r={left};"#)),
            "{head}"
        );
        assert!(
            head.contains("storefront-ratelimit: fallback; replicas=1"),
            "{head}"
        );
    }
    let (status, head, json) = send(addr, "GET", "/api/v1/products", &[], "").await;
    assert_eq!((status, error_code(&json)), (429, "rate_limited"), "{json}");
    // One request per 10 s: the next token is due within 10 s (the retries of the two
    // admitted requests took some of it).
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("retry-after");
    assert!((1..=10).contains(&retry), "{head}");
    assert!(
        head.contains(&format!(r#"ratelimit: "gateway";r=0;t={retry}"#)),
        "{head}"
    );
    // The API document is not a service call: not limited.
    let (status, _, _) = send(addr, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, 200);
}

/// Retries stay inside the call's deadline: a first attempt refused (never sent) after
/// 200 ms and a retry that hangs end together at the deadline, not at 200 ms + a fresh
/// attempt timeout. (Virtual time: the clock only moves when every task waits.)
#[tokio::test(start_paused = true)]
async fn retries_never_stretch_a_call_past_its_deadline() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use crate::upstream::call::Retry;
    use storefront_platform::grpc::ServiceTokenAttacher;

    let issuer = issuer(3);
    let gateway = Gateway::new(
        Arc::clone(&issuer),
        Arc::new(AllowAll),
        Deadlines::default(),
    );
    let channel = crate::upstream::authed(
        crate::upstream::channel::H2Channel::lazy("127.0.0.1:9", None, Duration::from_millis(500))
            .expect("channel"),
        ServiceTokenAttacher::new(issuer, "gateway", "recommendations"),
    );
    let attempts = Arc::new(AtomicU32::new(0));
    let within = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let answer: Result<(), tonic::Status> = gateway
        .caller()
        .call_within("recommendations", channel, Retry::IfNotSent, within, |_| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut refused = tonic::Status::unavailable("tcp connect error");
                    refused.set_source(Arc::new(tonic::ConnectError("connection refused".into())));
                    Err(refused)
                } else {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok(tonic::Response::new(()))
                }
            }
        })
        .await;
    let took = started.elapsed();
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the refused attempt was retried"
    );
    assert_eq!(
        answer.expect_err("out of time").code(),
        tonic::Code::DeadlineExceeded
    );
    assert!(
        took <= within,
        "the call took {took:?}, past its {within:?} deadline"
    );
}
