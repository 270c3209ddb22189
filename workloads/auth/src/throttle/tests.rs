//! The throttles through [`Accounts`] over the memory store, on a clock the test moves.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use super::*;
use crate::{
    domain::{
        HashCost, Passwords, SigningKeys, TokenIssuer,
        throttle::{Attempts, Scope},
    },
    service::{Accounts, AuthError, MemoryUserStore},
};

/// Accounts over a memory store with `policies`, on a clock at `clock` (unix ms).
fn accounts(policies: Policies, clock: &Arc<AtomicI64>) -> Accounts<MemoryUserStore> {
    let passwords = Passwords::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("params");
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([4; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    let store = Arc::new(MemoryUserStore::default());
    let now = Arc::clone(clock);
    let throttle = Throttle::new(store.clone(), policies, ThrottleMetrics::default())
        .with_clock(Arc::new(move || now.load(Ordering::SeqCst)));
    Accounts::new(store, passwords, issuer)
        .expect("accounts")
        .with_throttle(Arc::new(throttle))
}

fn policies(account: u32, address: u32, sign_up: u32) -> Policies {
    let policy = |free| {
        Policy::new(
            free,
            Duration::from_secs(1),
            Duration::from_secs(8),
            Duration::from_secs(60),
        )
    };
    Policies {
        account: policy(account),
        address: policy(address),
        sign_up: policy(sign_up),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("address"))
}

fn throttled(result: Result<impl std::fmt::Debug, AuthError>) -> Throttled {
    match result {
        Err(AuthError::Throttled(t)) => t,
        other => panic!("not throttled: {other:?}"),
    }
}

#[tokio::test]
async fn an_account_is_blocked_after_its_free_failures_from_any_address_even_for_the_right_password()
 {
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let accounts = accounts(policies(3, 1000, 1000), &clock);
    accounts
        .sign_up("ann@example.com", "correct horse", None)
        .await
        .expect("signed up");
    for i in 0..3 {
        let from = ip(&format!("198.51.100.{i}"));
        assert!(matches!(
            accounts
                .sign_in_from("ann@example.com", "wrong horse", from, 0)
                .await,
            Err(AuthError::WrongCredentials)
        ));
    }
    // The 3rd failure was free; the 4th attempt is admitted and blocks the next for 1 s.
    assert!(matches!(
        accounts
            .sign_in_from("ANN@example.com", "wrong horse", ip("198.51.100.9"), 0)
            .await,
        Err(AuthError::WrongCredentials)
    ));
    let t = throttled(
        accounts
            .sign_in_from("ann@example.com", "correct horse", ip("203.0.113.1"), 0)
            .await,
    );
    assert_eq!(
        (t.scope, t.retry_after_seconds()),
        (Scope::SignInAccount, 1)
    );
    assert_eq!(
        t.to_string(),
        "too many sign-in attempts for this account; retry in 1 s"
    );
    // Another account is not affected.
    assert!(matches!(
        accounts
            .sign_in_from("bob@example.com", "wrong horse", ip("203.0.113.1"), 0)
            .await,
        Err(AuthError::WrongCredentials)
    ));
    // After the block, the right password signs in and clears the count.
    clock.fetch_add(1_000, Ordering::SeqCst);
    accounts
        .sign_in_from("ann@example.com", "correct horse", ip("203.0.113.1"), 0)
        .await
        .expect("signed in after the block");
    let Some(throttle) = accounts.throttle() else {
        panic!("throttled accounts")
    };
    assert_eq!(throttle.metrics().throttled(Scope::SignInAccount), 1);
    // Cleared: the next wrong password is a free one again, not a block.
    for _ in 0..3 {
        assert!(matches!(
            accounts
                .sign_in_from("ann@example.com", "wrong horse", ip("203.0.113.1"), 0)
                .await,
            Err(AuthError::WrongCredentials)
        ));
    }
}

#[tokio::test]
async fn a_success_clears_the_account_and_forgives_only_itself_at_the_address() {
    let clock = Arc::new(AtomicI64::new(5_000_000));
    let policies = policies(2, 2, 1000);
    let accounts = accounts(policies, &clock);
    for email in ["ann@example.com", "eve@example.com"] {
        accounts
            .sign_up(email, "correct horse", None)
            .await
            .expect("signed up");
    }
    let eve = ip("192.0.2.66");
    // Eve guesses at Ann's account and signs in to her own between guesses.
    for _ in 0..2 {
        assert!(matches!(
            accounts
                .sign_in_from("ann@example.com", "guess", eve, 0)
                .await,
            Err(AuthError::WrongCredentials)
        ));
        accounts
            .sign_in_from("eve@example.com", "correct horse", eve, 0)
            .await
            .expect("eve's own account");
    }
    // Her successes forgave themselves, not her guesses: the address counts 2 and the next
    // guess (the 3rd) is admitted and blocks the one after.
    assert!(matches!(
        accounts
            .sign_in_from("other@example.com", "guess", eve, 0)
            .await,
        Err(AuthError::WrongCredentials)
    ));
    let t = throttled(
        accounts
            .sign_in_from("eve@example.com", "correct horse", eve, 0)
            .await,
    );
    assert_eq!(t.scope, Scope::SignInAddress);
    let Some(throttle) = accounts.throttle() else {
        panic!("throttled accounts")
    };
    assert_eq!(throttle.metrics().throttled(Scope::SignInAddress), 1);
    assert_eq!(throttle.metrics().throttled(Scope::SignInAccount), 0);
    // A blocked address costs the account nothing: Ann's count is still her 2 guesses.
    clock.fetch_add(1_000, Ordering::SeqCst);
    accounts
        .sign_in_from("ann@example.com", "correct horse", ip("203.0.113.5"), 0)
        .await
        .expect("ann signs in from home");
}

#[tokio::test]
async fn an_unknown_email_is_throttled_like_a_known_one() {
    let clock = Arc::new(AtomicI64::new(0));
    let accounts = accounts(policies(1, 1000, 1000), &clock);
    accounts
        .sign_up("ann@example.com", "correct horse", None)
        .await
        .expect("signed up");
    let mut answers = vec![];
    for email in ["ann@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            answers.push(match accounts.sign_in(email, "wrong horse", 0).await {
                Err(AuthError::WrongCredentials) => "wrong".to_string(),
                Err(AuthError::Throttled(t)) => format!("throttled {}", t.retry_after_seconds()),
                other => panic!("{other:?}"),
            });
        }
    }
    assert_eq!(answers[..3], answers[3..], "{answers:?}");
    assert_eq!(answers[..3], ["wrong", "wrong", "throttled 1"]);
}

#[tokio::test]
async fn sign_ups_count_per_address_and_the_owner_signing_up_again_is_forgiven() {
    let clock = Arc::new(AtomicI64::new(0));
    let accounts = accounts(policies(1000, 1000, 3), &clock);
    let from = ip("2001:db8:7:7::1");
    accounts
        .sign_up_from("ann@example.com", "correct horse", None, from)
        .await
        .expect("created (1 counted)");
    // The owner again, with her password: a 409, forgiven.
    for _ in 0..5 {
        assert!(matches!(
            accounts
                .sign_up_from("ann@example.com", "correct horse", None, from)
                .await,
            Err(AuthError::Store(StoreError::EmailTaken(_)))
        ));
    }
    // A stranger probing her email from the same /64: a 409, counted (2).
    assert!(matches!(
        accounts
            .sign_up_from(
                "ann@example.com",
                "another pass",
                None,
                ip("2001:db8:7:7::2")
            )
            .await,
        Err(AuthError::Store(StoreError::EmailTaken(_)))
    ));
    accounts
        .sign_up_from("bob@example.com", "correct horse", None, from)
        .await
        .expect("created (3 counted: the last free one)");
    accounts
        .sign_up_from("cy@example.com", "correct horse", None, from)
        .await
        .expect("created (4 counted: it blocks the next for 1 s)");
    let t = throttled(
        accounts
            .sign_up_from("dee@example.com", "correct horse", None, from)
            .await,
    );
    assert_eq!(t.scope, Scope::SignUpAddress);
    assert_eq!(
        t.to_string(),
        "too many sign-ups from this address; retry in 1 s"
    );
    // Another address, and no address at all, are not affected.
    accounts
        .sign_up_from(
            "dee@example.com",
            "correct horse",
            None,
            ip("2001:db8:7:8::1"),
        )
        .await
        .expect("another /64");
    accounts
        .sign_up("eve@example.com", "correct horse", None)
        .await
        .expect("no address, no address throttle");
}

#[tokio::test]
async fn quiet_counters_are_swept_and_blocked_ones_kept() {
    let clock = Arc::new(AtomicI64::new(0));
    let accounts = accounts(policies(0, 1000, 1000), &clock);
    let _ = accounts.sign_in("ann@example.com", "wrong horse", 0).await;
    clock.store(30_000, Ordering::SeqCst);
    let _ = accounts.sign_in("bob@example.com", "wrong horse", 0).await;
    let throttle = Arc::clone(accounts.throttle().expect("throttle"));
    clock.store(60_000, Ordering::SeqCst);
    assert_eq!(
        throttle.sweep().await.expect("swept"),
        0,
        "ann's is just a minute old"
    );
    clock.store(60_001, Ordering::SeqCst);
    assert_eq!(
        throttle.sweep().await.expect("swept"),
        1,
        "now ann's is quiet"
    );
    let store = MemoryAttempts::default();
    let policy = policies(0, 0, 0).account;
    let key = AttemptKey::new(Scope::SignInAccount, "x");
    assert!(matches!(
        store.admit(&key, &policy, 0).await.expect("admits"),
        Admission::Admitted(_)
    ));
    assert_eq!(store.get(&key).map(|a| a.blocked_until), Some(1_000));
    store.refund(&key, &policy).await.expect("refunds");
    assert_eq!(
        store.get(&key),
        Some(Attempts {
            count: 0,
            last: 0,
            blocked_until: 0
        })
    );
    assert_eq!(store.sweep(0).await.expect("swept"), 0, "not before 0");
    store.clear(&key).await.expect("clears");
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_are_admitted_no_more_than_the_policy_allows() {
    let clock = Arc::new(AtomicI64::new(0));
    let accounts = Arc::new(accounts(policies(4, 1000, 1000), &clock));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let accounts = Arc::clone(&accounts);
            tokio::spawn(async move {
                let from = ip(&format!("10.0.0.{i}"));
                accounts
                    .sign_in_from("ann@example.com", "wrong horse", from, 0)
                    .await
            })
        })
        .collect();
    let mut hashed: u64 = 0;
    for t in tasks {
        match t.await.expect("joins") {
            Err(AuthError::WrongCredentials) => hashed += 1,
            Err(AuthError::Throttled(_)) | Err(AuthError::Busy(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let bound = policies(4, 1000, 1000)
        .account
        .most_admitted(Duration::ZERO);
    assert_eq!(bound, 5);
    assert_eq!(
        hashed, bound,
        "reached the hash at one instant, of 64 concurrent guesses"
    );
}
