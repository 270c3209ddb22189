//! A sale's conditions: at risk, late, failed without its Storefront; edits apply at once.

use super::*;

/// The status condition `type_` of a sale, as (status, reason, message).
async fn sale_condition(
    sales: &Api<FlashSale>,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let s = sales.get(name).await.ok()?;
    s.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason, c.message))
}

#[tokio::test]
async fn a_sale_that_does_not_fit_is_at_risk_before_it_starts_and_late_at_its_start() {
    let (_client, ns) = setup("late").await;
    // Room for 2 more pods in the namespace; the sale wants 4 more orders pods.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = ns.api();
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "pods"},
                "spec": {"hard": {"pods": "4"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // The quota controller fills in `used` shortly.
    wait_for("quota usage", Duration::from_secs(30), || async {
        let q = quotas.get("pods").await?;
        Ok(q.status
            .and_then(|s| s.used)
            .is_some_and(|u| u.contains_key("pods"))
            .then_some(()))
    })
    .await
    .unwrap();
    let sales: Api<FlashSale> = ns.api();
    let start = at_second(Timestamp::now(), 8);
    let end = start + SignedDuration::from_secs(600);
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "too-big",
                &format!("  start: \"{start}\"\n  end: \"{end}\"\n  prewarm: 5s\n"),
                "    orders: {scale: {minReplicas: 5, maxReplicas: 5}, rateLimit: {requestsPerMinute: 3000}}\n",
            ),
        )
        .await
        .unwrap();
    // Preflight: at risk, with the quota named, before the sale starts.
    let (status, _, message) = wait_for("CapacityAtRisk", Duration::from_secs(10), || async {
        Ok(sale_condition(&sales, "too-big", "CapacityAtRisk")
            .await
            .filter(|c| c.0 == "True"))
    })
    .await
    .unwrap();
    assert_eq!(status, "True");
    assert!(message.contains("namespace quota leaves 2"), "{message}");
    wait_event(&ns, "FlashSale", "CapacityAtRisk", "namespace quota").await;
    // At the start the capacity is not there: limits stay closed, CapacityLate says why.
    // The count climbs while the pods the quota allows start (2/5 on a busy node, then
    // 3/5): wait for it to settle at what the quota allows, never above.
    let (_, _, late) = wait_for("CapacityLate at 3/5", Duration::from_secs(90), || async {
        Ok(sale_condition(&sales, "too-big", "CapacityLate")
            .await
            .filter(|c| c.0 == "True" && c.2.contains("orders 3/5")))
    })
    .await
    .unwrap();
    assert!(late.contains("orders 3/5"), "{late}");
    // The Event was written when the sale became late (whatever count was ready then).
    wait_event(&ns, "FlashSale", "CapacityLate", "/5 ready").await;
    let c = read(&ns).await;
    assert_eq!(
        (c.orders_replicas, c.orders_rpm),
        (5, 1000),
        "limits wait for capacity"
    );
    let s = sales.get("too-big").await.unwrap().status.unwrap();
    assert_eq!(s.phase, Some(SalePhase::Active));
    assert!(!s.limits_open);
}

#[tokio::test]
async fn a_sale_without_its_storefront_fails_then_recovers_and_edits_apply_at_once() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "ghost").await.unwrap();
    let sales: Api<FlashSale> = ns.api();
    let now = Timestamp::now();
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "early",
                &format!(
                    "  start: \"{}\"\n  end: \"{}\"\n  prewarm: 1s\n",
                    at_second(now, 1),
                    at_second(now, 3600)
                ),
                "    gateway: {rateLimit: {requestsPerMinute: 10000}}\n",
            ),
        )
        .await
        .unwrap();
    // Generous: the operator may be rolling to the freshly loaded image right now.
    wait_phase(&sales, "early", SalePhase::Failed, Duration::from_secs(90)).await;
    let (_, reason, message) = sale_condition(&sales, "early", "Degraded").await.unwrap();
    assert_eq!(reason, "StorefrontNotFound");
    assert!(message.contains("\"shop\" does not exist"), "{message}");
    // The Storefront appears: the sale recovers by itself and its limit applies.
    let sfs: Api<Storefront> = ns.api();
    sfs.create(
        &PostParams::default(),
        &storefront_from(SHOP, &ns.name).unwrap(),
    )
    .await
    .unwrap();
    wait_phase(&sales, "early", SalePhase::Active, Duration::from_secs(30)).await;
    when(&ns, "sale limit", Duration::from_secs(60), |c| {
        c.gateway_rpm == 10000
    })
    .await;
    // Editing the running sale applies at once.
    let t = Timestamp::now();
    sales
        .patch(
            "early",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"services": {"gateway": {"rateLimit": {"requestsPerMinute": 12000}}}}})),
        )
        .await
        .unwrap();
    let seen = when(&ns, "edited limit", Duration::from_secs(10), |c| {
        c.gateway_rpm == 12000
    })
    .await;
    println!(
        "figure: edit-running-sale-to-applied_ms={}",
        seen.duration_since(t).as_millis()
    );
}
