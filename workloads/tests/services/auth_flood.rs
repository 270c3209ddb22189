//! A sign-in flood at a real auth gRPC server on loopback with a small hashing gate
//! (harness: `tests/support/auth_flood.rs`): 300 concurrent sign-ins over several connections
//! are each answered (OK, UNAUTHENTICATED for a wrong password, or RESOURCE_EXHAUSTED with a
//! `retry-after` hint; never another code, never a dropped call), no more hashes ever run at
//! once than the gate's slots, and users sign in again as soon as the flood is over. The same
//! against PostgreSQL at the production cost is `datastores::auth_flood`; the memory it takes
//! under the production allocator is the `auth_memory` test binary.

#[path = "../support/auth_flood.rs"]
mod flood;

use std::{sync::Arc, time::Duration};

use storefront_workloads::auth::{
    domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
    hash_gate::{HashGate, HashLimits, HashMetrics},
    service::{Accounts, MemoryUserStore},
};

const SLOTS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_is_answered_within_the_hash_cap() {
    // 4 MiB, 2 passes: a few milliseconds a hash, so 300 at once contend for the 2 slots.
    let passwords = Passwords::new(HashCost {
        memory_kib: 4 * 1024,
        iterations: 2,
        parallelism: 1,
    })
    .expect("params");
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([12; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    let gate = HashGate::new(
        HashLimits {
            concurrency: SLOTS,
            queue: 4,
            wait: Duration::from_millis(250),
        },
        HashMetrics::default(),
    );
    let accounts = Arc::new(
        Accounts::new(Arc::new(MemoryUserStore::default()), passwords, issuer)
            .expect("accounts")
            .with_gate(gate),
    );
    accounts
        .sign_up("ann@example.com", "correct horse", None)
        .await
        .expect("signed up");

    // Right and wrong passwords, and unknown accounts (a decoy verification each).
    let seen = flood::flood(Arc::clone(&accounts), 300, 6, |i| match i % 3 {
        0 => ("ann@example.com", "correct horse"),
        1 => ("ann@example.com", "wrong horse"),
        _ => ("nobody@example.com", "correct horse"),
    })
    .await;
    println!("{}", seen.figure("memory store, 4 MiB hashes"));
    assert_eq!(seen.ok + seen.unauthenticated + seen.exhausted, 300);
    assert!(
        (1..=SLOTS as i64).contains(&seen.peak_hashes),
        "{} hashes ran at once with {SLOTS} slots",
        seen.peak_hashes
    );
    assert!(
        seen.exhausted > 0,
        "300 at once over 2 slots and 4 waiting: some shed"
    );
    assert!(
        seen.ok + seen.unauthenticated >= SLOTS,
        "the slots and the queue were used"
    );

    // The flood is over: the next sign-in gets a slot at once.
    accounts
        .sign_in("ANN@example.com", "correct horse", 0)
        .await
        .expect("signed in after the flood");
}
