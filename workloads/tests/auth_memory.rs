//! The memory a sign-in flood takes from auth, measured alone in its process under the
//! allocator the service runs with (mimalloc, as `src/main.rs`), so the figure is auth's and
//! not the test runner's: [`FLOOD`] (500) concurrent sign-ins over real gRPC at the production
//! hash cost (argon2id, 19 MiB) grow the peak resident set (`VmHWM`) by about the gate's slots
//! × 19 MiB, not by the flood's 500 × 19 MiB ≈ 9.3 GiB. Two floods, 2 then 6 slots, each printed as a
//! `figure:` line; the bound checked on the first is generous (the allocator's own caches,
//! the runtime's buffers) and still far below an ungated flood.
//!
//! Its own test binary because the allocator and the peak resident set are process-wide (as
//! for `grpc_mtls`); it needs no datastore (users in memory), so `cargo test` runs it.
//! With the system allocator instead, freed 19 MiB hash blocks are split by the many small
//! allocations of 400 calls in flight (measured with 400) and the peak grows by ~250-290 MiB at 2 slots (glibc's
//! dynamic mmap threshold; ~30 MiB with `MALLOC_MMAP_THRESHOLD_=131072`).

#[path = "support/auth_flood.rs"]
mod flood;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use storefront_workloads::auth::{
    domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
    hash_gate::{HashGate, HashLimits, HashMetrics},
    service::{Accounts, MemoryUserStore},
};

const MIB: u64 = 1024 * 1024;
/// Sign-ins in flight at once (issue 21: "500 concurrent sign-ins").
const FLOOD: usize = 500;
/// Hash memory of one slot at the production cost.
const HASH_MIB: u64 = HashCost::PRODUCTION.memory_kib as u64 / 1024;

fn accounts(slots: usize) -> Arc<Accounts<MemoryUserStore>> {
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([31; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    Arc::new(
        Accounts::new(
            Arc::new(MemoryUserStore::default()),
            Passwords::new(HashCost::PRODUCTION).expect("params"),
            issuer,
        )
        .expect("accounts")
        .with_gate(HashGate::new(
            HashLimits::with_concurrency(slots),
            HashMetrics::default(),
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_takes_the_slots_memory_not_the_floods() {
    let mut growth = vec![];
    for slots in [2, 6] {
        let accounts = accounts(slots);
        accounts
            .sign_up("ann@example.com", "correct horse", None)
            .await
            .expect("signed up");
        let seen = flood::flood(Arc::clone(&accounts), FLOOD, 8, |i| match i % 3 {
            0 => ("ann@example.com", "correct horse"),
            1 => ("Ａnn@Example.com", "wrong horse"),
            _ => ("nobody@example.com", "correct horse"),
        })
        .await;
        println!(
            "{}",
            seen.figure("gRPC, memory store, argon2id 19 MiB, mimalloc")
        );
        assert_eq!(seen.ok + seen.unauthenticated + seen.exhausted, FLOOD);
        assert!(
            (1..=slots as i64).contains(&seen.peak_hashes),
            "{} hashes at once with {slots} slots",
            seen.peak_hashes
        );
        growth.push(seen.hwm_growth);
    }
    // Peaks only grow, so the second flood's growth is what 6 slots added over 2.
    if let Some(two_slots) = growth[0] {
        let bound = 2 * HASH_MIB * MIB + 160 * MIB;
        assert!(
            two_slots < bound,
            "peak RSS grew {} MiB with 2 slots (bound {} MiB; ungated ≈ {} MiB)",
            two_slots / MIB,
            bound / MIB,
            FLOOD as u64 * HASH_MIB
        );
    }
}
