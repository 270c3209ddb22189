//! Per-client limits against a real Redis and real gateways (issue 21): the report-and-adopt
//! script does what its Rust twin says ([`debit`]); and two gateway replicas sharing one
//! Redis, in front of the real shop on loopback, hold one signed-in client offering 10× its
//! limit — spread over both replicas, the worst case — to its limit, while other users and
//! other addresses (told apart through a trusted proxy's `X-Forwarded-For`) get every
//! request through, and a bad-token flood from one address is held to that address's limit
//! before it can spend the shop's budget.
//!
//! Needs `DATABASE_URL` and `REDIS_URL` (`workloads/scripts/test-datastores up` and its env).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::AsyncCommands;
use serde_json::json;
use storefront_platform::grpc::unix_now;
use storefront_workloads::gateway::{
    Gateway,
    ratelimit::{
        clients::{SCRIPT, debit},
        cluster::ClusterLimiter,
        gcra::Rate,
    },
    resilience::guard::AllowAll,
    routing::{
        self,
        table::{Loader, Sources},
    },
    upstream::Deadlines,
};

use super::gateway_support::{listener, send, shop};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

#[tokio::test]
async fn the_client_script_is_the_debit_function() {
    let mut redis = redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let key = format!("it:client-script:{}", std::process::id());
    let _: () = redis.del(&key).await.expect("del");
    let script = redis::Script::new(SCRIPT);
    let rate = Rate::per_minute(600, 5).expect("rate"); // 100 ms a token, 500 ms tolerance
    // A fresh bucket, reports that add up, one past the cap, one of nothing.
    for spent in [3u64, 1, 20, 0] {
        let before: Option<u64> = redis.get(&key).await.expect("get");
        let debt: Vec<i64> = script
            .key(&key)
            .arg(rate.interval_us)
            .arg(rate.burst)
            .arg(spent)
            .invoke_async(&mut redis)
            .await
            .expect("runs");
        let after: u64 = redis.get(&key).await.expect("get");
        let debt = u64::try_from(debt[0]).expect("a debt is never negative");
        // Redis' clock at the call: what the script stored less what it answered.
        let now = after - debt;
        assert_eq!(
            debit(before, now, rate, spent),
            (after, debt),
            "{spent} after {before:?}"
        );
        let ttl: i64 = redis.pttl(&key).await.expect("pttl");
        assert!(
            ttl > 0 && ttl <= i64::try_from(debt / 1000 + 1000).expect("small"),
            "expires a second after it would be full: {ttl} ms for {debt} µs"
        );
    }
    let after: u64 = redis.get(&key).await.expect("get");
    let (_, debt) = debit(Some(after), after - 1_000_000, rate, 0);
    assert!(debt <= 2 * 500_000, "the debt is capped at two bursts");
}

/// A gateway replica: the route table file, a limiter on the shared Redis (heartbeats and
/// client reports running), served with peer addresses as `run` does.
async fn replica(
    routes: &std::path::Path,
    rings: &std::path::Path,
    issuer: Arc<storefront_workloads::auth::domain::TokenIssuer>,
    shop_name: &str,
    member: &str,
) -> SocketAddr {
    let limiter = ClusterLimiter::new(Some(&redis_url()), "it", shop_name, member, 2).expect("url");
    limiter.heartbeat().await;
    tokio::spawn(limiter.clone().run_heartbeats());
    let gateway = Gateway::with_limiter(issuer, Arc::new(AllowAll), Deadlines::default(), limiter);
    let mut loader = Loader::new(Sources {
        routes_file: routes.to_path_buf(),
        rings_dir: rings.to_path_buf(),
    });
    routing::apply(&gateway, loader.poll()).expect("the route table applies");
    let (l, addr) = listener().await;
    let router = gateway.router();
    tokio::spawn(async move {
        axum::serve(
            l,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// Offers `per_s` requests a second for `secs` from one client (`headers`), spread over
/// `targets` in turn; returns (admitted: any status but 429, refused: 429, other statuses
/// seen).
async fn offer(
    targets: Vec<SocketAddr>,
    path: String,
    headers: Vec<(&'static str, String)>,
    per_s: u64,
    secs: f64,
) -> (u64, u64, Vec<u16>) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut calls = tokio::task::JoinSet::new();
    let mut n = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let target = targets[n % targets.len()];
        n += 1;
        let (path, headers) = (path.clone(), headers.clone());
        calls.spawn(async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(target, "GET", &path, &h, "").await.0
        });
    }
    let (mut admitted, mut refused, mut statuses) = (0, 0, Vec::new());
    while let Some(status) = calls.join_next().await {
        match status.expect("joins") {
            429 => refused += 1,
            s => {
                admitted += 1;
                if !statuses.contains(&s) {
                    statuses.push(s);
                }
            }
        }
    }
    (admitted, refused, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_at_ten_times_its_limit_gets_its_limit_and_the_others_everything() {
    let shop = shop("client_limits").await;
    let shop_name = format!("clients-{}", std::process::id());
    // Per user 10/s (burst 10), per address 5/s (burst 5); the shop's budget, 40/s, is what
    // the honest traffic (about 20/s) and the two floods' own limits (15/s) need, far less
    // than the floods offer (200/s): without per-client limits they would spend most of it.
    let mut routes = shop.routes.clone();
    routes["gatewayRateLimit"] = json!({"requestsPerMinute": 2400, "burst": 40});
    routes["clientLimits"] = json!({
        "perUser": {"requestsPerMinute": 600, "burst": 10},
        "perAddress": {"requestsPerMinute": 300, "burst": 5},
        "trustedProxies": ["127.0.0.0/8"],
    });
    let dir = std::env::temp_dir().join(format!("sf-client-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let routes_file = dir.join("routes.json");
    std::fs::write(&routes_file, routes.to_string()).expect("write");
    let rings = shop
        .ring_file
        .parent()
        .and_then(std::path::Path::parent)
        .expect("rings dir")
        .to_path_buf();
    let issuer = Arc::clone(&shop.issuer);
    let a = replica(
        &routes_file,
        &rings,
        Arc::clone(&issuer),
        &shop_name,
        "gw-a",
    )
    .await;
    let b = replica(
        &routes_file,
        &rings,
        Arc::clone(&issuer),
        &shop_name,
        "gw-b",
    )
    .await;

    let token = |user: &str| {
        let t = issuer
            .issue_user(user, &format!("{user}@example.com"), unix_now())
            .expect("token");
        format!("Bearer {}", t.token)
    };
    let product = format!("/api/v1/products/{}", shop.products[0].sku);
    let secs = 4.0;
    let mut runs = Vec::new();
    // The abuser: one signed-in user, 100/s over both replicas.
    runs.push(tokio::spawn(offer(
        vec![a, b],
        product.clone(),
        vec![("authorization", token("mallory"))],
        100,
        secs,
    )));
    // A bad-token flood from one address, 100/s.
    runs.push(tokio::spawn(offer(
        vec![a, b],
        "/api/v1/orders".to_string(),
        vec![
            ("authorization", "Bearer forged.token.here".to_string()),
            ("x-forwarded-for", "203.0.113.66".to_string()),
        ],
        100,
        secs,
    )));
    // Honest: four users at half their limit, each on one replica; two anonymous shoppers
    // at a fifth of the address limit.
    for (n, target) in [a, b, a, b].into_iter().enumerate() {
        runs.push(tokio::spawn(offer(
            vec![target],
            product.clone(),
            vec![("authorization", token(&format!("shopper-{n}")))],
            5,
            secs,
        )));
    }
    for (n, target) in [a, b].into_iter().enumerate() {
        runs.push(tokio::spawn(offer(
            vec![target],
            product.clone(),
            vec![("x-forwarded-for", format!("198.51.100.{n}"))],
            1,
            secs,
        )));
    }
    // In the order they were started.
    let mut results = Vec::new();
    for run in runs {
        results.push(run.await.expect("joins"));
    }
    let (abuser, flood, honest) = (&results[0], &results[1], &results[2..]);

    // Each limit: burst + rate × time, plus what spreading over two replicas can take before
    // they see each other (two bursts and two replicas' rate over a 100 ms report).
    let bound =
        |rate: f64, burst: f64| burst + rate * (secs + 0.5) + 2.0 * burst + 2.0 * rate * 0.1;
    println!(
        "figure: client limits: the abuser (100/s, limit 10/s) admitted {} refused {}; the \
         bad-token flood (100/s, address limit 5/s) admitted {} refused {}; honest clients \
         refused {} of {}",
        abuser.0,
        abuser.1,
        flood.0,
        flood.1,
        honest.iter().map(|h| h.1).sum::<u64>(),
        honest.iter().map(|h| h.0 + h.1).sum::<u64>()
    );
    assert!(
        (abuser.0 as f64) <= bound(10.0, 10.0),
        "the abuser got {} through, over its limit",
        abuser.0
    );
    assert!(
        abuser.0 as f64 >= 0.8 * 10.0 * secs,
        "the abuser still gets its limit: {}",
        abuser.0
    );
    assert_eq!(abuser.2, vec![200], "what it gets through is served");
    assert!(
        (flood.0 as f64) <= bound(5.0, 5.0),
        "the bad-token flood got {} through",
        flood.0
    );
    assert_eq!(flood.2, vec![401], "bad tokens are 401 when not limited");
    for (n, h) in honest.iter().enumerate() {
        assert_eq!(h.1, 0, "honest client {n} was refused {} times", h.1);
        assert_eq!(h.2, vec![200], "honest client {n}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
