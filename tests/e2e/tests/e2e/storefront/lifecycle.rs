//! The lifecycle: `paused`, `stopped`, an operator restart, crash-looping pods reported.

use super::*;

#[tokio::test]
async fn paused_freezes_and_stopped_scales_to_zero_and_back() {
    let (_client, ns) = setup("pause").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();

    // Paused: a spec change is observed (status says Paused) but not applied.
    patch_spec(
        &sfs,
        "mini",
        json!({"paused": true, "services": {"catalog": {"replicas": 2}}}),
    )
    .await;
    wait_for(
        "Paused=True for the new generation",
        CHANGE_TIMEOUT,
        || async {
            let sf = sfs.get("mini").await?;
            Ok(condition(&sf, "Paused")
                .is_some_and(|c| {
                    c.status == "True" && c.observed_generation == sf.metadata.generation
                })
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let replicas = deployments
        .get("mini-catalog")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(
        replicas,
        Some(1),
        "a paused Storefront must not change its children"
    );

    // Unpaused: the change lands.
    patch_spec(&sfs, "mini", json!({"paused": false})).await;
    wait_for("catalog to get 2 replicas", CHANGE_TIMEOUT, || async {
        Ok((deployments
            .get("mini-catalog")
            .await?
            .spec
            .and_then(|s| s.replicas)
            == Some(2))
        .then_some(()))
    })
    .await
    .unwrap();

    // Stopped: everything to zero, kept; Ready with reason Stopped.
    patch_spec(&sfs, "mini", json!({"stopped": true})).await;
    let pods: Api<Pod> = ns.api();
    wait_for("every pod to be gone", READY_TIMEOUT, || async {
        let deps = deployments
            .list(&ListParams::default().labels(&selector("mini")))
            .await?;
        let zero = deps.items.len() == 2
            && deps
                .items
                .iter()
                .all(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0));
        let no_pods = pods
            .list(&ListParams::default().labels(&selector("mini")))
            .await?
            .items
            .is_empty();
        Ok((zero && no_pods).then_some(()))
    })
    .await
    .unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition(&sf, "Ready").unwrap().reason, "Stopped");

    // And back.
    patch_spec(&sfs, "mini", json!({"stopped": false})).await;
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(condition(&sf, "Ready").unwrap().reason, "AllServicesReady");
    assert_eq!(sf.status.unwrap().services["catalog"].ready, 2);
}

#[tokio::test]
async fn operator_restart_loses_nothing_and_reconverges() {
    let (client, ns) = setup("restart").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();
    let before: Vec<_> = deployments
        .list(&ListParams::default().labels(&selector("mini")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| (d.name_any(), d.uid()))
        .collect();

    // Kill the operator pod; change the spec while it is down.
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    for p in pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=storefront-operator"))
        .await
        .unwrap()
    {
        pods.delete(
            &p.name_any(),
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    }
    let t0 = Instant::now();
    patch_spec(
        &sfs,
        "mini",
        json!({"services": {"gateway": {"replicas": 2}}}),
    )
    .await;
    wait_operator_available(&client).await.unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    println!(
        "figure: operator pod killed -> change applied and Ready: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(sf.status.unwrap().services["gateway"].ready, 2);
    let after: Vec<_> = deployments
        .list(&ListParams::default().labels(&selector("mini")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| (d.name_any(), d.uid()))
        .collect();
    assert_eq!(
        before, after,
        "children must survive an operator restart untouched"
    );
}

#[tokio::test]
async fn crash_looping_pods_are_reported_as_failure_points() {
    let (_client, ns) = setup("crash").await;
    let sfs: Api<Storefront> = ns.api();
    // The operator image exits at once when asked to run `catalog`: a real crash loop.
    let mut sf = storefront_from(MINIMAL, &ns.name).unwrap();
    sf.metadata.name = Some("crashy".into());
    sf.spec.image =
        std::env::var("E2E_OPERATOR_IMAGE").unwrap_or_else(|_| "storefront/operator:dev".into());
    sf.spec.services.remove("gateway");
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let t0 = Instant::now();
    let sf = wait_for(
        "a CrashLoopBackOff failure point",
        Duration::from_secs(150),
        || async {
            let sf = sfs.get("crashy").await?;
            let crashing = sf.status.as_ref().is_some_and(|s| {
                s.failure_points.iter().any(|f| {
                    f.kind == "Pod"
                        && f.reason == "CrashLoopBackOff"
                        && f.name.starts_with("crashy-catalog-")
                })
            });
            Ok(crashing.then_some(sf))
        },
    )
    .await
    .unwrap();
    println!(
        "figure: crash loop reported as a failure point after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let degraded = condition(&sf, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "FailurePoints")
    );
    assert_eq!(condition(&sf, "Ready").unwrap().status, "False");
}
