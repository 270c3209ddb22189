//! `storefront-workloads auth` and the auth part of `migrate`: wires settings, PostgreSQL,
//! the gRPC server and the operations endpoints ([`Lifecycle`]).

use std::{sync::Arc, time::Duration};

use anyhow::Result;

use super::{
    args::{HashArgs, ThrottleArgs},
    domain::{HashCost, Passwords, TokenIssuer},
    grpc::serve,
    hash_gate::{HashGate, HashMetrics},
    postgres::PgUserStore,
    service::Accounts,
    throttle::{Throttle, ThrottleMetrics},
};
use storefront_platform::config::{CommonArgs, TokenArgs};
use storefront_platform::ops::Lifecycle;

/// Connections per auth pod (password hashing, not the database, is the bottleneck).
const POOL_SIZE: u32 = 8;
/// How often the throttle's quiet counters are deleted (by every replica: the delete is
/// idempotent and cheap on its index).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Creates the users table.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgUserStore::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(schema = common.database_schema()?, "auth schema migrated");
    Ok(())
}

/// Runs the auth service until SIGTERM and the drain are over.
pub async fn run(
    common: CommonArgs,
    tokens: TokenArgs,
    hashing: HashArgs,
    throttling: ThrottleArgs,
) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let (user_ttl, service_ttl) = tokens.ttls()?;
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    // The Storefront's name is the issuer of its tokens: another shop's tokens are refused.
    // Auth alone holds the user key; it verifies user tokens and its callers' service tokens
    // with the shop's key set.
    let keys = common.token_keys(&storefront)?;
    let user_key = keys.user.ok_or_else(|| {
        anyhow::anyhow!(
            "auth needs the user-token signing key ({}/private.pem): the operator mounts it in auth only",
            common.jwt_keys_dir.as_deref().unwrap_or(std::path::Path::new("JWT_KEYS_DIR")).display()
        )
    })?;
    let issuer =
        TokenIssuer::new(user_key, &storefront, user_ttl, service_ttl).with_verifier(keys.verifier);
    common.install_tls()?;
    let passwords = Passwords::new(HashCost::PRODUCTION)?;
    let limits = hashing.limits()?;
    let policies = throttling.policies()?;

    let (grpc, life, (metrics, throttle_metrics)) =
        Lifecycle::start_service(&common, "auth", |r| {
            Ok((HashMetrics::register(r), ThrottleMetrics::register(r)))
        })
        .await?;
    let store = Arc::new(PgUserStore::connect(url, schema, POOL_SIZE).await?);
    store.migrate().await?;
    let throttle = Arc::new(Throttle::new(store.clone(), policies, throttle_metrics));
    let sweeper = tokio::spawn(Arc::clone(&throttle).sweep_every(SWEEP_EVERY));
    let accounts = Accounts::new(store, passwords, issuer)?
        .with_gate(HashGate::new(limits, metrics))
        .with_throttle(throttle);
    let accounts = Arc::new(accounts);
    tracing::info!(
        %storefront,
        hash_concurrency = limits.concurrency,
        hash_queue = limits.queue,
        sign_in_account_free = policies.account.free,
        sign_in_address_free = policies.address.free,
        sign_up_address_free = policies.sign_up.free,
        throttle_cap_secs = policies.account.cap.as_secs(),
        "auth ready"
    );
    let served = life.serve(|shutdown| serve(grpc, accounts, shutdown)).await;
    sweeper.abort();
    served
}
