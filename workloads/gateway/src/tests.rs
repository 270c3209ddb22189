//! The gateway on a real socket with every upstream down (routes to closed ports): every
//! listed route answers (no 404 "no route", no 405), input is checked before any call, an
//! unavailable service is a 503 JSON error, recommendations degrade to an empty list, a
//! hung upstream is cut at its deadline, and the guard seam refuses with its own headers.

use std::{net::SocketAddr, sync::Arc};

use serde_json::Value;
use storefront_crds::ring::Ring;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{
    Gateway, openapi,
    table::{RouteTable, Snapshot},
    upstream::{AllowAll, Deadlines, Outcome, Refusal, UpstreamGuard},
};
use storefront_contracts::api::{ApiError, DEGRADED_HEADER, ErrorKind};
use storefront_platform::grpc::unix_now;
use storefront_platform::token::{SigningKeys, TokenIssuer};

/// One HTTP/1.1 exchange: `(status, lower-case headers, JSON body or Null)`.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A token issuer for the shop `shop` from `seed`.
fn issuer(seed: u8) -> Arc<TokenIssuer> {
    Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([seed; 32]).expect("key"),
        "shop",
        600,
        60,
    ))
}

/// Applies `snapshot` to `gateway` and serves its router on a loopback port.
async fn serve(gateway: Gateway, snapshot: Snapshot) -> SocketAddr {
    gateway.apply(snapshot).expect("applies");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
    addr
}

async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr.to_string()
}

async fn down_gateway(with_recommendations: bool) -> (SocketAddr, Arc<TokenIssuer>) {
    let dead = closed_port().await;
    let mut routes = vec![
        format!(r#"{{"service": "auth", "upstream": "{dead}"}}"#),
        format!(r#"{{"service": "catalog", "upstream": "{dead}"}}"#),
        format!(r#"{{"service": "orders", "upstream": "{dead}"}}"#),
        r#"{"service": "inventory", "ring": "r"}"#.to_string(),
    ];
    if with_recommendations {
        routes.push(format!(
            r#"{{"service": "recommendations", "upstream": "{dead}"}}"#
        ));
    }
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{}]}}"#,
        routes.join(",")
    ))
    .expect("table");
    let ring = Ring::parse(&format!(
        r#"{{"service": "inventory", "epoch": 1, "algorithm": "jump",
            "shards": [{{"index": 0, "name": "s0", "address": "{dead}"}}]}}"#
    ))
    .expect("ring");
    let issuer = issuer(3);
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
    (addr, issuer)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or("<no JSON error body>")
}

#[tokio::test]
async fn every_route_answers_and_upstreams_down_are_503() {
    let (addr, issuer) = down_gateway(false).await;
    let token = issuer
        .issue_user("u1", "a@b.c", unix_now())
        .expect("token")
        .token;
    let bearer = format!("Bearer {token}");
    let order = r#"{"items": [{"sku": "SKU-1", "quantity": 1}]}"#;
    for (path, methods) in openapi::ROUTES {
        let path = path.replace("{sku}", "SKU-1").replace("{id}", "o-1");
        for method in *methods {
            let method = method.to_ascii_uppercase();
            let body = match path.as_str() {
                "/api/v1/users" | "/api/v1/sessions" => r#"{"email": "a@b.c", "password": "pw"}"#,
                "/api/v1/orders" if method == "POST" => order,
                _ => "",
            };
            let headers = [
                ("authorization", bearer.as_str()),
                ("idempotency-key", "k1"),
            ];
            let (status, _, json) = send(addr, &method, &path, &headers, body).await;
            if path == "/api/v1/openapi.json" {
                assert_eq!(status, 200);
                assert_eq!(json["openapi"], "3.1.0");
                continue;
            }
            if path.ends_with("/recommendations") {
                assert_eq!((status, &json), (200, &serde_json::json!({"items": []})));
                continue;
            }
            assert_eq!(status, 503, "{method} {path}: {json}");
            assert_eq!(error_code(&json), "service_unavailable", "{method} {path}");
        }
    }
    let (status, _, json) = send(addr, "DELETE", "/api/v1/orders", &[], "").await;
    assert_eq!((status, error_code(&json)), (405, "method_not_allowed"));
    let (status, _, json) = send(addr, "GET", "/api/v1/nothing", &[], "").await;
    assert_eq!((status, error_code(&json)), (404, "not_found"));
}

/// `(method, path, headers, body, status, error code)`.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    String,
    u16,
    &'a str,
);

#[tokio::test]
async fn input_is_checked_before_any_call() {
    let (addr, issuer) = down_gateway(true).await;
    let token = issuer
        .issue_user("u1", "a@b.c", unix_now())
        .expect("token")
        .token;
    let bearer = format!("Bearer {token}");
    let auth = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "k1"),
    ];
    let big = format!(r#"{{"email": "{}", "password": "x"}}"#, "a".repeat(70_000));
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/users",
            vec![],
            "{".into(),
            400,
            "malformed_request",
        ),
        (
            "POST",
            "/api/v1/users",
            vec![],
            "".into(),
            400,
            "malformed_request",
        ),
        (
            "POST",
            "/api/v1/users",
            vec![],
            r#"{"email": "a@b.c"}"#.into(),
            400,
            "malformed_request",
        ),
        (
            "POST",
            "/api/v1/users",
            vec![],
            big,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/orders",
            vec![],
            "{}".into(),
            401,
            "unauthenticated",
        ),
        (
            "GET",
            "/api/v1/orders",
            vec![("authorization", "Bearer x.y.z")],
            "".into(),
            401,
            "unauthenticated",
        ),
        (
            "POST",
            "/api/v1/orders",
            vec![("authorization", bearer.as_str())],
            "{}".into(),
            400,
            "malformed_request",
        ),
        (
            "POST",
            "/api/v1/orders",
            auth.to_vec(),
            r#"{"items": [{"sku": "A", "quantity": 0}]}"#.into(),
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/orders",
            auth.to_vec(),
            r#"{"items": [{"sku": "A", "quantity": 1, "coupon": 1}]}"#.into(),
            400,
            "malformed_request",
        ),
        (
            "GET",
            "/api/v1/products?limit=0",
            vec![],
            "".into(),
            422,
            "invalid_request",
        ),
        (
            "GET",
            "/api/v1/products?limit=ten",
            vec![],
            "".into(),
            400,
            "malformed_request",
        ),
        (
            "GET",
            "/api/v1/products?colour=red",
            vec![],
            "".into(),
            400,
            "malformed_request",
        ),
        (
            "GET",
            "/api/v1/products/bad%20sku",
            vec![],
            "".into(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/inventory/bad%20sku",
            vec![],
            "".into(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/products/%FF",
            vec![],
            "".into(),
            400,
            "malformed_request",
        ),
        (
            "GET",
            "/api/v1/orders/%FF%FE",
            vec![("authorization", bearer.as_str())],
            "".into(),
            400,
            "malformed_request",
        ),
    ];
    for (method, path, headers, body, want, code) in cases {
        let (status, _, json) = send(addr, method, path, &headers, &body).await;
        assert_eq!(
            (status, error_code(&json)),
            (want, code),
            "{method} {path} {body:.60}: {json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
    }
    // Recommendations down: an empty list that says it is degraded, not an error.
    let (status, head, json) = send(
        addr,
        "GET",
        "/api/v1/products/SKU-1/recommendations",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json, serde_json::json!({"items": []}));
    let header = format!("{}: recommendations", DEGRADED_HEADER.to_ascii_lowercase());
    assert!(head.contains(&header), "{head}");
}

#[tokio::test]
async fn a_hung_upstream_is_a_503_after_the_deadline() {
    // Accepts connections and never answers (not even the HTTP/2 preface).
    let hung = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{{"service": "catalog", "upstream": "{hung_addr}"}}]}}"#
    ))
    .expect("table");
    let issuer = issuer(3);
    let deadlines = Deadlines {
        call: std::time::Duration::from_millis(300),
        connect: std::time::Duration::from_millis(300),
        supporting: std::time::Duration::from_millis(100),
        body: std::time::Duration::from_millis(200),
    };
    let gateway = Gateway::new(issuer, Arc::new(AllowAll), deadlines);
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: Default::default(),
        },
    )
    .await;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        send(addr, "GET", "/api/v1/products?q=kettle", &[], ""),
    )
    .await
    .expect("the gateway answers instead of waiting on the upstream");
    let (status, _, json) = answer;
    assert_eq!(
        (status, error_code(&json)),
        (503, "service_unavailable"),
        "{json}"
    );
}

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
        1 + super::call::MAX_RETRIES as usize,
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
    use storefront_inventory::grpc::{MemoryStock, ShardPlace, serve as serve_shard};
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

    use super::call::Retry;
    use storefront_platform::grpc::ServiceTokenAttacher;

    let issuer = issuer(3);
    let gateway = Gateway::new(
        Arc::clone(&issuer),
        Arc::new(AllowAll),
        Deadlines::default(),
    );
    let channel = super::upstream::authed(
        super::channel::H2Channel::lazy("127.0.0.1:9", None, Duration::from_millis(500))
            .expect("channel"),
        ServiceTokenAttacher::new(issuer, "gateway", "recommendations"),
    );
    let attempts = Arc::new(AtomicU32::new(0));
    let within = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let answer: Result<(), tonic::Status> = gateway
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

/// A guard that refuses every call and remembers which services it was asked for: the
/// first upstream a route calls, without calling it.
struct RefuseAll(std::sync::Mutex<Vec<String>>);

impl UpstreamGuard for RefuseAll {
    fn admit(&self, service: &str) -> Result<(), Refusal> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(service.to_string());
        }
        Err(ApiError::new(
            ErrorKind::Unavailable,
            format!("{service} refused by the test"),
        )
        .into())
    }
    fn record(&self, _service: &str, _outcome: Outcome) {}
}

/// The "no behaviour change" guard of the gateway's layout: the OpenAPI document as served
/// at `/api/v1/openapi.json`, and what the router does with every method on every
/// documented path (status, the first upstream it asks the guard for, the rate-limit scopes
/// it checks), as snapshots.
#[tokio::test]
async fn the_served_api_is_the_snapshot() {
    let dead = closed_port().await;
    let services = ["auth", "catalog", "orders", "recommendations"];
    let mut routes: Vec<String> = services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"service": "{s}", "upstream": "{dead}",
                    "rateLimit": {{"requestsPerMinute": {}, "burst": 1000}}}}"#,
                100_000 + i
            )
        })
        .collect();
    routes.push(
        r#"{"service": "inventory", "ring": "r",
            "rateLimit": {"requestsPerMinute": 100009, "burst": 1000}}"#
            .to_string(),
    );
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "gatewayRateLimit": {{"requestsPerMinute": 1000000, "burst": 10000}},
            "routes": [{}]}}"#,
        routes.join(",")
    ))
    .expect("table");
    let ring = Ring::parse(&format!(
        r#"{{"service": "inventory", "epoch": 1, "algorithm": "jump",
            "shards": [{{"index": 0, "name": "s0", "address": "{dead}"}}]}}"#
    ))
    .expect("ring");
    let issuer = issuer(7);
    let guard = Arc::new(RefuseAll(std::sync::Mutex::default()));
    let gateway = Gateway::new(Arc::clone(&issuer), guard.clone(), Deadlines::default());
    let addr = serve(
        gateway,
        Snapshot {
            table,
            rings: [("inventory".to_string(), ring)].into(),
        },
    )
    .await;

    let (status, _, document) = send(addr, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    let settings = || {
        let mut s = insta::Settings::clone_current();
        s.set_prepend_module_to_snapshot(false);
        s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/src/snapshots"));
        s
    };
    settings().bind(|| {
        insta::assert_snapshot!(
            "openapi_json",
            serde_json::to_string_pretty(&document).expect("pretty")
        );
    });

    let token = issuer
        .issue_user("u1", "a@b.c", unix_now())
        .expect("token")
        .token;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "k1"),
    ];
    let paths = document["paths"].as_object().expect("paths");
    let mut served = String::new();
    for template in paths.keys() {
        let path = template.replace("{sku}", "SKU-1").replace("{id}", "o-1");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let body = match (method, path.as_str()) {
                ("POST", "/api/v1/users" | "/api/v1/sessions") => {
                    r#"{"email": "a@b.c", "password": "pw"}"#
                }
                ("POST", "/api/v1/orders") => r#"{"items": [{"sku": "SKU-1", "quantity": 1}]}"#,
                _ => "",
            };
            guard.0.lock().expect("lock").clear();
            let (status, head, _) = send(addr, method, &path, &headers, body).await;
            let asked = guard.0.lock().expect("lock").clone();
            let scopes: Vec<&str> = head
                .lines()
                .find_map(|l| l.strip_prefix("ratelimit-policy: "))
                .map(|p| p.split(", ").filter_map(|b| b.split('"').nth(1)).collect())
                .unwrap_or_default();
            let or_dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
            served.push_str(&format!(
                "{method:<6} {template:<40} {status}  upstream={:<16} scopes={}\n",
                or_dash(asked.join(",")),
                or_dash(scopes.join(","))
            ));
        }
    }
    settings().bind(|| insta::assert_snapshot!("served_routes", served));
}
