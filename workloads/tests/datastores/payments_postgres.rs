//! Payments' PostgreSQL ledger against a real server: many concurrent deliveries of the
//! same `StockReserved` charge the (simulated) provider once; a stale in-flight claim can be
//! taken over after its lease, and then the provider's idempotency returns the first answer.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::{sync::Arc, time::Duration};

use sqlx::AssertSqlSafe;
use storefront_workloads::payments::{
    domain::{Begin, ChargeResult, LedgerError, ProviderConfig, SimulatedProvider},
    postgres::{PgLedger, PgLedgerError},
};
use tokio::sync::Mutex;

async fn ledger(name: &str, lease: Duration) -> PgLedger {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    });
    let schema = format!("it_payments_{name}_{}", std::process::id());
    let ledger = PgLedger::connect(&url, &schema, 8, lease)
        .await
        .expect("connects");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(ledger.pool())
    .await
    .expect("clean schema");
    ledger.migrate().await.expect("migrates");
    ledger.migrate().await.expect("migrating twice is a no-op");
    ledger
}

fn provider() -> Arc<Mutex<SimulatedProvider>> {
    Arc::new(Mutex::new(
        SimulatedProvider::new(ProviderConfig {
            latency: Duration::from_millis(5),
            jitter: 0.0,
            failure_rate: 0.0,
            seed: 1,
        })
        .expect("valid"),
    ))
}

/// One delivery of `StockReserved` for `order`, as the consumer handles it.
async fn deliver(
    ledger: &PgLedger,
    provider: &Mutex<SimulatedProvider>,
    order: &str,
) -> Option<ChargeResult> {
    match ledger.begin(order, 1_000).await.expect("begin") {
        Begin::Charge => {
            let (latency, result) = provider.lock().await.decide(order, 1_000);
            tokio::time::sleep(latency).await;
            ledger.finish(order, &result).await.expect("finish");
            Some(result)
        }
        Begin::Done(result) => Some(result),
        Begin::InFlight => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_charge_per_order_whatever_the_redeliveries() {
    let ledger = ledger("once", Duration::from_secs(60)).await;
    let provider = provider();
    let mut tasks = Vec::new();
    for order in 0..20 {
        for _ in 0..4 {
            let (ledger, provider) = (ledger.clone(), provider.clone());
            tasks.push(tokio::spawn(async move {
                let order = format!("o{order}");
                (order.clone(), deliver(&ledger, &provider, &order).await)
            }));
        }
    }
    let mut answers = std::collections::HashMap::<String, ChargeResult>::new();
    for task in tasks {
        let (order, result) = task.await.expect("joins");
        if let Some(result) = result
            && let Some(previous) = answers.insert(order.clone(), result.clone())
        {
            assert_eq!(previous, result, "{order}: every answer is the same");
        }
    }
    assert_eq!(provider.lock().await.charges(), 20, "one charge per order");
    // Redelivered later: answered from the ledger, no new charge.
    for order in 0..20 {
        let again = deliver(&ledger, &provider, &format!("o{order}")).await;
        assert!(matches!(again, Some(ChargeResult::Succeeded { .. })));
    }
    assert_eq!(provider.lock().await.charges(), 20);
    assert!(matches!(
        ledger.begin("o1", 999).await,
        Err(PgLedgerError::Ledger(LedgerError::AmountMismatch { .. }))
    ));
    assert!(matches!(
        ledger
            .finish("o1", &ChargeResult::Failed { reason: "x".into() })
            .await,
        Err(PgLedgerError::Ledger(LedgerError::NotInFlight(_)))
    ));
}

#[tokio::test]
async fn a_stale_claim_is_taken_over_after_its_lease() {
    // Long enough that a loaded CI machine answers the second `begin` within the lease.
    let ledger = ledger("lease", Duration::from_secs(2)).await;
    let provider = provider();
    // A pod claimed the charge, asked the provider, and died before recording the answer.
    assert_eq!(
        ledger.begin("o1", 1_000).await.expect("begin"),
        Begin::Charge
    );
    let (_, first) = provider.lock().await.decide("o1", 1_000);
    assert_eq!(
        ledger.begin("o1", 1_000).await.expect("begin"),
        Begin::InFlight
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The redelivery takes over; the provider's idempotency gives the first answer back.
    assert_eq!(deliver(&ledger, &provider, "o1").await, Some(first));
    assert_eq!(provider.lock().await.charges(), 1);
}
