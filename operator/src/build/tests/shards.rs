//! Sharded services: ServiceShards, rings and the route table, from the recorded ring.

use super::*;

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
    // A shard holds inventory's own key and no user key.
    let files = projected_files(&dep, "/etc/storefront/jwt");
    assert_eq!(files["service.pem"], "acme-inventory-token-key/private.pem");
    assert!(!files.contains_key("private.pem"), "{files:?}");
    insta::assert_yaml_snapshot!("inventory_shard_2_deployment", dep);
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
