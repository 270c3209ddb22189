use kube::ResourceExt;
use storefront_crds::{ServiceName, ShardedService};

use super::*;
use crate::testutil::{sale, sample_storefront, storefront, ts};

fn now() -> Timestamp {
    ts("2026-11-25T12:00:00Z")
}

fn names<K: Resource>(objs: &[K]) -> Vec<String> {
    objs.iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn sample_builds_every_child() {
    let d = desired(&sample_storefront(), &[], now()).unwrap();
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
    assert_eq!(names(&d.services), names(&d.deployments));
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
    let d = desired(&sample_storefront(), &[], now()).unwrap();
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
    assert_eq!(metas.len(), 6 + 6 + 7 + 2 + 4 + 2 + 4);
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
fn hpa_managed_deployments_leave_replicas_to_the_hpa() {
    let d = desired(&sample_storefront(), &[], now()).unwrap();
    for dep in &d.deployments {
        let replicas = dep.spec.as_ref().unwrap().replicas;
        let autoscaled = d.hpas.iter().any(|h| h.name_any() == dep.name_any());
        assert_eq!(replicas.is_none(), autoscaled, "{}", dep.name_any());
    }
    let auth = d
        .deployments
        .iter()
        .find(|x| x.name_any() == "acme-auth")
        .unwrap();
    assert_eq!(auth.spec.as_ref().unwrap().replicas, Some(2));
    let gw = &d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((gw.min_replicas, gw.max_replicas), (Some(2), 10));
}

#[test]
fn a_switched_off_service_is_not_desired() {
    let mut sf = sample_storefront();
    sf.spec.services.get_mut("recommendations").unwrap().enabled = false;
    let d = desired(&sf, &[], now()).unwrap();
    assert!(!names(&d.deployments).contains(&"acme-recommendations".to_string()));
    assert!(!names(&d.service_accounts).contains(&"acme-recommendations".to_string()));
    assert_eq!(d.plans.len(), 6);
}

#[test]
fn stopped_keeps_everything_at_zero_pods() {
    let mut sf = sample_storefront();
    sf.spec.stopped = true;
    let d = desired(&sf, &[], now()).unwrap();
    assert_eq!(d.deployments.len(), 6);
    assert!(
        d.deployments
            .iter()
            .all(|x| x.spec.as_ref().unwrap().replicas == Some(0))
    );
    assert!(d.hpas.is_empty() && d.pdbs.is_empty());
    assert!(d.shards.iter().all(|s| s.spec.replicas == 0));
    assert_eq!(d.services.len(), 6);
    assert_eq!(d.config_maps.len(), 2);
}

#[test]
fn invalid_spec_builds_nothing() {
    let sf = storefront("gateway: {autoscaling: {min: 5, max: 2}}\n");
    match desired(&sf, &[], now()) {
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
        desired(&sf, &[], now()),
        Err(BuildError::MissingMetadata("uid"))
    ));
}

#[test]
fn active_sale_raises_hpa_floor_and_gateway_limits() {
    let sales = [sale(
        "bf",
        "acme",
        "2026-11-25T11:00:00Z",
        "2026-11-25T13:00:00Z",
        "5m",
    )];
    let d = desired(&sample_storefront(), &sales, now()).unwrap();
    assert_eq!(d.active_sales, ["bf"]);
    let gw = d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((gw.min_replicas, gw.max_replicas), (Some(6), 20));
    let routes = &d.config_maps[1].data.as_ref().unwrap()["routes.json"];
    assert!(routes.contains("\"requestsPerMinute\": 20000"), "{routes}");
}

#[test]
fn builds_are_deterministic() {
    let a = desired(&sample_storefront(), &[], now()).unwrap();
    let b = desired(&sample_storefront(), &[], ts("2030-01-01T00:00:00Z")).unwrap();
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
    let d = desired(&sample_storefront(), &[], now()).unwrap();
    insta::assert_yaml_snapshot!(d.deployments[0]);
}

#[test]
fn snapshot_gateway_routes_and_ring() {
    let d = desired(&sample_storefront(), &[], now()).unwrap();
    insta::assert_snapshot!(
        "gateway_routes",
        d.config_maps[1].data.as_ref().unwrap()["routes.json"]
    );
    insta::assert_snapshot!(
        "inventory_ring",
        d.config_maps[0].data.as_ref().unwrap()["ring.json"]
    );
}

#[test]
fn snapshot_shard_and_hpa() {
    let d = desired(&sample_storefront(), &[], now()).unwrap();
    insta::assert_yaml_snapshot!("inventory_shard_0", d.shards[0]);
    insta::assert_yaml_snapshot!("gateway_hpa", d.hpas[0]);
}

#[test]
fn network_policies_only_when_asked_for() {
    let d = desired(&sample_storefront(), &[], now()).unwrap();
    assert!(d.network_policies.is_empty());
    let mut sf = sample_storefront();
    sf.spec.security = Some(storefront_crds::storefront::Security {
        network_policies: true,
        ..Default::default()
    });
    let d = desired(&sf, &[], now()).unwrap();
    assert_eq!(d.network_policies.len(), 7);
    insta::assert_yaml_snapshot!("orders_network_policy", d.network_policies[3]);
}
