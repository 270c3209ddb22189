//! One misbehaving client beside normal shoppers (issue 21): the gateway's per-client limits
//! keep it to its own allowance, so the shoppers keep their success rate and their p99.
//!
//! **Clients as the gateway sees them.** The test reaches the gateway pod from the host, so
//! every loadgen connection has one peer address (the pod bridge's, `10.244.0.1`, on the
//! local cluster; a Docker bridge's on kind). The shop trusts that peer as its proxy
//! (`trustedProxies`: the private ranges) and each loadgen request says whose it is in
//! `X-Forwarded-For`, as a load balancer in front of a real shop would:
//! - **shoppers**: [`SHOPPERS`] of them (`--forwarded-for 198.51.100.0/24`), each its own
//!   address and its own account (orders carry its token); browsing, searching, product
//!   pages, recommendations and orders ([`SHOPPER_MIX`]) at [`SHOPPER_RATE`] together;
//! - **the abuser** (`--abusive --forwarded-for 203.0.113.0/24`): one address,
//!   `203.0.113.1`, behind a made-up hop it writes itself (the gateway must take the rightmost
//!   untrusted entry, not the leftmost), and one account; a third of its requests without a
//!   token, a third with forged tokens (both its address's budget), a third with its own
//!   token (its user's budget), catalog requests at [`ABUSER_RATE`]: 20× its address's
//!   limit and 10× its user's ([`SHOP`]'s `clientLimits`).
//!
//! The shop-wide budget ([`SHOP`]'s gateway `rateLimit`, 20/s) holds the shoppers and the
//! abuser's allowance (12 + 2 per second) but not the abuser's offer (12 + 30): without
//! per-client limits the abuser spends it and the shoppers get about half their requests
//! answered 429, which is what this test then fails on.
//!
//! **Runs** (one shop; about 85 s of load in all): a warm-up of the shoppers, not measured
//! ([`WARMUP_SECONDS`]); the shoppers alone for [`RUN_SECONDS`];
//! then the abuser starts and the same shoppers (the same seed: the same requests) run again
//! beside it. The abuser's schedule covers the shoppers' set-up and run (checked from the
//! summaries' wall clocks, else the comparison would prove nothing).
//!
//! **Asserted**: the shoppers alone succeed (≥ 95 % 2xx: they are distinct clients, each
//! under its limits, so a failure here says the shop does not tell them apart); beside the
//! abuser, their success rate is within 10 % of alone and their p99 within 10 % of alone or
//! 20 ms, whichever is larger; the abuser got mostly 429s, and each of its two keys was
//! admitted about its limit — no more than burst + rate × time (+10 % and 2 for the leased
//! tokens of a cluster-wide limiter), no less than 80 % of rate × time (it is a client too,
//! and gets its share).
//!
//! **Why a 20 ms floor on p99.** The shoppers send 300 requests a run, so their p99 is the
//! third-slowest answer; on the shared two-core node a single scheduler stall or PostgreSQL
//! checkpoint moves it by tens of milliseconds, and with a p99 of a few tens of milliseconds,
//! 10 % is 3–5 ms, inside that noise. A shop whose budget the abuser spends fails on the
//! success rate; one that queues shoppers behind the abuser's requests shows seconds, not
//! 20 ms.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::Value;
use storefront_crds::Storefront;
use storefront_e2e::{
    TestNamespace, client, datastores::DatastoreUrls, ensure_operator, gateway_target, loadgen,
    real_workload_image, storefront_from, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the shoppers run, each time.
const RUN_SECONDS: u64 = 25;
/// The shoppers' unmeasured first run: a fresh shop's first requests (cold caches, new
/// connections and pools) are slower, and would make the run alone look worse than it is
/// (a first CI run measured p99 72 ms alone, 12 ms beside the abuser).
const WARMUP_SECONDS: u64 = 8;
/// The shoppers, each its own address and account.
const SHOPPERS: u32 = 20;
/// Requests per second of all the shoppers together (0.6/s each, 36 a minute).
const SHOPPER_RATE: f64 = 12.0;
const SHOPPER_ADDRESSES: &str = "198.51.100.0/24";
/// The default mix without sign-ins: a sign-in is a password hash behind auth's hash gate,
/// measured apart (docs/benchmarks.md, auth under a sign-in flood), and at 5 % of the mix it
/// would make the shoppers' p99 the hash gate's queue.
const SHOPPER_MIX: &str = "browse=40,search=20,product=25,recommendations=10,order=5";
/// The abuser's offer, requests per second.
const ABUSER_RATE: f64 = 30.0;
const ABUSER_ADDRESS: &str = "203.0.113.0/24";
const ABUSER_MIX: &str = "browse=40,search=30,product=30";
/// Per-client limits (requests per minute, burst) of the shop below.
const PER_USER: (f64, f64) = (60.0, 10.0);
const PER_ADDRESS: (f64, f64) = (60.0, 10.0);
/// The shop-wide budget, per minute.
const SHOP_BUDGET: f64 = 1200.0;

/// The real shop on one pod each, small limits per client, a budget for the shoppers.
const SHOP: &str = "apiVersion: commerce.storefront.dev/v1alpha1
kind: Storefront
metadata: {name: shop}
spec:
  image: placeholder
  datastores:
    postgres: {secretName: storefront-postgres}
    postgresReadReplica: {secretName: storefront-postgres-replica}
    redis: {secretName: storefront-redis}
    broker: {secretName: storefront-nats}
  clientLimits:
    enabled: true
    perUser: {requestsPerMinute: 60, burst: 10}
    perAddress: {requestsPerMinute: 60, burst: 10}
    routes:
      - {route: 'POST /api/v1/orders', requestsPerMinute: 12, burst: 3}
    trustedProxies: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']
  services:
    gateway:
      replicas: 1
      rateLimit: {requestsPerMinute: 1200, burst: 100}
    auth: {replicas: 1}
    catalog:
      replicas: 1
      env: [{name: CATALOG_SEED, value: '11'}, {name: CATALOG_PRODUCTS, value: '500'}]
    orders: {replicas: 1}
    payments:
      replicas: 1
      env: [{name: PAYMENT_FAILURE_RATE, value: '0'}, {name: PAYMENT_LATENCY_MS, value: '50'}]
    inventory:
      replicas: 1
      env: [{name: CATALOG_SEED, value: '11'}, {name: CATALOG_PRODUCTS, value: '500'}]
    recommendations: {replicas: 1, tier: supporting}
";

fn shopper_args() -> Vec<String> {
    shopper_args_for(RUN_SECONDS)
}

fn shopper_args_for(seconds: u64) -> Vec<String> {
    [
        "--forwarded-for",
        SHOPPER_ADDRESSES,
        "--users",
        &SHOPPERS.to_string(),
        "--skus",
        "50",
        "--mix",
        SHOPPER_MIX,
        "--rate",
        &SHOPPER_RATE.to_string(),
        "--duration",
        &format!("{seconds}s"),
        "--seed",
        "1",
    ]
    .map(str::to_string)
    .to_vec()
}

fn abuser_args(seconds: u64) -> Vec<String> {
    [
        "--abusive",
        "--forwarded-for",
        ABUSER_ADDRESS,
        "--skus",
        "50",
        "--mix",
        ABUSER_MIX,
        "--rate",
        &ABUSER_RATE.to_string(),
        "--duration",
        &format!("{seconds}s"),
        "--seed",
        "21",
    ]
    .map(str::to_string)
    .to_vec()
}

async fn run(target: &str, args: Vec<String>) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    loadgen::run(target, &args).await.unwrap()
}

/// (2xx / sent, p99 ms, 429s) of the shoppers' whole run.
fn shoppers(summary: &Value) -> (f64, f64, u64) {
    let total = &summary["total"];
    let sent = total["sent"].as_u64().unwrap_or(0);
    let ok = total["status"]["2xx"].as_u64().unwrap_or(0);
    let p99 = total["latencyMs"]["p99"].as_f64().unwrap_or(f64::MAX);
    let limited = total["status"]["429"].as_u64().unwrap_or(0);
    (ok as f64 / sent.max(1) as f64, p99, limited)
}

/// The abuser's face `name`: (sent, admitted).
fn face(summary: &Value, name: &str) -> (u64, u64) {
    let row = summary["faces"]
        .as_array()
        .and_then(|faces| faces.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no face {name} in {summary}"));
    (row["sent"].as_u64().unwrap_or(0), loadgen::admitted(row))
}

/// What a limit of (per minute, burst) admits at most over `seconds`, and at least (its rate
/// alone, 80 %).
fn allowance((rpm, burst): (f64, f64), seconds: f64) -> (f64, f64) {
    let most = (burst + rpm / 60.0 * seconds) * 1.1 + 2.0;
    let least = rpm / 60.0 * seconds * 0.8;
    (most, least)
}

// The numbers have teeth: the abuser offers ≥ 10× each of its limits; without per-client
// limits the shoppers and the abuser overrun the shop's budget by half again, with them they
// fit in it with room; each shopper stays well under its own limits.
const _: () = assert!(ABUSER_RATE * 2.0 / 3.0 >= 10.0 * PER_ADDRESS.0 / 60.0);
const _: () = assert!(ABUSER_RATE / 3.0 >= 10.0 * PER_USER.0 / 60.0);
const _: () = assert!(SHOPPER_RATE + ABUSER_RATE > 1.5 * SHOP_BUDGET / 60.0);
const _: () =
    assert!(SHOPPER_RATE + (PER_ADDRESS.0 + PER_USER.0) / 60.0 < 0.8 * SHOP_BUDGET / 60.0);
const _: () = assert!(SHOPPER_RATE / SHOPPERS as f64 <= 0.6 * PER_ADDRESS.0 / 60.0);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_abusive_client_leaves_the_shoppers_their_success_rate_and_p99() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover().expect("the cluster's datastores");
    let ns = TestNamespace::create(&client, "abusive").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(SHOP, &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    // The API server keeps only the fields its CRD knows: without clientLimits in the CRD
    // (or in the Rust type) the shop would silently run without them.
    let stored = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<Storefront>(&()),
    )
    .get("shop")
    .await
    .unwrap();
    assert_eq!(
        stored.data["spec"]["clientLimits"]["perAddress"]["requestsPerMinute"], 60,
        "spec.clientLimits did not reach the API server (the CRD or the Storefront type lacks \
         it): {}",
        stored.data["spec"]
    );
    wait_ready(&sfs, "shop", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let target = gateway_target(&ns.api(), "shop").await.unwrap();
    let t0 = std::time::Instant::now();

    // Warm-up, not measured; then run 1: the shoppers alone.
    run(&target, shopper_args_for(WARMUP_SECONDS)).await;
    let alone = run(&target, shopper_args()).await;
    let (success_alone, p99_alone, limited_alone) = shoppers(&alone);
    assert!(
        success_alone >= 0.95,
        "the shoppers alone must succeed (distinct clients, each under its limits): {:.1} % 2xx, \
         {limited_alone} 429s; is X-Forwarded-For believed from the test's address?\n{alone}",
        success_alone * 100.0
    );

    // Run 2: both start now; the abuser's set-up (one account) is shorter than the
    // shoppers' (twenty), and its schedule lasts over theirs (run 1's × 1.5, and 3 s) and
    // their run.
    let setup = alone["setupSeconds"].as_f64().unwrap_or(10.0);
    let lead = (setup * 1.5 + 3.0).ceil().min(30.0) as u64;
    let abuser_seconds = lead + RUN_SECONDS + 2;
    let abuser = {
        let target = target.clone();
        tokio::spawn(async move { run(&target, abuser_args(abuser_seconds)).await })
    };
    let beside = run(&target, shopper_args()).await;
    let abuser = abuser.await.unwrap();
    let load_seconds = t0.elapsed().as_secs_f64();
    let window = |s: &Value| {
        let start = s["startedAtMs"].as_f64().unwrap_or(0.0);
        (
            start,
            start + s["durationSeconds"].as_f64().unwrap_or(0.0) * 1000.0,
        )
    };
    let ((a_start, a_end), (s_start, s_end)) = (window(&abuser), window(&beside));
    assert!(
        a_start <= s_start && a_end >= s_end,
        "the abuser's schedule ({a_start}..{a_end} ms) did not cover the shoppers' \
         ({s_start}..{s_end} ms): their set-up took {} s, run 1's {setup} s",
        beside["setupSeconds"]
    );

    let (success_beside, p99_beside, limited_beside) = shoppers(&beside);
    let sent = abuser["total"]["sent"].as_u64().unwrap_or(0);
    let refused = abuser["total"]["status"]["429"].as_u64().unwrap_or(0);
    let (anon_sent, anon_admitted) = face(&abuser, "anonymous");
    let (forged_sent, forged_admitted) = face(&abuser, "forged-token");
    let (user_sent, user_admitted) = face(&abuser, "signed-in");
    let address_admitted = anon_admitted + forged_admitted;
    let admitted = address_admitted + user_admitted;
    // The abuser's keys were spending from its set-up on: its limits over set-up and run.
    let seconds = abuser["setupSeconds"].as_f64().unwrap_or(0.0)
        + abuser["elapsedSeconds"].as_f64().unwrap_or(0.0);
    let (address_most, address_least) = allowance(PER_ADDRESS, seconds);
    let (user_most, user_least) = allowance(PER_USER, seconds);
    println!(
        "figure: abusive client ({ABUSER_RATE}/s offered beside {SHOPPERS} shoppers at \
         {SHOPPER_RATE}/s): shoppers p99 alone {p99_alone:.1} ms, with abuser {p99_beside:.1} \
         ms; success {:.1}% vs {:.1}% (429s {limited_alone} vs {limited_beside}); abuser \
         admitted {admitted} of {sent} (its address {address_admitted} of \
         {}, allowance ≤ {address_most:.0}; its user {user_admitted} of {user_sent}, allowance \
         ≤ {user_most:.0}), {refused} refused 429; {load_seconds:.0} s of load",
        success_alone * 100.0,
        success_beside * 100.0,
        anon_sent + forged_sent,
    );

    assert!(
        success_beside >= success_alone * 0.9,
        "the shoppers' success rate fell beside the abuser: {:.1} % vs {:.1} % alone \
         ({limited_beside} 429s vs {limited_alone}): the abuser spent the shop's budget?",
        success_beside * 100.0,
        success_alone * 100.0
    );
    assert!(
        p99_beside <= (p99_alone * 1.1).max(p99_alone + 20.0),
        "the shoppers' p99 rose beside the abuser: {p99_beside:.1} ms vs {p99_alone:.1} ms alone"
    );
    assert!(
        refused as f64 >= sent as f64 * 0.8,
        "the abuser got mostly 429s: {refused} of {sent}"
    );
    assert!(
        (address_least..=address_most).contains(&(address_admitted as f64)),
        "the abuser's address (no token and forged tokens) was admitted {address_admitted} of \
         {}: its limit allows {address_least:.0}..{address_most:.0} over {seconds:.1} s",
        anon_sent + forged_sent
    );
    assert!(
        (user_least..=user_most).contains(&(user_admitted as f64)),
        "the abuser's user was admitted {user_admitted} of {user_sent}: its limit allows \
         {user_least:.0}..{user_most:.0} over {seconds:.1} s"
    );
}
