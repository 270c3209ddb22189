//! The lease script on a real Redis: it grants what the budget allows (never more), takes
//! returned tokens back, refuses with a retry time when empty, and keeps one budget per key.
//! The budget is 1 request/minute with a burst of 5, so the seconds the test takes do not
//! refill anything.
//!
//! Needs `REDIS_URL` (built only with `--features datastore-tests`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use storefront_workloads::ratelimit::{gcra::Rate, lease::SCRIPT};

#[tokio::test]
async fn the_lease_script_grants_within_the_budget() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let mut redis = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let key = format!("storefront:it:ratelimit:{}", std::process::id());
    let _: () = redis::AsyncCommands::del(&mut redis, &key)
        .await
        .expect("del");
    let rate = Rate::per_minute(1, 5).expect("valid");
    let script = redis::Script::new(SCRIPT);
    let lease = |key: String, want: u64, returned: u64| {
        let mut invocation = script.key(key);
        invocation
            .arg(rate.interval_us)
            .arg(rate.burst)
            .arg(want)
            .arg(returned);
        let mut conn = redis.clone();
        async move {
            let out: Vec<i64> = invocation.invoke_async(&mut conn).await.expect("runs");
            out
        }
    };
    // A new budget grants up to its burst, in as many leases as asked.
    assert_eq!(lease(key.clone(), 3, 0).await[..2], [3, 2]);
    assert_eq!(
        lease(key.clone(), 3, 0).await[..2],
        [2, 0],
        "only what is left"
    );
    let refused = lease(key.clone(), 1, 0).await;
    assert_eq!(refused[0], 0);
    assert!(
        refused[2] > 0 && refused[2] <= 60_000_000,
        "retry within one interval: {refused:?}"
    );
    // Returned tokens are granted again, never created.
    assert_eq!(lease(key.clone(), 10, 2).await[0], 2);
    assert_eq!(
        lease(key.clone(), 10, 100).await[0],
        5,
        "at most a full bucket"
    );
    // Another key is another budget.
    assert_eq!(lease(format!("{key}:other"), 5, 0).await[0], 5);
    // The key expires on its own (no garbage left for idle budgets).
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis.clone())
        .await
        .expect("pttl");
    assert!(ttl > 0 && ttl <= 5 * 60_000, "{ttl}");
}
