//! What the children are wired to: datastore Secrets in pods, NetworkPolicies.

use super::*;

#[tokio::test]
async fn datastore_secrets_are_wired_into_pods() {
    let (_client, ns) = setup("wired").await;
    let sfs = create_minimal(&ns).await;
    patch_spec(
        &sfs,
        "mini",
        json!({"datastores": {"postgres": {"secretName": "shop-db"}}}),
    )
    .await;
    // The Secret does not exist yet: the shop holds (nothing applied) and names it.
    wait_for(
        "the Storefront to name the missing Secret",
        CHANGE_TIMEOUT,
        || async {
            let sf = sfs.get("mini").await?;
            Ok(condition(&sf, "Ready")
                .filter(|c| {
                    c.reason == "DatastoreSecretMissing"
                        && c.message.starts_with("Secret shop-db (key url) not found")
                })
                .map(|_| ()))
        },
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = ns.api();
    let d = deployments.get("mini-catalog").await.unwrap();
    let wired = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].env.clone())
        .unwrap_or_default()
        .iter()
        .any(|e| e.name == "DATABASE_URL");
    assert!(
        !wired,
        "DATABASE_URL wired from a Secret that does not exist"
    );
    // The Secret appears: wired without touching the Storefront.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "shop-db"},
        "stringData": {"url": "postgres://storefront@db.invalid:5432/storefront"}
    }))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for(
        "DATABASE_URL to be wired from the Secret",
        CHANGE_TIMEOUT,
        || async {
            let d = deployments.get("mini-catalog").await?;
            let env = d
                .spec
                .and_then(|s| s.template.spec)
                .map(|s| s.containers[0].env.clone().unwrap_or_default())
                .unwrap_or_default();
            Ok(env.iter().any(|e| e.name == "DATABASE_URL").then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn network_policies_follow_the_security_switch() {
    let (_client, ns) = setup("netpol").await;
    let sfs = create_minimal(&ns).await;
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = ns.api();
    let sel = selector("mini");
    patch_spec(&sfs, "mini", json!({"security": {"networkPolicies": true}})).await;
    wait_for("a NetworkPolicy per service", CHANGE_TIMEOUT, || async {
        Ok((names(&policies, &sel).await == ["mini-catalog", "mini-gateway"]).then_some(()))
    })
    .await
    .unwrap();
    patch_spec(
        &sfs,
        "mini",
        json!({"security": {"networkPolicies": false}}),
    )
    .await;
    wait_for(
        "the NetworkPolicies to be pruned",
        CHANGE_TIMEOUT,
        || async { Ok(names(&policies, &sel).await.is_empty().then_some(())) },
    )
    .await
    .unwrap();
}
