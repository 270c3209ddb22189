//! Auth's PostgreSQL user store against a real server: sign-up, a taken email (also under
//! concurrent sign-ups), sign-in with the right and wrong password.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use storefront_workloads::auth::{
    domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
    postgres::PgUserStore,
    service::{Accounts, AuthError, StoreError},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_live_in_postgres() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!("it_auth_{}", std::process::id());
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
    store.migrate().await.expect("migrating twice is a no-op");
    let passwords = Passwords::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("params");
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([2; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    let accounts = Arc::new(Accounts::new(Arc::new(store), passwords, issuer).expect("accounts"));

    let user = accounts
        .sign_up("Ann@Example.com", "correct horse", Some("Ann".into()))
        .await
        .expect("signs up");
    let (found, token) = accounts
        .sign_in("ann@example.com", "correct horse", 10)
        .await
        .expect("signs in");
    assert_eq!(found, user);
    assert_eq!(
        accounts
            .issuer()
            .verifier()
            .verify_user(&token.token, 20)
            .expect("valid")
            .sub,
        user.id
    );
    assert!(matches!(
        accounts.sign_in("ann@example.com", "wrong horse", 10).await,
        Err(AuthError::WrongCredentials)
    ));

    // Ten concurrent sign-ups for one email: exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let accounts = accounts.clone();
            tokio::spawn(async move {
                accounts
                    .sign_up("bob@example.com", "correct horse", None)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("joins") {
            Ok(_) => won += 1,
            Err(AuthError::Store(StoreError::EmailTaken(email))) => {
                assert_eq!(email, "bob@example.com")
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
}
