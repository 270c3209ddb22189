//! The lease script on a real Redis: it grants what the budget allows (never more), takes
//! returned tokens back, refuses with a retry time when empty, and keeps one budget per key;
//! and it is [`fair_authority`] exactly — the same answers and the same stored state, step by
//! step, for several replicas sharing a saturated budget.
//!
//! Needs `REDIS_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use storefront_workloads::gateway::ratelimit::{
    gcra::Rate,
    lease::{Ask, Peer, fair_authority, script},
};

async fn connect() -> MultiplexedConnection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

/// One lease request: `{granted, remaining, retry_after_us, reset_us, share_rpm, own_left}`.
async fn lease(redis: &MultiplexedConnection, rate: Rate, key: &str, ask: &Ask<'_>) -> Vec<i64> {
    let script = redis::Script::new(&script());
    let mut invocation = script.key(key);
    invocation
        .key(format!("{key}:replicas"))
        .arg(rate.interval_us)
        .arg(rate.burst)
        .arg(ask.want)
        .arg(ask.returned)
        .arg(ask.member)
        .arg(ask.demand_rpm);
    invocation
        .invoke_async(&mut redis.clone())
        .await
        .expect("runs")
}

fn ask(member: &str, want: u64, returned: u64, demand_rpm: u64) -> Ask<'_> {
    Ask {
        member,
        want,
        returned,
        demand_rpm,
    }
}

#[tokio::test]
async fn the_lease_script_grants_within_the_budget() {
    let redis = connect().await;
    let key = format!("storefront:it:ratelimit:{}", std::process::id());
    let _: () = redis::AsyncCommands::del(&mut redis.clone(), &key)
        .await
        .expect("del");
    // 1 request/minute with a burst of 5: the seconds the test takes refill nothing. One
    // replica: its fair share is the whole budget.
    let rate = Rate::per_minute(1, 5).expect("valid");
    let one = |want, returned| ask("gw-0", want, returned, 100);
    // A new budget grants up to its burst, in as many leases as asked.
    assert_eq!(lease(&redis, rate, &key, &one(3, 0)).await[..2], [3, 2]);
    assert_eq!(
        lease(&redis, rate, &key, &one(3, 0)).await[..2],
        [2, 0],
        "only what is left"
    );
    let refused = lease(&redis, rate, &key, &one(1, 0)).await;
    assert_eq!(refused[0], 0);
    assert!(
        refused[2] > 0 && refused[2] <= 60_000_000,
        "retry within one interval: {refused:?}"
    );
    // Returned tokens are granted again, never created.
    assert_eq!(lease(&redis, rate, &key, &one(10, 2)).await[0], 2);
    assert_eq!(
        lease(&redis, rate, &key, &one(10, 100)).await[0],
        5,
        "at most a full bucket"
    );
    // Another key is another budget.
    let other = format!("{key}:other");
    assert_eq!(lease(&redis, rate, &other, &one(5, 0)).await[0], 5);
    // The keys expire on their own (no garbage left for idle budgets).
    for k in [key.clone(), format!("{key}:replicas")] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut redis.clone())
            .await
            .expect("pttl");
        assert!(ttl > 0 && ttl <= 5 * 60_000, "{k}: {ttl}");
    }
}

/// Reads the budget's stored state: its TAT (0 when absent) and the replicas' records.
async fn state(redis: &MultiplexedConnection, key: &str) -> (u64, BTreeMap<String, Peer>) {
    let mut conn = redis.clone();
    let tat: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("get");
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{key}:replicas"))
        .query_async(&mut conn)
        .await
        .expect("hgetall");
    let peers = fields
        .into_iter()
        .map(|(m, v)| {
            let n: Vec<u64> = v.split(':').map(|x| x.parse().expect(&v)).collect();
            let peer = Peer {
                demand_rpm: n[0],
                seen_us: n[1],
                tat_us: n[2],
            };
            (m, peer)
        })
        .collect();
    (tat.map_or(0, |t| t.parse().expect("a TAT")), peers)
}

/// Three replicas with different demands lease from a saturated budget, giving tokens back
/// now and then: after every call the script's answer and the state it stored are what
/// [`fair_authority`] computes from the state before and the script's own clock (the `seen`
/// it recorded).
#[tokio::test]
async fn the_lease_script_is_the_fair_authority() {
    let redis = connect().await;
    let key = format!("storefront:it:ratelimit-fair:{}", std::process::id());
    let mut conn = redis.clone();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(format!("{key}:replicas"))
        .query_async(&mut conn)
        .await
        .expect("del");
    let rate = Rate::per_minute(6_000, 20).expect("valid");
    let members = ["gw-a", "gw-b", "gw-c"];
    let demands = [600u64, 4_000, 9_000];
    let mut seen_shares = Vec::new();
    for step in 0..120u64 {
        let i = (step * 7 % 3) as usize;
        let want = 1 + step % 9;
        let returned = if step % 11 == 0 { step % 4 } else { 0 };
        let a = ask(members[i], want, returned, demands[i]);
        let (tat, mut peers) = state(&redis, &key).await;
        let answer = lease(&redis, rate, &key, &a).await;
        let (stored_tat, stored_peers) = state(&redis, &key).await;
        let now = stored_peers[members[i]].seen_us;
        let g = fair_authority(rate, tat, &mut peers, now, &a);
        let expected = [
            g.grant.granted,
            g.grant.remaining,
            g.grant.retry_after_us,
            g.grant.reset_us,
            g.share_rpm,
            g.own_left,
        ]
        .map(|n| n as i64);
        assert_eq!(answer, expected, "step {step}: {a:?}");
        assert_eq!(peers, stored_peers, "step {step}");
        // The TAT key expires once the bucket is full (then it reads as 0, the same bucket).
        if stored_tat != 0 {
            assert_eq!(stored_tat, g.grant.tat_us, "step {step}");
        }
        seen_shares.push(g.share_rpm);
        tokio::time::sleep(std::time::Duration::from_millis(step % 5)).await;
    }
    // The run saw both sides: the whole budget for the first alone, fair shares after.
    assert!(seen_shares.contains(&6_000), "{seen_shares:?}");
    assert!(
        seen_shares.contains(&600),
        "the light one's demand: {seen_shares:?}"
    );
}
