//! Nanoseconds per rate-limit decision: the gateway's limiter beside the `governor` crate's
//! direct limiter (a local GCRA on one atomic), with the same quota.
//!
//! - `gcra_take`: [`gcra::take`] on a local TAT, with a monotonic clock read per decision
//!   (the arithmetic of the fallback and of the Redis script);
//! - `lease_try_take`: [`Lease::try_take`], the leased hot path (one compare-and-swap);
//! - `cluster_local`: [`ClusterLimiter::check`] without Redis (each replica's share, the
//!   fallback), with its metrics, as the gateway's middleware calls it;
//! - `cluster_redis`: the same with budgets leased from a real Redis (`REDIS_URL`; skipped
//!   with a note when unset);
//! - `governor`: `RateLimiter::direct(quota).check()`.
//! - per client (figures only): `ClusterLimiter::check_client` over 10,000 users in turn,
//!   beside governor's keyed limiter (`RateLimiter::keyed(quota).check_key()`).
//!
//! Two quotas: `open` (60,000,000 rpm with a burst of 4e9, never spent during a run: every
//! decision admits) and `spent` (6,000 rpm, burst 100: after the first 100, nearly every
//! decision refuses, as during a flash sale's rush). After criterion's groups, the bench
//! times each case again in one loop and prints `figure:` lines with the ratio to governor.
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p storefront-workloads --bench limiter`

use std::{
    hint::black_box,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion};
use governor::{Quota, RateLimiter};
use storefront_workloads::gateway::{
    ratelimit::{
        client::{ClientKey, ClientRules, Rule},
        cluster::{ClusterLimiter, Policy},
        gcra::{self, Rate},
        lease::Lease,
    },
    routing::table::{ClientLimitsTable, RateLimit},
};

/// A quota of the bench: requests per minute and burst.
#[derive(Clone, Copy)]
struct Q {
    name: &'static str,
    rpm: u32,
    burst: u32,
}

const OPEN: Q = Q {
    name: "open",
    rpm: 60_000_000,
    burst: 4_000_000_000,
};
const SPENT: Q = Q {
    name: "spent",
    rpm: 6_000,
    burst: 100,
};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn quota(q: Q) -> Quota {
    Quota::per_minute(nz(q.rpm)).allow_burst(nz(q.burst))
}

fn rate(q: Q) -> Rate {
    match Rate::per_minute(u64::from(q.rpm), u64::from(q.burst)) {
        Ok(r) => r,
        Err(e) => panic!("bench quota: {e}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

fn policy(q: Q) -> Policy {
    Policy {
        scope: "gateway".into(),
        requests_per_minute: q.rpm,
        burst: q.burst,
    }
}

/// A limiter without Redis (the local share; one replica).
fn local_limiter(q: Q) -> ClusterLimiter {
    let l = ClusterLimiter::local(1);
    if let Err(e) = l.configure(&[policy(q)]) {
        panic!("configure: {e}");
    }
    l
}

/// A limiter leasing from Redis at `url` under a fresh Storefront name (a fresh budget).
fn redis_limiter(rt: &tokio::runtime::Runtime, url: &str, q: Q) -> ClusterLimiter {
    let shop = format!("bench-{}-{}-{}", q.name, std::process::id(), unix_nanos());
    let l = match ClusterLimiter::new(Some(url), "bench", &shop, "bench-0", 1) {
        Ok(l) => l,
        Err(e) => panic!("redis client: {e}"),
    };
    rt.block_on(l.heartbeat());
    assert!(
        !l.degraded(),
        "Redis at {url} did not answer: {:?}",
        l.degraded_reason()
    );
    if let Err(e) = l.configure(&[policy(q)]) {
        panic!("configure: {e}");
    }
    l
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `iters` decisions of `limiter` on `rt`; the time they took.
fn cluster_loop(rt: &tokio::runtime::Runtime, limiter: &ClusterLimiter, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(limiter.check(black_box("gateway")).await);
        }
        start.elapsed()
    })
}

fn decisions(c: &mut Criterion, redis: Option<&str>) {
    let rt = runtime();
    for q in [OPEN, SPENT] {
        let mut group = c.benchmark_group(format!("limiter/{}", q.name));
        group.bench_function(BenchmarkId::new("gcra_take", q.name), |b| {
            let r = rate(q);
            let origin = Instant::now();
            let mut tat = 0u64;
            b.iter(|| {
                let now = origin.elapsed().as_micros() as u64;
                let d = gcra::take(r, tat, now, 1);
                if d.allowed {
                    tat = d.tat_us;
                }
                black_box(d.allowed)
            });
        });
        group.bench_function(BenchmarkId::new("lease_try_take", q.name), |b| {
            // Open: a lease that never runs out; spent: an empty lease (refused locally).
            let lease = Lease::new(if q.name == "open" { u64::MAX } else { 0 });
            b.iter(|| black_box(lease.try_take()));
        });
        group.bench_function(BenchmarkId::new("cluster_local", q.name), |b| {
            let l = local_limiter(q);
            b.iter_custom(|iters| cluster_loop(&rt, &l, iters));
        });
        if let Some(url) = redis {
            group.bench_function(BenchmarkId::new("cluster_redis", q.name), |b| {
                let l = redis_limiter(&rt, url, q);
                b.iter_custom(|iters| cluster_loop(&rt, &l, iters));
            });
        }
        group.bench_function(BenchmarkId::new("governor", q.name), |b| {
            let g = RateLimiter::direct(quota(q));
            b.iter(|| black_box(g.check().is_ok()));
        });
        group.finish();
    }
}

/// Median ns per decision over `rounds` loops of `n` decisions; and the share admitted.
fn timed(rounds: usize, n: u64, mut one_loop: impl FnMut(u64) -> (Duration, u64)) -> (f64, f64) {
    let mut ns = Vec::with_capacity(rounds);
    let mut admitted = 0;
    for _ in 0..rounds {
        let (t, a) = one_loop(n);
        ns.push(t.as_nanos() as f64 / n as f64);
        admitted += a;
    }
    ns.sort_by(f64::total_cmp);
    (ns[rounds / 2], admitted as f64 / (rounds as u64 * n) as f64)
}

/// The figures: each case timed again in plain loops, the ratio to governor printed.
fn figures(redis: Option<&str>) {
    let rt = runtime();
    const ROUNDS: usize = 7;
    const N: u64 = 2_000_000;
    for q in [OPEN, SPENT] {
        let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
        let r = rate(q);
        rows.push((
            "gcra::take (local TAT, clock read)",
            timed(ROUNDS, N, |n| {
                let origin = Instant::now();
                let mut tat = 0u64;
                let mut ok = 0;
                let start = Instant::now();
                for _ in 0..n {
                    let now = origin.elapsed().as_micros() as u64;
                    let d = gcra::take(r, black_box(tat), now, 1);
                    if d.allowed {
                        tat = d.tat_us;
                        ok += 1;
                    }
                }
                (start.elapsed(), ok)
            }),
        ));
        rows.push((
            "Lease::try_take (leased hot path)",
            timed(ROUNDS, N, |n| {
                let lease = Lease::new(if q.name == "open" { u64::MAX } else { 0 });
                let mut ok = 0;
                let start = Instant::now();
                for _ in 0..n {
                    ok += u64::from(black_box(&lease).try_take());
                }
                (start.elapsed(), ok)
            }),
        ));
        let cluster = |l: &ClusterLimiter, n: u64| {
            rt.block_on(async {
                let mut ok = 0;
                let start = Instant::now();
                for _ in 0..n {
                    if let Some(v) = l.check(black_box("gateway")).await {
                        ok += u64::from(v.allowed);
                    }
                }
                (start.elapsed(), ok)
            })
        };
        let local = local_limiter(q);
        rows.push((
            "ClusterLimiter::check, no Redis (local share)",
            timed(ROUNDS, N / 4, |n| cluster(&local, n)),
        ));
        match redis {
            Some(url) => {
                let l = redis_limiter(&rt, url, q);
                rows.push((
                    "ClusterLimiter::check, Redis leases",
                    timed(ROUNDS, N / 4, |n| cluster(&l, n)),
                ));
            }
            None => println!("note: REDIS_URL unset: ClusterLimiter::check with Redis skipped"),
        }
        let g = RateLimiter::direct(quota(q));
        let governor = timed(ROUNDS, N, |n| {
            let mut ok = 0;
            let start = Instant::now();
            for _ in 0..n {
                ok += u64::from(black_box(&g).check().is_ok());
            }
            (start.elapsed(), ok)
        });
        println!(
            "figure: limiter quota={} ({} rpm, burst {}): governor RateLimiter::direct().check() {:.1} ns/decision (admitted {:.1}%)",
            q.name,
            q.rpm,
            q.burst,
            governor.0,
            governor.1 * 100.0
        );
        for (name, (ns, admitted)) in rows {
            println!(
                "figure: limiter quota={}: {name} {ns:.1} ns/decision (admitted {:.1}%), {:.2}x governor",
                q.name,
                admitted * 100.0,
                ns / governor.0
            );
        }
    }
}

/// The per-client decision beside governor's keyed limiter (a `DashMap` of GCRA cells):
/// `CLIENTS` users in turn, each with the quota `q`, so each decision finds its client's
/// entry among many (the gateway's case: one check per request, the client's own).
fn client_figures() {
    const ROUNDS: usize = 7;
    const N: u64 = 500_000;
    const CLIENTS: usize = 10_000;
    for q in [OPEN, SPENT] {
        let limit = RateLimit {
            requests_per_minute: q.rpm,
            burst: q.burst,
        };
        let rules = match ClientRules::from_table(&ClientLimitsTable {
            per_user: limit,
            per_address: limit,
            routes: vec![],
            trusted_proxies: vec![],
        }) {
            Ok(r) => r,
            Err(e) => panic!("bench rules: {e}"),
        };
        let limiter = ClusterLimiter::local(1);
        limiter.configure_clients(Some(rules.clone()));
        let users: Vec<String> = (0..CLIENTS).map(|i| format!("user-{i:05}")).collect();
        let keys: Vec<ClientKey> = users.iter().map(|u| ClientKey::user(u)).collect();
        let ours = timed(ROUNDS, N, |n| {
            let mut ok = 0;
            let start = Instant::now();
            for i in 0..n {
                let key = &keys[i as usize % CLIENTS];
                if let Some(v) = limiter.check_client(&rules, Rule::PerUser, black_box(key)) {
                    ok += u64::from(v.allowed);
                }
            }
            (start.elapsed(), ok)
        });
        let g = RateLimiter::keyed(quota(q));
        let governor = timed(ROUNDS, N, |n| {
            let mut ok = 0;
            let start = Instant::now();
            for i in 0..n {
                let user = &users[i as usize % CLIENTS];
                ok += u64::from(g.check_key(black_box(user)).is_ok());
            }
            (start.elapsed(), ok)
        });
        println!(
            "figure: limiter per-client quota={} ({} rpm, burst {}), {CLIENTS} users in turn: \
             governor RateLimiter::keyed().check_key() {:.1} ns/decision (admitted {:.1}%); \
             ClusterLimiter::check_client {:.1} ns/decision (admitted {:.1}%), {:.2}x governor",
            q.name,
            q.rpm,
            q.burst,
            governor.0,
            governor.1 * 100.0,
            ours.0,
            ours.1 * 100.0,
            ours.0 / governor.0
        );
    }
}

fn main() {
    let redis = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    if redis.is_none() {
        println!("note: REDIS_URL unset: the cluster_redis case is skipped");
    }
    let mut c = Criterion::default().configure_from_args();
    decisions(&mut c, redis.as_deref());
    c.final_summary();
    // `cargo test --benches` runs each benchmark once; the figures only under `cargo bench`.
    if std::env::args().any(|a| a == "--bench") {
        figures(redis.as_deref());
        client_figures();
    }
}
