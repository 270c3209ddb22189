//! The CRDs install, the samples are accepted, and every bad input of the foundation issue is
//! refused by the API server with a message that names the field.

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use storefront_e2e::{TestNamespace, client, install_crds, sample};

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("commerce.storefront.dev", "v1alpha1", kind),
        plural,
    )
}

async fn create(api: &Api<DynamicObject>, yaml: &str, dry_run: bool) -> Result<(), String> {
    let obj: DynamicObject = serde_yaml::from_str(yaml).expect("test YAML parses");
    let pp = PostParams {
        dry_run,
        ..PostParams::default()
    };
    match api.create(&pp, &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(format!("{} {}", s.code, s.message)),
        Err(e) => Err(e.to_string()),
    }
}

fn storefront(services: &str) -> String {
    format!(
        "apiVersion: commerce.storefront.dev/v1alpha1\nkind: Storefront\nmetadata: {{name: bad}}\nspec:\n  image: img\n  services:\n{services}"
    )
}

#[tokio::test]
async fn bad_input_is_refused_by_the_api_server_with_a_clear_message() {
    let client = client().await.unwrap();
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "crds").await.unwrap();
    let sfs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &resource("Storefront", "storefronts"),
    );
    let sales: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &resource("FlashSale", "flashsales"),
    );

    // The samples are valid.
    for f in ["storefront.yaml", "minimal.yaml"] {
        create(&sfs, &sample(f).unwrap(), true)
            .await
            .unwrap_or_else(|e| panic!("{f} refused: {e}"));
    }
    create(&sales, &sample("flashsale.yaml").unwrap(), true)
        .await
        .expect("flashsale sample accepted");

    let cases = [
        (
            "negative replicas",
            storefront("    gateway: {replicas: -1}\n"),
            vec![
                "spec.services.gateway.replicas",
                "greater than or equal to 0",
            ],
        ),
        (
            "min > max",
            storefront("    gateway: {autoscaling: {min: 5, max: 2}}\n"),
            vec![
                "spec.services[gateway].autoscaling",
                "autoscaling.max must be greater than or equal to autoscaling.min",
            ],
        ),
        (
            "unknown service",
            storefront("    shipping: {}\n"),
            vec!["spec.services", "unknown service name"],
        ),
        (
            "zero shards",
            storefront("    inventory: {sharding: {shards: 0}}\n"),
            vec![
                "spec.services.inventory.sharding.shards",
                "greater than or equal to 1",
            ],
        ),
        (
            "zero rate limit",
            storefront("    gateway: {rateLimit: {requestsPerMinute: 0}}\n"),
            vec![
                "spec.services.gateway.rateLimit.requestsPerMinute",
                "greater than or equal to 1",
            ],
        ),
        (
            "replicas and autoscaling",
            storefront("    orders: {replicas: 2, autoscaling: {min: 1, max: 3}}\n"),
            vec![
                "spec.services[orders]",
                "set either replicas or autoscaling",
            ],
        ),
        (
            "sharded catalog",
            storefront("    catalog: {sharding: {shards: 2}}\n"),
            vec!["spec.services", "sharding is only supported"],
        ),
        (
            "bad tier",
            storefront("    gateway: {tier: gold}\n"),
            vec!["spec.services.gateway.tier", "supported values"],
        ),
    ];
    for (what, yaml, expected) in cases {
        let err = create(&sfs, &yaml, false).await.expect_err(what);
        assert!(err.starts_with("422"), "{what}: {err}");
        for e in expected {
            assert!(err.contains(e), "{what}: expected {e:?} in {err}");
        }
    }

    let sale = |spec: &str| {
        format!(
            "apiVersion: commerce.storefront.dev/v1alpha1\nkind: FlashSale\nmetadata: {{name: bad}}\nspec:\n  storefrontRef: acme\n{spec}"
        )
    };
    let sale_cases = [
        (
            "end before start",
            sale("  start: \"2026-11-27T20:00:00Z\"\n  end: \"2026-11-27T08:00:00Z\"\n"),
            vec!["spec.end", "end must be after start"],
        ),
        ("no window", sale("  prewarm: 5m\n"), vec!["exactly one"]),
        (
            "bad prewarm",
            sale(
                "  start: \"2026-11-27T08:00:00Z\"\n  end: \"2026-11-27T20:00:00Z\"\n  prewarm: soon\n",
            ),
            vec!["spec.prewarm"],
        ),
        (
            "scale min > max",
            sale(
                "  start: \"2026-11-27T08:00:00Z\"\n  end: \"2026-11-27T20:00:00Z\"\n  services:\n    gateway: {scale: {minReplicas: 9, maxReplicas: 3}}\n",
            ),
            vec!["scale.maxReplicas must be greater than or equal to scale.minReplicas"],
        ),
        (
            "zero duration",
            sale("  schedule: {cron: '0 20 * * FRI', duration: 0s}\n"),
            vec![
                "spec.schedule.duration",
                "schedule.duration must be longer than 0",
            ],
        ),
        (
            "cron with junk",
            sale("  schedule: {cron: '0 20 * * FRI; rm', duration: 1h}\n"),
            vec!["spec.schedule.cron", "should match"],
        ),
        (
            "cron with four fields",
            sale("  schedule: {cron: '0 20 * *', duration: 1h}\n"),
            vec!["spec.schedule.cron"],
        ),
        (
            "factor zero",
            sale(
                "  start: \"2026-11-27T08:00:00Z\"\n  end: \"2026-11-27T20:00:00Z\"\n  services:\n    orders: {factor: 0}\n",
            ),
            vec!["spec.services.orders.factor", "greater than or equal to 1"],
        ),
        (
            "unknown service in a sale",
            sale(
                "  start: \"2026-11-27T08:00:00Z\"\n  end: \"2026-11-27T20:00:00Z\"\n  services:\n    shipping: {factor: 2}\n",
            ),
            vec!["spec.services", "unknown service name"],
        ),
    ];
    for (what, yaml, expected) in sale_cases {
        let err = create(&sales, &yaml, false).await.expect_err(what);
        assert!(err.starts_with("422"), "{what}: {err}");
        for e in expected {
            assert!(err.contains(e), "{what}: expected {e:?} in {err}");
        }
    }
}
