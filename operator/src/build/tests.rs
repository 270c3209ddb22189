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
fn hpa_managed_deployments_leave_replicas_to_the_hpa() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
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
fn active_sale_raises_hpa_floor_and_gateway_limits() {
    let sales = [sale(
        "bf",
        "acme",
        "2026-11-25T11:00:00Z",
        "2026-11-25T13:00:00Z",
        "5m",
    )];
    let d = desired(&sample_storefront(), &sales, now(), &Default::default()).unwrap();
    assert_eq!(d.active_sales, ["bf"]);
    let gw = d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((gw.min_replicas, gw.max_replicas), (Some(6), 20));
    let routes = &d.config_maps[1].data.as_ref().unwrap()["routes.json"];
    assert!(routes.contains("\"requestsPerMinute\": 20000"), "{routes}");
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
fn snapshot_gateway_routes_and_ring() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
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
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    insta::assert_yaml_snapshot!("inventory_shard_0", d.shards[0]);
    insta::assert_yaml_snapshot!("gateway_hpa", d.hpas[0]);
}

#[test]
fn hpa_follows_memory_and_scales_in_after_the_window_when_asked() {
    let sf = storefront(
        "gateway: {autoscaling: {min: 1, max: 3, targetCPUUtilization: 20, targetMemoryUtilization: 80, scaleDownStabilizationSeconds: 15}}",
    );
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    let targets: Vec<_> = spec
        .metrics
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| {
            let r = m.resource.as_ref().unwrap();
            (r.name.as_str(), r.target.average_utilization)
        })
        .collect();
    assert_eq!(targets, [("cpu", Some(20)), ("memory", Some(80))]);
    let down = spec.behavior.as_ref().unwrap().scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(15));
    insta::assert_yaml_snapshot!("gateway_hpa_memory_and_window", d.hpas[0]);
}

#[test]
fn hpa_without_memory_target_or_window_is_cpu_only_with_default_behavior() {
    let d = desired(
        &storefront("gateway: {autoscaling: {min: 1, max: 3}}"),
        &[],
        now(),
        &Default::default(),
    )
    .unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    let metrics = spec.metrics.as_ref().unwrap();
    assert_eq!(metrics.len(), 1);
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.target.average_utilization),
        ("cpu", Some(plan::DEFAULT_TARGET_CPU))
    );
    assert_eq!(spec.behavior, None);
}

#[test]
fn a_sale_raises_the_bounds_and_keeps_the_memory_target() {
    let mut sf = sample_storefront();
    let gw = sf.spec.services.get_mut("gateway").unwrap();
    let a = gw.autoscaling.as_mut().unwrap();
    a.target_memory_utilization = Some(75);
    a.scale_down_stabilization_seconds = Some(60);
    let sales = [sale(
        "bf",
        "acme",
        "2026-11-25T11:00:00Z",
        "2026-11-25T13:00:00Z",
        "5m",
    )];
    let d = desired(&sf, &sales, now(), &Default::default()).unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(6), 20));
    let names: Vec<_> = spec
        .metrics
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.resource.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["cpu", "memory"]);
    let down = spec.behavior.as_ref().unwrap().scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(60));
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
}

fn deployment<'a>(d: &'a Desired, name: &str) -> &'a Deployment {
    d.deployments
        .iter()
        .find(|x| x.name_any() == name)
        .unwrap_or_else(|| panic!("no deployment {name}"))
}

fn pod_spec(dep: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// `(name, value or "secret:<name>/<key>")` of the first container's env.
fn env_of(dep: &Deployment) -> BTreeMap<String, String> {
    pod_spec(dep).containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(f)) => match &f.secret_key_ref {
                    Some(s) => format!("secret:{}/{}", s.name, s.key),
                    None => "field".to_string(),
                },
                _ => String::new(),
            };
            (e.name.clone(), v)
        })
        .collect()
}

/// Mount path → (volume name, ConfigMap or Secret it comes from).
fn mounts_of(dep: &Deployment) -> BTreeMap<String, String> {
    let spec = pod_spec(dep);
    let volumes = spec.volumes.as_ref().unwrap();
    spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name).unwrap();
            let source = match (&v.config_map, &v.secret) {
                (Some(c), _) => format!("configmap:{}", c.name),
                (_, Some(s)) => format!("secret:{}", s.secret_name.clone().unwrap_or_default()),
                _ => "emptyDir".to_string(),
            };
            (m.mount_path.clone(), source)
        })
        .collect()
}

#[test]
fn every_service_gets_the_datastores_jwt_keys_and_its_ports() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    for dep in &d.deployments {
        let env = env_of(dep);
        let name = dep.name_any();
        for (var, want) in [
            ("DATABASE_URL", "secret:storefront-postgres/url"),
            (
                "DATABASE_READ_REPLICA_URL",
                "secret:storefront-postgres-replica/url",
            ),
            ("REDIS_URL", "secret:storefront-redis/url"),
            ("NATS_URL", "secret:storefront-nats/url"),
            ("JWT_KEYS_DIR", "/etc/storefront/jwt"),
            ("HTTP_ADDR", "0.0.0.0:8080"),
            ("GRPC_ADDR", "0.0.0.0:50051"),
        ] {
            assert_eq!(env.get(var).map(String::as_str), Some(want), "{name} {var}");
        }
        assert_eq!(
            mounts_of(dep)["/etc/storefront/jwt"],
            "secret:acme-jwt",
            "{name}"
        );
        let probe = pod_spec(dep).containers[0]
            .readiness_probe
            .as_ref()
            .unwrap();
        assert_eq!(
            probe.http_get.as_ref().unwrap().path.as_deref(),
            Some("/readyz")
        );
    }
    assert_eq!(d.generated_jwt_secret.as_deref(), Some("acme-jwt"));
}

#[test]
fn a_named_jwt_secret_is_mounted_and_none_generated() {
    let mut sf = sample_storefront();
    sf.spec.security = Some(storefront_crds::storefront::Security {
        jwt_secret_name: Some("platform-jwt".into()),
        ..Default::default()
    });
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(d.generated_jwt_secret, None);
    for dep in &d.deployments {
        assert_eq!(mounts_of(dep)["/etc/storefront/jwt"], "secret:platform-jwt");
    }
}

#[test]
fn gateway_mounts_every_ring_its_route_table_names() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    let gw = deployment(&d, "acme-gateway");
    let env = env_of(gw);
    assert_eq!(env["GATEWAY_ROUTES"], "/etc/storefront/routes/routes.json");
    assert_eq!(env["GATEWAY_RINGS_DIR"], "/etc/storefront/rings");
    let mounts = mounts_of(gw);
    assert_eq!(
        mounts["/etc/storefront/routes"],
        "configmap:acme-gateway-routes"
    );
    // Every ring the route table names is mounted at GATEWAY_RINGS_DIR/<ring>, and the ring
    // ConfigMap of that name parses as the routers parse it.
    let routes: serde_json::Value =
        serde_json::from_str(&d.config_maps[1].data.as_ref().unwrap()["routes.json"]).unwrap();
    let rings: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ring"].as_str())
        .collect();
    assert_eq!(rings, ["acme-inventory-ring"]);
    for ring in rings {
        assert_eq!(
            mounts[&format!("/etc/storefront/rings/{ring}")],
            format!("configmap:{ring}")
        );
        let cm = d.config_maps.iter().find(|c| c.name_any() == ring).unwrap();
        let parsed =
            storefront_crds::ring::Ring::from_config_map_data(cm.data.as_ref().unwrap()).unwrap();
        assert_eq!((parsed.shard_count(), parsed.epoch()), (4, 1));
    }
    // Only the gateway reads rings.
    assert!(!mounts_of(deployment(&d, "acme-orders")).contains_key("/etc/storefront/rings"));
}

#[test]
fn a_new_inventory_shard_count_does_not_touch_orders() {
    // Orders learns which lines are held from the shards' replies, not from a count: a
    // reshard must not roll its pods.
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    let mut sf = sample_storefront();
    sf.spec
        .services
        .get_mut("inventory")
        .unwrap()
        .sharding
        .as_mut()
        .unwrap()
        .shards = 5;
    let e = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(deployment(&d, "acme-orders"), deployment(&e, "acme-orders"));
    assert!(!env_of(deployment(&d, "acme-orders")).contains_key("INVENTORY_SHARDS"));
}

#[test]
fn shard_pods_know_their_place_in_the_ring() {
    let sf = sample_storefront();
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    let mut shard = d.shards[2].clone();
    shard.metadata.uid = Some("uid-shard-2".into());
    let mut owner = Owner::of(&sf).unwrap();
    owner.owner_ref = shard.controller_owner_ref(&()).unwrap();
    let (dep, svc) = shard::pods(&owner, &shard);
    assert_eq!(dep.name_any(), "acme-inventory-2");
    assert_eq!(svc.name_any(), "acme-inventory-2");
    let env = env_of(&dep);
    for (var, want) in [
        ("SHARD_INDEX", "2"),
        ("SHARD_COUNT", "4"),
        ("RING_EPOCH", "1"),
        ("DATABASE_SCHEMA", "shop_acme_inventory_2"),
        ("STOREFRONT_SERVICE", "inventory"),
        ("JWT_KEYS_DIR", "/etc/storefront/jwt"),
        ("DATABASE_URL", "secret:storefront-postgres/url"),
    ] {
        assert_eq!(env.get(var).map(String::as_str), Some(want), "{var}");
    }
    assert_eq!(
        dep.metadata.owner_references.as_ref().unwrap()[0].uid,
        "uid-shard-2"
    );
    insta::assert_yaml_snapshot!("inventory_shard_2_deployment", dep);
}

#[test]
fn database_schemas_are_per_namespace_and_fit_postgres() {
    use super::database_schema;
    assert_eq!(
        database_schema("shop", "acme", "orders"),
        "shop_acme_orders"
    );
    assert_eq!(
        database_schema("e2e-x", "acme.eu", "inventory_3"),
        "e2e_x_acme_eu_inventory_3"
    );
    assert_ne!(
        database_schema("a", "acme", "orders"),
        database_schema("b", "acme", "orders")
    );
    let long_ns = "n".repeat(63);
    let a = database_schema(&long_ns, "acme", "inventory_1");
    let b = database_schema(&long_ns, "acme", "inventory_2");
    assert_eq!((a.len(), b.len()), (63, 63));
    assert_ne!(a, b, "the hash keeps long names apart");
}

#[test]
fn extra_env_comes_first_so_the_operators_own_wins() {
    let mut sf = sample_storefront();
    let svc = sf.spec.services.get_mut("payments").expect("payments");
    svc.env = vec![
        storefront_crds::storefront::EnvVarSpec {
            name: "PAYMENT_FAILURE_RATE".into(),
            value: "0".into(),
        },
        storefront_crds::storefront::EnvVarSpec {
            name: "DATABASE_SCHEMA".into(),
            value: "hijack".into(),
        },
    ];
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    let pay = d
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("acme-payments"))
        .expect("payments deployment");
    let envs = pay
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert_eq!(envs[0].name, "PAYMENT_FAILURE_RATE");
    let schema: Vec<_> = envs
        .iter()
        .filter(|e| e.name == "DATABASE_SCHEMA")
        .map(|e| e.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        schema.last().map(String::as_str),
        Some("shop_acme_payments")
    );
}

#[test]
fn the_recorded_ring_decides_the_shards_and_the_ring_not_the_spec() {
    use storefront_crds::{ReshardPhase, RingStatus};
    // The spec asks 5 (the sample has 4): without a record, that is the first ring.
    let mut sf = sample_storefront();
    sf.spec
        .services
        .get_mut("inventory")
        .unwrap()
        .sharding
        .as_mut()
        .unwrap()
        .shards = 5;
    let fresh = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(fresh.shards.len(), 5);
    assert_eq!(fresh.rings["inventory"].shards, 5);
    // Recorded: the ring has 4 at epoch 3, a reshard to 5 is Copying. Shards 0..5 exist, the
    // new one placed in the larger ring; the ring (ConfigMap and route table) stays 4 at 3.
    let resharding = crate::testutil::reshard_status(ReshardPhase::Copying, 4, 5, 4, 0);
    let rings = BTreeMap::from([(
        "inventory".to_string(),
        RingStatus {
            shards: 4,
            epoch: 3,
            resharding: Some(resharding),
            last: None,
        },
    )]);
    let d = desired(&sf, &[], now(), &rings).unwrap();
    let placed: Vec<(i32, i32, i64)> = d
        .shards
        .iter()
        .map(|s| (s.spec.index, s.spec.shard_count, s.spec.ring_epoch))
        .collect();
    assert_eq!(
        placed,
        [(0, 4, 3), (1, 4, 3), (2, 4, 3), (3, 4, 3), (4, 5, 3)]
    );
    let cm = d
        .config_maps
        .iter()
        .find(|c| c.name_any() == "acme-inventory-ring")
        .unwrap();
    let ring =
        storefront_crds::ring::Ring::from_config_map_data(cm.data.as_ref().unwrap()).unwrap();
    assert_eq!((ring.shard_count(), ring.epoch()), (4, 3));
    let routes: serde_json::Value = serde_json::from_str(
        &d.config_maps
            .iter()
            .find(|c| c.name_any() == "acme-gateway-routes")
            .unwrap()
            .data
            .as_ref()
            .unwrap()["routes.json"],
    )
    .unwrap();
    let inline = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "inventory")
        .unwrap()["ringDocument"]
        .clone();
    assert_eq!(
        (
            inline["epoch"].as_i64(),
            inline["shards"].as_array().map(Vec::len)
        ),
        (Some(3), Some(4))
    );
    assert_eq!(d.ring_wanted["inventory"], 5);
}
