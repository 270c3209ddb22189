//! A reconcile with nothing to change makes no writes, measured on the operator's own
//! `storefront_operator_writes_total`, and the reconciles one spec change costs (printed).
//! Run alone (`tests/e2e/suite` runs one area at a time), so no other test writes meanwhile.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use storefront_crds::Storefront;
use storefront_e2e::{
    TestNamespace, client, counter_sum, ensure_operator, operator_metrics, storefront_from,
    wait_for, wait_ready,
};

const WRITES: &str = "storefront_operator_writes_total{";
const RECONCILES: &str = "storefront_operator_reconciles_total{kind=\"Storefront\"}";
/// Counted when a reconcile has finished (its duration is recorded on drop).
const FINISHED: &str = "storefront_operator_reconcile_duration_seconds_count{kind=\"Storefront\"}";

#[tokio::test]
async fn a_reconcile_with_nothing_to_change_makes_no_writes() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "noop").await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let yaml = "apiVersion: commerce.storefront.dev/v1alpha1\nkind: Storefront\nmetadata: {name: quiet}\nspec:\n  image: x\n  services:\n    gateway: {replicas: 1}\n    orders: {sharding: {shards: 2}}\n";
    sfs.create(
        &PostParams::default(),
        &storefront_from(yaml, &ns.name).unwrap(),
    )
    .await
    .unwrap();
    wait_ready(&sfs, "quiet", "True", Duration::from_secs(180))
        .await
        .unwrap();

    // Let in-flight work settle: writes stop changing across two reads 2 s apart.
    let settled = wait_for("writes to settle", Duration::from_secs(60), || async {
        let a = counter_sum(&operator_metrics(&client).await?, WRITES);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = counter_sum(&operator_metrics(&client).await?, WRITES);
        Ok((a == b).then_some(b))
    })
    .await
    .unwrap();
    let finished = counter_sum(&operator_metrics(&client).await.unwrap(), FINISHED);

    // Touch a child without changing anything we own: the Storefront is reconciled...
    let deployments: Api<Deployment> = ns.api();
    deployments
        .patch(
            "quiet-gateway",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    wait_for(
        "a finished reconcile after the touch",
        Duration::from_secs(30),
        || async {
            let now = counter_sum(&operator_metrics(&client).await?, FINISHED);
            Ok((now > finished).then_some(()))
        },
    )
    .await
    .unwrap();
    // ... and writes nothing.
    let after = counter_sum(&operator_metrics(&client).await.unwrap(), WRITES);
    assert_eq!(
        after,
        settled,
        "a no-op reconcile wrote {} times",
        after - settled
    );

    // One spec change: how many Storefront reconciles until Ready again (a baseline figure).
    let before = counter_sum(&operator_metrics(&client).await.unwrap(), RECONCILES);
    sfs.patch(
        "quiet",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"services": {"gateway": {"replicas": 2}}}})),
    )
    .await
    .unwrap();
    wait_ready(&sfs, "quiet", "True", Duration::from_secs(120))
        .await
        .unwrap();
    let spent = counter_sum(&operator_metrics(&client).await.unwrap(), RECONCILES) - before;
    println!(
        "figure: Storefront reconciles for one spec change (incl. pod readiness updates): {spent}"
    );
}
