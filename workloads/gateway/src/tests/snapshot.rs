//! The "no behaviour change" guard of the gateway's layout: snapshots of the served API.

use std::sync::Arc;

use super::{closed_port, issuer, send, serve};
use crate::{
    Gateway,
    resilience::guard::{Outcome, Refusal, UpstreamGuard},
    routing::table::{RouteTable, Snapshot},
    upstream::Deadlines,
};
use storefront_contracts::api::{ApiError, ErrorKind};
use storefront_crds::ring::Ring;
use storefront_platform::grpc::unix_now;

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
