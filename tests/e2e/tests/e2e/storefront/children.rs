//! The children: the sample converges, drift is repaired, pruning, garbage collection.

use super::*;

#[tokio::test]
async fn sample_storefront_converges_with_every_child_and_ready_pods() {
    let (client, ns) = setup("sample").await;
    let sfs: Api<Storefront> = ns.api();
    let sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    let t0 = Instant::now();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let sel = selector("acme");

    let deployments: Api<Deployment> = ns.api();
    let shards: Api<ServiceShard> = ns.api();
    wait_for(
        "every child of the sample to exist",
        READY_TIMEOUT,
        || async {
            let d = names(&deployments, &sel).await;
            let s = names(&shards, &sel).await;
            Ok((d.len() == 6 + 4 && s.len() == 4).then_some(()))
        },
    )
    .await
    .unwrap();
    let children_after = t0.elapsed();

    let ready = wait_ready(&sfs, "acme", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let ready_after = t0.elapsed();
    println!(
        "figure: sample apply -> all children exist: {:.1}s",
        children_after.as_secs_f64()
    );
    println!(
        "figure: sample apply -> Ready: {:.1}s",
        ready_after.as_secs_f64()
    );

    assert_eq!(
        names(&deployments, &sel).await,
        [
            "acme-auth",
            "acme-catalog",
            "acme-gateway",
            "acme-inventory-0",
            "acme-inventory-1",
            "acme-inventory-2",
            "acme-inventory-3",
            "acme-orders",
            "acme-payments",
            "acme-recommendations"
        ]
    );
    let services: Api<Service> = ns.api();
    // One per unsharded service, one per shard, and a headless `-pods` one per unsharded
    // service but the gateway and per shard (the pods the gateway spreads its calls over).
    let all = names(&services, &sel).await;
    assert_eq!(all.len(), 6 + 4 + 5 + 4, "{all:?}");
    for service in [
        "auth",
        "catalog",
        "orders",
        "payments",
        "recommendations",
        "inventory-0",
        "inventory-3",
    ] {
        let pods = format!("acme-{service}-pods");
        let svc = services.get(&pods).await.unwrap();
        assert_eq!(
            svc.spec.and_then(|s| s.cluster_ip).as_deref(),
            Some("None"),
            "{pods} is headless"
        );
    }
    let sas: Api<ServiceAccount> = ns.api();
    assert_eq!(names(&sas, &sel).await.len(), 7);
    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    assert_eq!(names(&hpas, &sel).await, ["acme-catalog", "acme-gateway"]);
    let pdbs: Api<PodDisruptionBudget> = ns.api();
    assert_eq!(
        names(&pdbs, &sel).await,
        ["acme-auth", "acme-gateway", "acme-orders", "acme-payments"]
    );
    let cms: Api<ConfigMap> = ns.api();
    assert_eq!(
        names(&cms, &sel).await,
        ["acme-gateway-routes", "acme-inventory-ring"]
    );
    let routes = cms.get("acme-gateway-routes").await.unwrap();
    assert!(routes.data.unwrap()["routes.json"].contains("\"requestsPerMinute\": 5000"));

    // Real pods run and are ready; the HPA-managed gateway got its floor from the HPA.
    for d in deployments
        .list(&ListParams::default().labels(&sel))
        .await
        .unwrap()
    {
        let st = d.status.clone().unwrap_or_default();
        assert!(
            st.available_replicas.unwrap_or(0) >= 1,
            "{} not available: {st:?}",
            d.name_any()
        );
    }
    let pods: Api<Pod> = ns.api();
    let running = pods
        .list(&ListParams::default().labels(&sel))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    assert!(
        running >= 14,
        "expected at least 14 running pods, got {running}"
    );

    let status = ready.status.unwrap();
    assert_eq!(status.ready_services, "7/7");
    assert_eq!(status.services["inventory"].desired, 4);
    assert_eq!(status.services["gateway"].desired, 2);
    assert_eq!(status.shards.len(), 4);
    assert!(
        status
            .shards
            .iter()
            .all(|s| s.phase == "Active" && s.ready == 1),
        "{:?}",
        status.shards
    );
    assert!(
        status.failure_points.is_empty(),
        "{:?}",
        status.failure_points
    );
    let shard = shards.get("acme-inventory-1").await.unwrap();
    assert_eq!(
        shard.status.unwrap().key_share_percent.as_deref(),
        Some("25.0")
    );
    drop(client);
}

#[tokio::test]
async fn drift_is_repaired_and_switched_off_services_are_pruned() {
    let (_client, ns) = setup("drift").await;
    let sfs = create_minimal(&ns).await;
    let deployments: Api<Deployment> = ns.api();
    let cms: Api<ConfigMap> = ns.api();

    // A deleted child is recreated.
    let old_uid = deployments.get("mini-catalog").await.unwrap().uid();
    let t0 = Instant::now();
    deployments
        .delete("mini-catalog", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("mini-catalog to be recreated", CHANGE_TIMEOUT, || async {
        Ok(deployments
            .get_opt("mini-catalog")
            .await?
            .filter(|d| d.uid() != old_uid)
            .map(|_| ()))
    })
    .await
    .unwrap();
    println!(
        "figure: deleted Deployment recreated after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // A hand-edited child is put back.
    let t0 = Instant::now();
    deployments
        .patch(
            "mini-gateway",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    cms.patch(
        "mini-gateway-routes",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"routes.json": "{}"}})),
    )
    .await
    .unwrap();
    wait_for("hand edits to be reverted", CHANGE_TIMEOUT, || async {
        let d = deployments.get("mini-gateway").await?;
        let cm = cms.get("mini-gateway-routes").await?;
        let ok = d.spec.and_then(|s| s.replicas) == Some(1)
            && cm
                .data
                .unwrap_or_default()
                .get("routes.json")
                .is_some_and(|r| r.contains("requestsPerMinute"));
        Ok(ok.then_some(()))
    })
    .await
    .unwrap();
    println!(
        "figure: hand-edited Deployment and ConfigMap reverted after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // A service switched off is pruned: Deployment, Services, ServiceAccount.
    patch_spec(
        &sfs,
        "mini",
        json!({"services": {"catalog": {"enabled": false}}}),
    )
    .await;
    let services: Api<Service> = ns.api();
    let sas: Api<ServiceAccount> = ns.api();
    wait_for("catalog children to be pruned", CHANGE_TIMEOUT, || async {
        let gone = deployments.get_opt("mini-catalog").await?.is_none()
            && services.get_opt("mini-catalog").await?.is_none()
            && services.get_opt("mini-catalog-pods").await?.is_none()
            && sas.get_opt("mini-catalog").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await
    .unwrap();
    let sf = wait_ready(&sfs, "mini", "True", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(sf.status.unwrap().ready_services, "1/1");
}

#[tokio::test]
async fn deleting_the_storefront_garbage_collects_every_child() {
    let (_client, ns) = setup("gc").await;
    let sfs = create_minimal(&ns).await;
    sfs.delete("mini", &DeleteParams::foreground())
        .await
        .unwrap();
    let deployments: Api<Deployment> = ns.api();
    let services: Api<Service> = ns.api();
    let sas: Api<ServiceAccount> = ns.api();
    let cms: Api<ConfigMap> = ns.api();
    let sel = selector("mini");
    wait_for(
        "every child to be garbage-collected",
        READY_TIMEOUT,
        || async {
            let left = names(&deployments, &sel).await.len()
                + names(&services, &sel).await.len()
                + names(&sas, &sel).await.len()
                + names(&cms, &sel).await.len();
            Ok((left == 0 && sfs.get_opt("mini").await?.is_none()).then_some(()))
        },
    )
    .await
    .unwrap();
}
