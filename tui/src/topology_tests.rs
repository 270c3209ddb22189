//! Tests of the topology view model: layers, classes, red nodes, terminal rows.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::fixtures;

fn acme(app: &crate::app::App) -> Topology {
    build(app.focus().unwrap(), &app.cluster, &app.prom, &app.failures)
}

#[test]
fn layers_classes_and_edges_of_the_sample_shop() {
    let topo = acme(&fixtures::healthy());
    let ids = |l| topo.layer(l).map(|n| n.id.as_str()).collect::<Vec<_>>();
    assert_eq!(ids(0), ["client"]);
    assert_eq!(ids(1), ["gateway"]);
    assert_eq!(
        ids(2),
        [
            "auth",
            "catalog",
            "orders",
            "payments",
            "inventory",
            "recommendations"
        ]
    );
    assert_eq!(
        ids(3),
        [
            "acme-inventory-0",
            "acme-inventory-1",
            "acme-inventory-2",
            "acme-inventory-3"
        ]
    );
    assert_eq!(ids(4), ["postgres", "redis", "broker"]);
    assert_eq!(topo.node("catalog").unwrap().class, NodeClass::Supporting);
    assert_eq!(topo.node("orders").unwrap().class, NodeClass::Core);
    assert_eq!(
        topo.node("inventory").unwrap().replicas,
        Some((4, 4)),
        "sum of its shards"
    );
    assert!(topo.nodes.iter().all(|n| !n.failed));
    let into_orders = topo.traffic_into("orders").unwrap();
    assert_eq!(into_orders.rps, Some(38.0));
    assert_eq!(
        topo.edges.iter().find(|e| e.to == "orders").unwrap().from,
        "gateway"
    );
    assert_eq!(topo.traffic_into("gateway").unwrap().rps, Some(412.0));
    assert_eq!(topo.stores_of("inventory"), ["postgres", "redis", "broker"]);
}

#[test]
fn failures_and_empty_replicas_turn_nodes_red() {
    let topo = acme(&fixtures::degraded());
    let failed: Vec<_> = topo
        .nodes
        .iter()
        .filter(|n| n.failed)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(failed, ["payments"]);
    assert_eq!(topo.node("payments").unwrap().replicas, Some((0, 2)));

    // a shard whose Deployment lost its pods turns red on its own, before the operator says so
    let mut app = fixtures::healthy();
    let mut deps = app.cluster.deployments.clone();
    deps.iter_mut()
        .find(|d| d.name == "acme-inventory-2")
        .unwrap()
        .ready = 0;
    app.update(crate::app::Action::Data(crate::app::Update::Deployments(
        deps,
    )));
    let topo = acme(&app);
    let failed: Vec<_> = topo
        .nodes
        .iter()
        .filter(|n| n.failed)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(failed, ["acme-inventory-2"]);
    assert_eq!(topo.node("inventory").unwrap().replicas, Some((3, 4)));
}

#[test]
fn without_a_gateway_clients_reach_services_directly_and_undeclared_stores_are_absent() {
    let mut app = fixtures::healthy();
    let mut sf = app.cluster.storefronts[0].clone();
    sf.spec.services.remove("gateway");
    sf.spec.datastores = None;
    app.update(crate::app::Action::Data(crate::app::Update::Storefronts(
        vec![sf],
    )));
    let topo = acme(&app);
    assert_eq!(topo.layer(1).count(), 0);
    assert_eq!(topo.layer(4).count(), 0);
    assert!(
        topo.edges
            .iter()
            .filter(|e| e.traffic.is_some())
            .all(|e| e.from == "client")
    );
}

#[test]
fn terminal_rows_nest_shards_and_elide_them_first() {
    let topo = acme(&fixtures::healthy());
    let (rows, hidden) = rows(&topo, 100);
    let glyphs: Vec<(&str, char, Option<char>)> =
        rows.iter().map(|r| (r.node, r.trunk, r.branch)).collect();
    assert_eq!(
        glyphs,
        [
            ("auth", '┬', None),
            ("catalog", '├', None),
            ("orders", '├', None),
            ("payments", '├', None),
            ("inventory", '├', None),
            ("acme-inventory-0", '│', Some('├')),
            ("acme-inventory-1", '│', Some('├')),
            ("acme-inventory-2", '│', Some('├')),
            ("acme-inventory-3", '│', Some('└')),
            ("recommendations", '└', None),
        ]
    );
    assert_eq!(hidden, 0);
    let (rows, hidden) = rows_fit(&topo, 8);
    assert_eq!(rows, 8);
    assert_eq!(
        hidden, 2,
        "six services and two of four shards fit in eight rows"
    );
}

fn rows_fit(topo: &Topology, max: usize) -> (usize, usize) {
    let (r, h) = rows(topo, max);
    (r.len(), h)
}

#[test]
fn traffic_labels_say_unknown_not_zero() {
    let t = Traffic::default();
    assert_eq!(t.label(), "–/s p99 – 429 –/s");
    let t = Traffic {
        rps: Some(0.0),
        p99_seconds: Some(0.25),
        throttled_rps: Some(1.5),
    };
    assert_eq!(t.short_label(), "0/s 250ms 1.50");
}
