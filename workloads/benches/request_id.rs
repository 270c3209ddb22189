//! What the gateway's request ids cost per request: a route behind the request-id layers
//! (`gateway::http::request_id::layer`: drop an invalid client id, tower-http's
//! `SetRequestId` and `PropagateRequestId`, the task-local scope) beside the same route
//! without them, in process (axum's router called as a tower service, no socket):
//!
//! - `plain` / `layered`: a 200 with a fixed JSON body (the size of an order's answer);
//!   `layered` once with an id made here (a UUIDv4) and once with the client's;
//! - `error_plain` / `error_layered`: a 503 JSON error; layered, its body is rendered again
//!   with `requestId`.
//!
//! After criterion's groups, each case is timed again in plain loops (median of rounds that
//! alternate the cases) and `figure:` lines print what the layers add, in µs per request.
//! A proxied request costs the gateway about 20 µs of CPU (docs/benchmarks.md, Gateway).
//!
//! `cargo bench -p storefront-workloads --bench request_id`

use std::time::{Duration, Instant};

use axum::{Router, body::Body, http::Request, routing::get};
use criterion::Criterion;
use storefront_workloads::{
    api::{ApiError, ErrorKind},
    gateway::http::request_id,
};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// An answer about the size of `GET /api/v1/orders/{id}`'s.
const ORDER: &str = r#"{"orderId":"o-6c1f0e6a2b7d4c39a1e5f0d2c4b6a8e0","status":"CONFIRMED","items":[{"sku":"SKU-000123","quantity":2,"priceCents":1999}],"totalCents":3998,"currency":"USD"}"#;

fn routes() -> Router {
    Router::new().route("/ok", get(|| async { ORDER })).route(
        "/error",
        get(|| async {
            ApiError::new(
                ErrorKind::Unavailable,
                "the orders service is unavailable; retry shortly",
            )
        }),
    )
}

/// One request to `path` through `router`, with the client's id when given.
async fn one(router: &Router, path: &str, client_id: Option<&str>) {
    let mut request = Request::get(path);
    if let Some(id) = client_id {
        request = request.header("x-request-id", id);
    }
    let Ok(request) = request.body(Body::empty()) else {
        panic!("the request builds");
    };
    let Ok(response) = router.clone().oneshot(request).await;
    std::hint::black_box(response);
}

/// The cases: name, router, path, client id.
fn cases() -> Vec<(&'static str, Router, &'static str, Option<&'static str>)> {
    vec![
        ("plain", routes(), "/ok", None),
        ("layered_made_id", request_id::layer(routes()), "/ok", None),
        (
            "layered_client_id",
            request_id::layer(routes()),
            "/ok",
            Some("client-7f3a9c"),
        ),
        ("error_plain", routes(), "/error", None),
        ("error_layered", request_id::layer(routes()), "/error", None),
    ]
}

fn requests(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("request_id");
    for (name, router, path, id) in cases() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        one(&router, path, id).await;
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// µs per request of each case, as the median of rounds that alternate the cases.
fn figures(rt: &Runtime) {
    const ROUNDS: usize = 11;
    const PER_ROUND: u32 = 100_000;
    let cases = cases();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, router, path, id)) in cases.iter().enumerate() {
            let took: Duration = rt.block_on(async {
                let started = Instant::now();
                for _ in 0..PER_ROUND {
                    one(router, path, *id).await;
                }
                started.elapsed()
            });
            times[i].push(took.as_secs_f64() * 1e6 / f64::from(PER_ROUND));
        }
    }
    let median: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[ROUNDS / 2]
        })
        .collect();
    for (i, (name, ..)) in cases.iter().enumerate() {
        println!("figure: {name}: {:.3} µs/request", median[i]);
    }
    println!(
        "figure: the layers add {:.3} µs (id made), {:.3} µs (client's id), {:.3} µs (an error body)",
        median[1] - median[0],
        median[2] - median[0],
        median[4] - median[3]
    );
}

fn main() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        panic!("a tokio runtime");
    };
    let mut c = Criterion::default().configure_from_args();
    requests(&mut c, &rt);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once; the figures only under `cargo bench`.
    if std::env::args().any(|a| a == "--bench") {
        figures(&rt);
    }
}
