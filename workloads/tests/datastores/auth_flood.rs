//! A sign-in flood at a real auth gRPC server over PostgreSQL at the production hash cost
//! (argon2id, 19 MiB, 2 passes; harness: `tests/support/auth_flood.rs`): 400 concurrent
//! sign-ins over 8 connections with 2 hashing slots are each answered (OK, UNAUTHENTICATED
//! or RESOURCE_EXHAUSTED with a retry hint) and never more than 2 hashes run at once. Users
//! signed up with a fullwidth address sign in with its ASCII form, against the real table.
//! (The memory figure is the `auth_memory` binary's: this process runs other tests beside
//! this one, on the system allocator.)
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

#[path = "../support/auth_flood.rs"]
mod flood;

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use storefront_workloads::auth::{
    domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
    hash_gate::{HashGate, HashLimits, HashMetrics},
    postgres::PgUserStore,
    service::Accounts,
};

const SLOTS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_over_postgres_is_answered_within_the_hash_cap() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!("it_auth_flood_{}", std::process::id());
    let store = PgUserStore::connect(&url, &schema, 8)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([21; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    let accounts = Arc::new(
        Accounts::new(
            Arc::new(store),
            Passwords::new(HashCost::PRODUCTION).expect("params"),
            issuer,
        )
        .expect("accounts")
        .with_gate(HashGate::new(
            HashLimits::with_concurrency(SLOTS),
            HashMetrics::default(),
        )),
    );
    let alice = accounts
        .sign_up("Ａlice@Example.com", "correct horse", None)
        .await
        .expect("alice signs up with a fullwidth address");
    assert_eq!(alice.email, "alice@example.com");
    let (found, _) = accounts
        .sign_in("ALICE@example.com", "correct horse", 0)
        .await
        .expect("and signs in with its ASCII form");
    assert_eq!(found.id, alice.id);
    accounts
        .sign_up("bob@example.com", "correct horse", None)
        .await
        .expect("bob signs up");

    let seen = flood::flood(Arc::clone(&accounts), 400, 8, |i| match i % 4 {
        0 => ("alice@example.com", "correct horse"),
        1 => ("Ａlice@Example.com", "wrong horse"),
        2 => ("bob@example.com", "correct horse"),
        _ => ("nobody@example.com", "correct horse"),
    })
    .await;
    println!("{}", seen.figure("gRPC + PostgreSQL, argon2id 19 MiB"));
    assert_eq!(seen.ok + seen.unauthenticated + seen.exhausted, 400);
    assert!(
        (1..=SLOTS as i64).contains(&seen.peak_hashes),
        "{} hashes at once with {SLOTS} slots",
        seen.peak_hashes
    );
    assert!(
        seen.ok + seen.unauthenticated >= SLOTS,
        "the slots were used"
    );
    assert!(seen.exhausted > 0, "400 at once over 2 slots: some shed");
}
