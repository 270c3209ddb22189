//! Which children a Storefront gets, labelled and owned, and when it gets none.

use super::*;

#[test]
fn sample_builds_every_child() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    assert_eq!(
        names(&d.deployments),
        [
            "acme-gateway",
            "acme-auth",
            "acme-catalog",
            "acme-orders",
            "acme-payments",
            "acme-recommendations"
        ]
    );
    assert_eq!(
        names(&d.services),
        [
            "acme-gateway",
            "acme-auth",
            "acme-auth-pods",
            "acme-catalog",
            "acme-catalog-pods",
            "acme-orders",
            "acme-orders-pods",
            "acme-payments",
            "acme-payments-pods",
            "acme-recommendations",
            "acme-recommendations-pods"
        ]
    );
    let pods = d
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("acme-catalog-pods"))
        .and_then(|s| s.spec.as_ref())
        .unwrap();
    assert_eq!(pods.cluster_ip.as_deref(), Some("None"), "headless");
    assert_eq!(
        pods.selector,
        d.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("acme-catalog"))
            .and_then(|s| s.spec.as_ref())
            .unwrap()
            .selector,
        "the same pods as the service"
    );
    assert_eq!(d.service_accounts.len(), 7);
    assert_eq!(names(&d.hpas), ["acme-gateway", "acme-catalog"]);
    assert_eq!(
        names(&d.pdbs),
        ["acme-gateway", "acme-auth", "acme-orders", "acme-payments"]
    );
    assert_eq!(
        names(&d.config_maps),
        ["acme-inventory-ring", "acme-gateway-routes"]
    );
    assert_eq!(
        names(&d.shards),
        [
            "acme-inventory-0",
            "acme-inventory-1",
            "acme-inventory-2",
            "acme-inventory-3"
        ]
    );
    let shard = &d.shards[2].spec;
    assert_eq!((shard.index, shard.shard_count, shard.replicas), (2, 4, 1));
    assert_eq!(shard.service, ShardedService::Inventory);
}

#[test]
fn every_child_is_labelled_and_owned() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    let metas: Vec<&ObjectMeta> = d
        .deployments
        .iter()
        .map(|o| &o.metadata)
        .chain(d.services.iter().map(|o| &o.metadata))
        .chain(d.service_accounts.iter().map(|o| &o.metadata))
        .chain(d.hpas.iter().map(|o| &o.metadata))
        .chain(d.pdbs.iter().map(|o| &o.metadata))
        .chain(d.config_maps.iter().map(|o| &o.metadata))
        .chain(d.shards.iter().map(|o| &o.metadata))
        .collect();
    assert_eq!(metas.len(), 6 + 11 + 7 + 2 + 4 + 2 + 4);
    for m in metas {
        let l = m.labels.as_ref().unwrap();
        for key in [
            labels::NAME,
            labels::INSTANCE,
            labels::COMPONENT,
            labels::MANAGED_BY,
            labels::PART_OF,
        ] {
            assert!(l.contains_key(key), "{:?} lacks {key}", m.name);
        }
        assert_eq!(l[labels::INSTANCE], "acme");
        assert_eq!(m.namespace.as_deref(), Some("shop"));
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-acme");
        assert_eq!(owners[0].controller, Some(true));
    }
}

#[test]
fn a_switched_off_service_is_not_desired() {
    let mut sf = sample_storefront();
    sf.spec.services.get_mut("recommendations").unwrap().enabled = false;
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert!(!names(&d.deployments).contains(&"acme-recommendations".to_string()));
    assert!(!names(&d.service_accounts).contains(&"acme-recommendations".to_string()));
    assert_eq!(d.plans.len(), 6);
}

#[test]
fn stopped_keeps_everything_at_zero_pods() {
    let mut sf = sample_storefront();
    sf.spec.stopped = true;
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(d.deployments.len(), 6);
    assert!(
        d.deployments
            .iter()
            .all(|x| x.spec.as_ref().unwrap().replicas == Some(0))
    );
    assert!(d.hpas.is_empty() && d.pdbs.is_empty());
    assert!(d.shards.iter().all(|s| s.spec.replicas == 0));
    assert_eq!(d.services.len(), 11);
    assert_eq!(d.config_maps.len(), 2);
}

#[test]
fn invalid_spec_builds_nothing() {
    let sf = storefront("gateway: {autoscaling: {min: 5, max: 2}}\n");
    match desired(&sf, &[], now(), &Default::default()) {
        Err(BuildError::InvalidSpec(e)) => {
            assert!(e.to_string().contains("autoscaling.max must be greater"))
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[test]
fn storefront_without_uid_is_refused() {
    let mut sf = storefront("gateway: {}\n");
    sf.metadata.uid = None;
    assert!(matches!(
        desired(&sf, &[], now(), &Default::default()),
        Err(BuildError::MissingMetadata("uid"))
    ));
}

#[test]
fn builds_are_deterministic() {
    let a = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    let b = desired(
        &sample_storefront(),
        &[],
        ts("2030-01-01T00:00:00Z"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&a.deployments).unwrap(),
        serde_json::to_value(&b.deployments).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&a.config_maps).unwrap(),
        serde_json::to_value(&b.config_maps).unwrap()
    );
    assert_eq!(
        a.plans.iter().map(|p| p.service).collect::<Vec<_>>(),
        ServiceName::ALL.to_vec()
    );
}

#[test]
fn snapshot_gateway_deployment() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    insta::assert_yaml_snapshot!(d.deployments[0]);
}

#[test]
fn network_policies_only_when_asked_for() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    assert!(d.network_policies.is_empty());
    let mut sf = sample_storefront();
    sf.spec.security = Some(storefront_crds::storefront::Security {
        network_policies: true,
        ..Default::default()
    });
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(d.network_policies.len(), 7);
    insta::assert_yaml_snapshot!("orders_network_policy", d.network_policies[3]);
    // From anywhere in the cluster (Prometheus): the gateway's public API and its `ops` port
    // (its /metrics); every other service's `http` (its /metrics).
    let cluster_wide = |policy: &NetworkPolicy| -> Vec<String> {
        let rules = policy.spec.as_ref().unwrap().ingress.as_ref().unwrap();
        rules[1]
            .ports
            .iter()
            .flatten()
            .map(|p| format!("{:?}", p.port.as_ref().unwrap()))
            .collect()
    };
    assert_eq!(d.network_policies[0].name_any(), "acme-gateway");
    assert_eq!(
        cluster_wide(&d.network_policies[0]),
        [r#"String("http")"#, r#"String("ops")"#]
    );
    assert_eq!(cluster_wide(&d.network_policies[3]), [r#"String("http")"#]);
}
