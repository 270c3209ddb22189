use super::*;

fn policy(scope: &str, rpm: u32, burst: u32) -> Policy {
    Policy {
        scope: scope.into(),
        requests_per_minute: rpm,
        burst,
    }
}

#[tokio::test]
async fn without_redis_each_replica_enforces_its_share_and_says_so() {
    let limiter = ClusterLimiter::local(2);
    assert!(limiter.degraded());
    limiter
        .configure(&[policy("gateway", 600, 10)])
        .expect("valid");
    let mut allowed = 0;
    for _ in 0..20 {
        let v = limiter.check("gateway").await.expect("a budget");
        assert!(v.fallback);
        if v.allowed {
            allowed += 1;
        } else {
            assert!(v.retry_after_s >= 1);
        }
    }
    assert_eq!(allowed, 5, "half of the burst of 10 on one of two replicas");
    assert!(
        limiter.check("catalog").await.is_none(),
        "no budget, no limit"
    );
}

#[tokio::test]
async fn invalid_budgets_are_refused_and_the_previous_one_stays() {
    let limiter = ClusterLimiter::local(1);
    limiter
        .configure(&[policy("gateway", 600, 3)])
        .expect("valid");
    let err = limiter
        .configure(&[policy("gateway", 0, 3), policy("catalog", 4_000_000_000, 1)])
        .expect_err("zero and absurd rates");
    assert!(err.contains("gateway") && err.contains("catalog"), "{err}");
    let v = limiter.check("gateway").await.expect("kept");
    assert_eq!(v.requests_per_minute, 600);
    assert!(limiter.check("catalog").await.is_none());
}

#[tokio::test]
async fn a_limit_change_applies_to_the_next_request() {
    let limiter = ClusterLimiter::local(1);
    limiter
        .configure(&[policy("orders", 60, 1)])
        .expect("valid");
    assert!(limiter.check("orders").await.expect("budget").allowed);
    assert!(!limiter.check("orders").await.expect("budget").allowed);
    // A sale opens the limit: 60,000 rpm with a burst of 100.
    limiter
        .configure(&[policy("orders", 60_000, 100)])
        .expect("valid");
    let v = limiter.check("orders").await.expect("budget");
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.requests_per_minute, 60_000);
}
