//! `storefront-workloads auth` and the auth part of `migrate`: wires settings, PostgreSQL,
//! the gRPC server and the operations endpoints ([`Lifecycle`]).

use std::sync::Arc;

use anyhow::Result;

use super::{
    args::HashArgs,
    domain::{HashCost, Passwords, TokenIssuer},
    grpc::serve,
    hash_gate::{HashGate, HashMetrics},
    postgres::PgUserStore,
    service::Accounts,
};
use storefront_platform::config::{CommonArgs, TokenArgs};
use storefront_platform::ops::Lifecycle;

/// Connections per auth pod (password hashing, not the database, is the bottleneck).
const POOL_SIZE: u32 = 8;

/// Creates the users table.
pub async fn migrate(common: &CommonArgs) -> Result<()> {
    let store = PgUserStore::connect(common.database_url()?, common.database_schema()?, 2).await?;
    store.migrate().await?;
    tracing::info!(schema = common.database_schema()?, "auth schema migrated");
    Ok(())
}

/// Runs the auth service until SIGTERM and the drain are over.
pub async fn run(common: CommonArgs, tokens: TokenArgs, hashing: HashArgs) -> Result<()> {
    let storefront = common.storefront()?.to_string();
    let (user_ttl, service_ttl) = tokens.ttls()?;
    let url = common.database_url()?;
    let schema = common.database_schema()?;
    // The Storefront's name is the issuer of its tokens: another shop's tokens are refused.
    let issuer = TokenIssuer::new(common.signing_keys()?, &storefront, user_ttl, service_ttl);
    common.install_tls()?;
    let passwords = Passwords::new(HashCost::PRODUCTION)?;
    let limits = hashing.limits()?;

    let (grpc, life, metrics) =
        Lifecycle::start_service(&common, "auth", |r| Ok(HashMetrics::register(r))).await?;
    let store = PgUserStore::connect(url, schema, POOL_SIZE).await?;
    store.migrate().await?;
    let accounts = Accounts::new(Arc::new(store), passwords, issuer)?
        .with_gate(HashGate::new(limits, metrics));
    let accounts = Arc::new(accounts);
    tracing::info!(
        %storefront,
        hash_concurrency = limits.concurrency,
        hash_queue = limits.queue,
        "auth ready"
    );
    life.serve(|shutdown| serve(grpc, accounts, shutdown)).await
}
