//! The gateway on a real socket with every upstream down (routes to closed ports): every
//! listed route answers (no 404 "no route", no 405), input is checked before any call, an
//! unavailable service is a 503 JSON error, recommendations degrade to an empty list, a
//! hung upstream is cut at its deadline; [`calls`]: the guard refuses with its own headers,
//! retries and budgets; [`overload`]: an overloaded upstream (503, `Retry-After`) and the
//! email rule at the edge; [`request_ids`]: `X-Request-Id` on every answer and to the
//! upstream, and a failing service's words kept out of the body; [`throttle`]: auth's
//! throttle as a 429 and the client address passed to it; [`snapshot`]: the served API as
//! snapshots. A fake auth behind the gateway is [`fake_auth`].

use std::{net::SocketAddr, sync::Arc};

use serde_json::Value;
use storefront_crds::ring::Ring;
use tokio::net::TcpListener;

pub(super) use crate::test_client::send;
use crate::{
    Gateway,
    http::ROUTES,
    resilience::guard::AllowAll,
    routing::table::{RouteTable, Snapshot},
    upstream::Deadlines,
};
use storefront_contracts::api::DEGRADED_HEADER;
use storefront_platform::grpc::unix_now;
use storefront_platform::token::{SigningKeys, TokenIssuer};

/// A token issuer for the shop `shop` from `seed`.
fn issuer(seed: u8) -> Arc<TokenIssuer> {
    Arc::new(TokenIssuer::new(
        SigningKeys::from_seed([seed; 32]).expect("key"),
        "shop",
        600,
        60,
    ))
}

/// `auth` (a fake auth server) on a loopback port, and the route table that routes auth
/// (only) to it.
async fn fake_auth<A: storefront_contracts::proto::auth::auth_server::Auth>(auth: A) -> Snapshot {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(storefront_contracts::proto::auth::auth_server::AuthServer::new(auth))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let table = RouteTable::parse(&format!(
        r#"{{"storefront": "shop", "routes": [{{"service": "auth", "upstream": "{upstream}"}}]}}"#
    ))
    .expect("table");
    Snapshot {
        table,
        rings: Default::default(),
    }
}

/// The `Retry-After` value of a response head.
fn retry_after(head: &str) -> Option<&str> {
    head.lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map(str::trim)
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
    for route in ROUTES {
        let path = route.path.replace("{sku}", "SKU-1").replace("{id}", "o-1");
        {
            let method = route.method.name().to_ascii_uppercase();
            let body = match path.as_str() {
                "/api/v1/users" | "/api/v1/sessions" => r#"{"email": "a@b.c", "password": "pw"}"#,
                "/api/v1/orders" if method == "POST" => order,
                _ => "",
            };
            let headers = [
                ("authorization", bearer.as_str()),
                ("idempotency-key", "k1"),
            ];
            let (status, head, json) = send(addr, &method, &path, &headers, body).await;
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("x-request-id: "))
                .unwrap_or_else(|| panic!("{method} {path}: no X-Request-Id in {head}"));
            if status >= 400 {
                assert_eq!(json["error"]["requestId"], id.trim(), "{method} {path}");
            }
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
            assert!(
                !json["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("error"),
                "{method} {path}: the connection's error stays in the logs: {json}"
            );
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

mod calls;
mod overload;
mod request_ids;
mod snapshot;
mod throttle;
