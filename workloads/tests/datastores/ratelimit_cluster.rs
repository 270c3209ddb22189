//! The cluster-wide limiter against a real Redis: 1, 2 and 5 limiter instances (gateway
//! replicas) share one budget and together admit what one exact limiter would, in fair
//! shares when it is saturated (equal load → equal parts; a light instance gets all it
//! asks); Redis
//! stopped mid-run → every instance falls back at once (no check waits on Redis), enforces
//! its share, and says so (flag, reason, metric); Redis back → shared budgets again.
//!
//! Needs `REDIS_URL` and `redis-server` on the PATH (run by
//! `workloads/scripts/integration`): `workloads/scripts/test-datastores up && eval "$(…env)"`.
//! The outage test runs a Redis of its own, so stopping it disturbs no other test.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use prometheus_client::registry::Registry;
use storefront_workloads::gateway::ratelimit::cluster::{ClusterLimiter, Policy};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

fn budget(rpm: u32, burst: u32) -> Vec<Policy> {
    vec![Policy {
        scope: "gateway".into(),
        requests_per_minute: rpm,
        burst,
    }]
}

async fn limiters(url: &str, shop: &str, n: usize, rpm: u32, burst: u32) -> Vec<ClusterLimiter> {
    let mut out = Vec::new();
    for i in 0..n {
        let l = ClusterLimiter::new(Some(url), "it", shop, &format!("gw-{i}"), 1).expect("url");
        l.configure(&budget(rpm, burst)).expect("valid");
        out.push(l);
    }
    // Twice: the first round's early members have not seen the later ones yet.
    for _ in 0..2 {
        for l in &out {
            l.heartbeat().await;
            assert!(!l.degraded(), "{:?}", l.degraded_reason());
        }
    }
    out
}

/// Offers `per_s` requests a second in total, split evenly, for `secs`; returns the count
/// admitted on shared tokens, the count admitted by the local fallback (a Redis call slower
/// than its 50 ms deadline on a busy machine switches a replica to its share until the next
/// heartbeat), and the elapsed time.
async fn offer(limiters: &[ClusterLimiter], per_s: u64, secs: u64) -> (u64, u64, f64) {
    let n = limiters.len() as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for l in limiters {
        let l = l.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * n / per_s));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let until = Instant::now() + Duration::from_secs(secs);
            let (mut shared, mut local) = (0u64, 0u64);
            while Instant::now() < until {
                tick.tick().await;
                let v = l.check("gateway").await.expect("budget");
                match (v.allowed, v.fallback) {
                    (true, false) => shared += 1,
                    (true, true) => local += 1,
                    _ => {}
                }
            }
            (shared, local)
        });
    }
    let (mut shared, mut local) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (s, l) = r.expect("joins");
        shared += s;
        local += l;
    }
    (shared, local, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_two_and_five_instances_share_one_budget() {
    let url = redis_url();
    // 100 requests/s with a burst of 20, offered at 2× for 4 s.
    let (rpm, burst, offered, secs) = (6_000u32, 20u32, 200u64, 4u64);
    for n in [1usize, 2, 5] {
        let shop = format!("share-{}-{n}", std::process::id());
        let ls = limiters(&url, &shop, n, rpm, burst).await;
        let (admitted, by_fallback, elapsed) = offer(&ls, offered, secs).await;
        let exact = f64::from(burst) + f64::from(rpm) / 60.0 * elapsed;
        let ratio = admitted as f64 / exact;
        println!(
            "figure: {n} instance(s): admitted {admitted} on shared tokens (+{by_fallback} by \
             the fallback) of {:.0} offered, an exact limiter {exact:.0} → {ratio:.3}",
            offered as f64 * elapsed
        );
        // The stated bound: at most one lease lifetime (250 ms) of rate over, plus one.
        let bound = exact + f64::from(rpm) / 60.0 * 0.25 + 1.0;
        assert!((admitted as f64) <= bound, "{n}: {admitted} > {bound:.0}");
        assert!(
            (by_fallback as f64) < exact * 0.1,
            "{n}: the fallback admitted {by_fallback}: Redis is healthy here"
        );
        assert!(
            ratio >= 0.9,
            "{n}: the budget is used, not starved: {admitted} of {exact:.0}"
        );
        assert!(ls.iter().all(|l| !l.degraded()));
        assert!(
            ls.iter().all(|l| l.replicas() == n as u64),
            "every instance counted {n} live replicas"
        );
    }
}

/// What [`offer_each`] counted.
struct Offered {
    /// Per instance, counted after the warm-up: (admitted on shared tokens, admitted by the
    /// fallback, offered).
    rows: Vec<(u64, u64, u64)>,
    /// Admitted by all instances over the whole run (warm-up included).
    admitted: u64,
    /// The whole run and the counted part of it, seconds.
    elapsed: f64,
    counted: f64,
}

/// Offers each instance its own rate (`per_s[i]` requests a second) for `warmup + secs`
/// seconds, the way one client behind a Service does: one clock for all, and at each tick
/// the requests due are sent (as concurrent tasks, like a server's) to the instances in the
/// same order — so some instances always ask a moment before others. Per-instance counts
/// start after the warm-up (steady state: instances that start together split their first
/// second by up to their own buckets' bursts, see the `lease` module's docs).
async fn offer_each(limiters: &[ClusterLimiter], per_s: &[u64], warmup: u64, secs: u64) -> Offered {
    let mut tasks = tokio::task::JoinSet::new();
    let mut offered = vec![0u64; limiters.len()];
    let mut counted_from = vec![u64::MAX; limiters.len()];
    let started = tokio::time::Instant::now();
    let warm = Duration::from_secs(warmup);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut measured_at = None;
    while started.elapsed() < Duration::from_secs(warmup + secs) {
        tick.tick().await;
        let t = started.elapsed();
        if t >= warm && measured_at.is_none() {
            measured_at = Some(tokio::time::Instant::now());
            counted_from.clone_from(&offered);
        }
        for (i, l) in limiters.iter().enumerate() {
            let due = (t.as_secs_f64() * per_s[i] as f64) as u64 + 1;
            while offered[i] < due {
                offered[i] += 1;
                let counted = measured_at.is_some();
                let l = l.clone();
                tasks.spawn(async move { (i, counted, l.check("gateway").await.expect("budget")) });
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let counted = measured_at.map_or(0.0, |m| m.elapsed().as_secs_f64());
    let mut rows: Vec<(u64, u64, u64)> = offered
        .iter()
        .zip(&counted_from)
        .map(|(&o, &from)| (0, 0, o.saturating_sub(from)))
        .collect();
    let mut admitted = 0;
    while let Some(r) = tasks.join_next().await {
        let (i, counted, v) = r.expect("joins");
        admitted += u64::from(v.allowed);
        if !counted {
            continue;
        }
        match (v.allowed, v.fallback) {
            (true, false) => rows[i].0 += 1,
            (true, true) => rows[i].1 += 1,
            _ => {}
        }
    }
    Offered {
        rows,
        admitted,
        elapsed,
        counted,
    }
}

/// Max/min of the admitted counts (shared and fallback) of `rows`.
fn spread(rows: &[(u64, u64, u64)]) -> f64 {
    let admitted = rows.iter().map(|r| r.0 + r.1);
    let (max, min) = (
        admitted.clone().max().unwrap_or(0),
        admitted.min().unwrap_or(0),
    );
    max as f64 / min.max(1) as f64
}

/// Five instances offered the same load, twice the budget in total: each admits about the
/// budget ÷ 5 (max/min ≤ 1.3, each within 20% of its fair part), and the total stays within
/// the stated bound. A replica that asks Redis a moment earlier does not win more of the
/// budget. (Before fair shares: max/min 6.3 here, [220, 219, 73, 35, 56].)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_demand_over_a_saturated_budget_gets_equal_shares() {
    let url = redis_url();
    let (rpm, burst, each, warmup, secs) = (6_000u32, 20u32, 40u64, 2u64, 6u64);
    let shop = format!("fair-{}", std::process::id());
    let ls = limiters(&url, &shop, 5, rpm, burst).await;
    let run = offer_each(&ls, &[each; 5], warmup, secs).await;
    let exact = f64::from(burst) + f64::from(rpm) / 60.0 * run.elapsed;
    let per: Vec<u64> = run.rows.iter().map(|r| r.0 + r.1).collect();
    let ratio = spread(&run.rows);
    println!(
        "figure: 5 instances offered {each}/s each over a {rpm} rpm budget: admitted per \
         instance {per:?} in {:.1} s after a {warmup} s warm-up, max/min {ratio:.2}; total \
         {} of an exact {exact:.0} over the whole run",
        run.counted, run.admitted
    );
    let bound = exact + f64::from(rpm) / 60.0 * 0.25 + 1.0;
    assert!(
        (run.admitted as f64) <= bound,
        "{} > {bound:.0}",
        run.admitted
    );
    assert!(
        run.admitted as f64 >= exact * 0.9,
        "the budget is used: {} of {exact:.0}",
        run.admitted
    );
    assert!(ratio <= 1.3, "unfair shares: {per:?} (max/min {ratio:.2})");
    let fair = f64::from(rpm) / 60.0 * run.counted / 5.0;
    for (i, &a) in per.iter().enumerate() {
        assert!(
            (a as f64 - fair).abs() <= fair * 0.2,
            "instance {i} admitted {a}, its fair share is {fair:.0}: {per:?}"
        );
    }
}

/// One instance asks for 10% of the budget, four others saturate it: the light one gets all
/// it asks (≥ 95%; max-min fairness), the four split the rest evenly (max/min ≤ 1.3), and
/// the total stays within the bound. (Before fair shares: the light one got 52 of 61, the
/// heavy ones [230, 201, 46, 74], max/min 5.0; with fair shares but no reserve kept for
/// replicas below their share, 55–60 of 61.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_instance_gets_all_it_asks_while_others_saturate() {
    let url = redis_url();
    let (rpm, burst, warmup, secs) = (6_000u32, 20u32, 2u64, 6u64);
    let offered = [10u64, 45, 45, 45, 45];
    let shop = format!("maxmin-{}", std::process::id());
    let ls = limiters(&url, &shop, 5, rpm, burst).await;
    let run = offer_each(&ls, &offered, warmup, secs).await;
    let exact = f64::from(burst) + f64::from(rpm) / 60.0 * run.elapsed;
    let per: Vec<u64> = run.rows.iter().map(|r| r.0 + r.1).collect();
    let heavy = spread(&run.rows[1..]);
    println!(
        "figure: 1 instance offered 10/s and 4 offered 45/s each over a {rpm} rpm budget: \
         admitted per instance {per:?} in {:.1} s after a {warmup} s warm-up (light: {} of {} \
         offered), heavy max/min {heavy:.2}; total {} of an exact {exact:.0} over the whole run",
        run.counted, per[0], run.rows[0].2, run.admitted
    );
    let bound = exact + f64::from(rpm) / 60.0 * 0.25 + 1.0;
    assert!(
        (run.admitted as f64) <= bound,
        "{} > {bound:.0}",
        run.admitted
    );
    assert!(
        per[0] as f64 >= run.rows[0].2 as f64 * 0.95,
        "the light instance got {} of the {} it asked: {per:?}",
        per[0],
        run.rows[0].2
    );
    assert!(
        heavy <= 1.3,
        "unfair shares among the heavy: {per:?} (max/min {heavy:.2})"
    );
}

/// An unsaturated budget is not split: one instance offered 80% of the budget beside two at
/// 5% each — every instance gets (nearly) all it asks, the busy one far more than a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsaturated_budget_is_not_split() {
    let url = redis_url();
    let (rpm, burst, warmup, secs) = (6_000u32, 20u32, 2u64, 6u64);
    let offered = [80u64, 5, 5];
    let shop = format!("unsaturated-{}", std::process::id());
    let ls = limiters(&url, &shop, 3, rpm, burst).await;
    let run = offer_each(&ls, &offered, warmup, secs).await;
    let per: Vec<u64> = run.rows.iter().map(|r| r.0 + r.1).collect();
    let asked: Vec<u64> = run.rows.iter().map(|r| r.2).collect();
    println!(
        "figure: 3 instances offered 80/s, 5/s and 5/s under a {rpm} rpm budget: admitted \
         {per:?} of {asked:?} asked in {:.1} s after a {warmup} s warm-up",
        run.counted
    );
    for (i, (&a, &o)) in per.iter().zip(&asked).enumerate() {
        assert!(
            a as f64 >= o as f64 * 0.95,
            "instance {i} got {a} of the {o} it asked under an unsaturated budget: {per:?}"
        );
    }
}

struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_at_once_and_redis_back_shares_again() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    // 600/min (10/s) with a burst of 10, two replicas.
    let ls = limiters(&url, "outage", 2, 600, 10).await;
    let mut registry = Registry::default();
    ls[0].register(&mut registry);
    for l in &ls {
        l.heartbeat().await;
    }
    assert_eq!(ls[0].replicas(), 2);
    let v = ls[0].check("gateway").await.expect("budget");
    assert!(v.allowed && !v.fallback, "{v:?}");

    redis.stop();
    let stopped = Instant::now();
    // Checks go on; none waits on the dead Redis for long, and the fallback takes over.
    let mut slowest = Duration::ZERO;
    let mut fell_back = None;
    while stopped.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let v = ls[0].check("gateway").await.expect("budget");
        slowest = slowest.max(t.elapsed());
        if v.fallback {
            fell_back = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fell_back = fell_back.expect("the limiter fell back within 5 s");
    println!(
        "figure: Redis stopped → fallback after {} ms; slowest check meanwhile {} ms",
        fell_back.as_millis(),
        slowest.as_millis()
    );
    assert!(
        slowest < Duration::from_millis(200),
        "a check waited {slowest:?} on a dead Redis"
    );
    assert!(ls[0].degraded());
    let reason = ls[0].degraded_reason().expect("a reason");
    assert!(reason.contains("÷ 2"), "{reason}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    assert!(text.contains("storefront_ratelimit_degraded 1"), "{text}");
    assert!(
        text.contains(r#"mode="fallback""#),
        "fallback decisions are counted: {text}"
    );
    // Each replica enforces half the budget: a burst of 30 at once admits at most 5 (+1
    // for a token refilled meanwhile) on this one.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut admitted = 0;
    for _ in 0..30 {
        if ls[1].check("gateway").await.expect("budget").allowed {
            admitted += 1;
        }
    }
    assert!(ls[1].degraded());
    assert!(
        (1..=6).contains(&admitted),
        "half of the burst of 10 on one of two replicas, never unlimited: {admitted}"
    );

    // Redis back: the next heartbeat shares the budget again.
    let _redis = OwnRedis::start(port);
    let back = Instant::now();
    while ls.iter().any(ClusterLimiter::degraded) {
        assert!(back.elapsed() < Duration::from_secs(10), "never recovered");
        for l in &ls {
            l.heartbeat().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = ls[0].check("gateway").await.expect("budget");
    assert!(!v.fallback, "{v:?}");
    assert!(ls[0].degraded_reason().is_none());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    assert!(text.contains("storefront_ratelimit_degraded 0"), "{text}");
}

/// A budget key holding garbage (another tool, a bad migration) is read as an empty
/// bucket and rewritten, never a panic or a stuck limiter.
#[tokio::test]
async fn garbage_in_the_budget_key_is_overwritten() {
    let url = redis_url();
    let shop = format!("garbage-{}", std::process::id());
    let ls = limiters(&url, &shop, 1, 600, 5).await;
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let pattern = format!("storefront:ratelimit:{{it/{shop}}}:gateway:*");
    // Spend the burst: the bucket's key exists while the bucket is not full.
    for _ in 0..5 {
        ls[0].check("gateway").await.expect("budget");
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("keys");
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| !k.ends_with(":replicas"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg("not a number")
        .query_async(&mut conn)
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut allowed = 0;
    for _ in 0..10 {
        let v = ls[0].check("gateway").await.expect("budget");
        assert!(!v.fallback, "garbage is not an outage: {v:?}");
        if v.allowed {
            allowed += 1;
        }
    }
    assert!(
        (1..=6).contains(&allowed),
        "the bucket restarted full, and is limited again: {allowed}"
    );
}

/// A "Redis" that accepts connections and never answers (a hung server, a black-holed
/// network): no check waits longer than the refill wait, and after a few slow calls the
/// limiter falls back and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_is_an_outage() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // read nothing, answer nothing
        }
    });
    let limiter = ClusterLimiter::new(
        Some(&format!("redis://127.0.0.1:{port}")),
        "it",
        "hung",
        "gw-0",
        2,
    )
    .expect("url");
    limiter.configure(&budget(600, 10)).expect("valid");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut heartbeats = 0;
    while !limiter.degraded() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never fell back"
        );
        limiter.heartbeat().await;
        heartbeats += 1;
        let t = Instant::now();
        let _ = limiter.check("gateway").await;
        slowest = slowest.max(t.elapsed());
    }
    let reason = limiter.degraded_reason().expect("a reason");
    println!(
        "figure: a hung Redis → fallback after {} ms ({heartbeats} heartbeats); slowest check {} ms; {reason}",
        started.elapsed().as_millis(),
        slowest.as_millis()
    );
    assert!(
        slowest < Duration::from_millis(200),
        "a check waited {slowest:?}"
    );
    assert!(reason.contains("÷ 2"), "the hint divides: {reason}");
    let v = limiter.check("gateway").await.expect("budget");
    assert!(v.fallback && v.allowed, "{v:?}");
    hung.abort();
}

/// A burst of concurrent requests on a fresh replica (a shop just turned Ready, loadgen's
/// sign-ups): all of it fits the budget's burst, so all of it is admitted — the first lease
/// is not one token per round trip with the rest refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_start_is_admitted_when_the_budget_holds_it() {
    let url = redis_url();
    let shop = format!("burst-{}", std::process::id());
    let ls = limiters(&url, &shop, 1, 5_000, 500).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let l = ls[0].clone();
        tasks.spawn(async move { l.check("gateway").await.expect("budget") });
    }
    let (mut shared, mut local, mut refused) = (0, 0, 0);
    while let Some(v) = tasks.join_next().await {
        let v = v.expect("joins");
        match (v.allowed, v.fallback) {
            (true, false) => shared += 1,
            (true, true) => local += 1,
            (false, _) => refused += 1,
        }
    }
    println!(
        "figure: 100 requests at once on a fresh replica: {shared} shared, {local} local, {refused} refused"
    );
    assert_eq!(refused, 0, "the burst of 500 holds 100");
    assert_eq!(shared + local, 100);
}

/// The limiter's Redis calls are the gateway → Redis edge of the console: each lease and
/// heartbeat is counted (and timed) under `datastore="redis"` in the datastore metrics.
#[tokio::test]
async fn leases_and_heartbeats_are_counted_as_redis_calls() {
    let mut registry = Registry::default();
    storefront_workloads::datastore_metrics::install(&mut registry, "gateway");
    let shop = format!("metrics-{}", std::process::id());
    let l = &limiters(&redis_url(), &shop, 1, 60_000, 100).await[0];
    for _ in 0..20 {
        assert!(l.check("gateway").await.expect("a budget").allowed);
    }
    l.heartbeat().await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let count = |operation: &str| {
        let series = format!(
            r#"storefront_datastore_requests_total{{service="gateway",datastore="redis",operation="{operation}",outcome="ok"}}"#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count("lease") >= 1.0, "no lease counted:\n{text}");
    assert!(count("heartbeat") >= 2.0, "heartbeats not counted:\n{text}");
    assert!(
        text.contains(
            r#"storefront_datastore_request_duration_seconds_count{service="gateway",datastore="redis"}"#
        ),
        "{text}"
    );
}
